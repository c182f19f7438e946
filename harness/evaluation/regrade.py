"""Grade finished runs' held-out outputs again with the current task check, without generating or training.

A run graded before the task check existed (or by an older version of it) reports a constraint-only accuracy
that the checkers' loopholes inflate. Its `eval_outputs.jsonl` holds every base and tuned answer, so the task
check can be run on them after the fact: each row gains `base_task_check` and `tuned_task_check`, and the held-out
section of `metrics.json` gains the task metrics (harness/constraints/metrics.py), computed by the evaluate stage's
own function. Metrics that need more than the greedy outputs (sampled rewards, preference accuracy) are kept.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness.core.errors import BenchError
from harness.core.io import write_json, write_jsonl
from harness.core.records import Prompt
from harness.core.run_files import RunFolder
from harness.evaluation.config import EvaluateConfig
from harness.evaluation.constraint_accuracy import SUITE, compute_metrics
from harness.evaluation.task_check import VERSION, TaskCheck, TaskVerdict

GRADED = "task_check_version"
"""The manifest field that records which task check graded the run's outputs."""


class Regrader:
    """The task check over many runs; answers seen in an earlier run (every run's base outputs) are checked once."""

    def __init__(self) -> None:
        self.check = TaskCheck()
        self.seen: dict[tuple[str, str, str], TaskVerdict] = {}

    def verdicts(self, items: list[tuple[dict[str, Any], str]]) -> list[TaskVerdict]:
        keys = [(row["prompt"], row.get("base_task") or "", text) for row, text in items]
        todo = list(dict.fromkeys(k for k in keys if k not in self.seen))
        prompts = [
            Prompt.make([{"role": "user", "content": p}], "builtin", {"base_task": task} if task else {})
            for p, task, _ in todo
        ]
        for key, verdict in zip(todo, self.check.check_many([(p, k[2]) for p, k in zip(prompts, todo)])):
            self.seen[key] = verdict
        return [self.seen[k] for k in keys]

    def regrade(self, run: Path) -> dict[str, Any]:
        """Grade one run folder in place; returns its new held-out metrics."""
        folder = RunFolder(run)
        if not folder.has(RunFolder.EVAL_OUTPUTS) or not folder.has(RunFolder.METRICS):
            raise BenchError(
                f"{run}: no {RunFolder.EVAL_OUTPUTS} or {RunFolder.METRICS}; regrade needs a finished run's folder."
            )
        rows = folder.eval_outputs()
        for side in ("base", "tuned"):
            for row, verdict in zip(rows, self.verdicts([(r, r[f"{side}_output"]) for r in rows])):
                row[f"{side}_task_check"] = verdict.graded(row.get(f"{side}_truncated"))
        manifest = folder.manifest()
        bootstrap = (manifest.get("config") or {}).get("evaluate", {}).get("bootstrap", EvaluateConfig().bootstrap)
        suite_rows = {
            side: [
                {
                    "prompt_id": r["prompt_id"],
                    "strict": r[f"{side}_strict"],
                    "loose": r[f"{side}_loose"],
                    "output": r[f"{side}_output"],
                    "truncated": r.get(f"{side}_truncated"),
                    "task": r[f"{side}_task_check"],
                }
                for r in rows
            ]
            for side in ("base", "tuned")
        }
        fresh = compute_metrics(suite_rows["base"], suite_rows["tuned"], EvaluateConfig(bootstrap=bootstrap))[SUITE]
        metrics = folder.metrics()
        metrics[SUITE] = {**metrics.get(SUITE, {}), **fresh}
        write_jsonl(folder / RunFolder.EVAL_OUTPUTS, rows)
        write_json(folder / RunFolder.METRICS, metrics)
        if manifest:
            manifest[GRADED] = {"version": VERSION, "regraded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            write_json(folder / RunFolder.MANIFEST, manifest)
        return metrics[SUITE]
