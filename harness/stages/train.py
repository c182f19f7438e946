"""The `train` stage: the shared DPO + LoRA trainer on the selected pairs (engine: harness/training/dpo.py).

Keyed by the select stage, the model, the resolved train section and the run seed. With
`train.reference_logps: cached` the reference log-probs come from the per-response store
(harness/training/reference_logps.py), computed here for the responses it does not hold yet. Publishes
train/ (the adapter, the loss log and the stage summary).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.cache import StageResult
from harness.core.io import read_jsonl
from harness.training import dpo
from harness.training.reference_logps import with_reference_logps

if TYPE_CHECKING:
    from harness.models.choices import Resolved
    from harness.run_folder import Run

NAME = "train"


def inputs(resolved: Resolved, select_hash: str) -> dict[str, Any]:
    """With the resolved train section (target modules, precision, attention as found here)."""
    return {
        "select": select_hash,
        "model": resolved.model_key,
        "train": resolved.train.model_dump(),
        "seed": resolved.config.seed,
    }


def run(run: Run, selected: StageResult) -> StageResult:
    def compute(out: Path) -> dict:
        rows = read_jsonl(selected.path / "train.jsonl")
        reuse: dict[str, int] = {}
        if run.train.reference_logps == "cached":
            rows, reuse = with_reference_logps(rows, run.model, run.resolved.model_key, run.train, run.cache)
        return {
            **dpo.train_dpo(run.model, rows, run.train, run.config.seed, out),
            **({"reference_logps": reuse} if reuse else {}),
        }

    result = run.stage(NAME, inputs(run.resolved, selected.hash), compute)
    with run.publish_dir("train") as tmp:
        shutil.copytree(result.path / "adapter", tmp / "adapter")
        shutil.copyfile(result.path / "log.jsonl", tmp / "log.jsonl")
        shutil.copyfile(result.path / "stage.json", tmp / "summary.json")
    return result
