"""A run folder's files, named once: what `bench run` writes and every reader reads.

The pipeline writes these files (harness/run_folder.py, harness/stages/outputs.py, the control); the
analysis, the reports, `bench regrade`, the matrix and the suites' target resolution read them. Each
reads through `RunFolder`, so a file's name and how a missing file reads are decided here only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.core.io import read_json, read_jsonl


class RunFolder:
    """One run folder: the path of each file it may hold, and a reader for each."""

    MANIFEST = "manifest.json"
    """what ran (config, resolved machine, stages and their keys, status); rewritten after every stage"""
    METRICS = "metrics.json"
    """suite -> metric -> record, for the base and the tuned model"""
    SELECTION = "selection.json"
    """the strategy's chosen pair ids and diagnostics"""
    SELECTED_PAIRS = "selected_pairs.jsonl"
    """the selected pairs in TRL's conversational format, exactly what DPO saw"""
    EVAL_OUTPUTS = "eval_outputs.jsonl"
    """every held-out prompt with the base and tuned answers and their verdicts"""
    HELDOUT_PREFERENCES = "heldout_preferences.jsonl"
    """the tuned model's implicit-reward verdict on each held-out preference pair"""
    ERROR_LOG = "error.log"
    """the traceback of an unexpected failure"""
    CONTROL = "control.json"
    """the shuffled-label control's run and effect, when `evaluate.control` trained one"""
    REPORT = "report.html"
    ADAPTER = "train/adapter"
    """the trained LoRA adapter (PEFT format), published by the train stage"""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    def is_run(self) -> bool:
        """A folder written by `bench run` (or `bench eval`): it has a manifest."""
        return self.has(self.MANIFEST)

    def manifest(self) -> dict[str, Any]:
        """The manifest ({} for a folder without one)."""
        return read_json(self.path / self.MANIFEST) if self.is_run() else {}

    def metrics(self) -> dict[str, dict[str, Any]]:
        """The metrics ({} before the evaluation finished)."""
        return read_json(self.path / self.METRICS) if self.has(self.METRICS) else {}

    def selection(self) -> dict[str, Any]:
        """The selection ({} for an evaluation-only folder)."""
        return read_json(self.path / self.SELECTION) if self.has(self.SELECTION) else {}

    def selected_pairs(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / self.SELECTED_PAIRS) if self.has(self.SELECTED_PAIRS) else []

    def eval_outputs(self) -> list[dict[str, Any]]:
        """The held-out outputs ([] before the evaluation finished)."""
        return read_jsonl(self.path / self.EVAL_OUTPUTS) if self.has(self.EVAL_OUTPUTS) else []

    def heldout_preferences(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / self.HELDOUT_PREFERENCES) if self.has(self.HELDOUT_PREFERENCES) else []

    def control(self) -> dict[str, Any] | None:
        """The control's record, or None where no control was trained."""
        return read_json(self.path / self.CONTROL) if self.has(self.CONTROL) else None
