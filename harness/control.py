"""The shuffled-label control of one `bench run`: the same pairs, labels swapped at random.

A tuned − base difference alone cannot say whether the preference labels taught the model
anything or whether any training on these texts moves it the same way. `evaluate.control`
runs the control next to the cell (its own run folder, sharing every cached stage but select,
train and the tuned evaluation) and records its effect in the cell's `control.json`, which the
report's headline quotes beside the cell's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.constraints.metrics import DEGENERATE_KINDS, PRIMARY_METRIC
from harness.core.io import write_json
from harness.core.records import CONTROL
from harness.core.run_files import RunFolder
from harness.experiment import ExperimentConfig
from harness.stages.config import SelectConfig

HEADLINE = ("ifeval_heldout", f"paired_diff.{PRIMARY_METRIC}")
"""The headline metric: held-out prompt-level strict accuracy with the task done, tuned − base on the same prompts."""
CONSTRAINT_ONLY = ("ifeval_heldout", "paired_diff.prompt_strict_acc")
"""The constraint-only headline of runs graded before the task check, and quoted beside the headline."""


def control_config(config: ExperimentConfig) -> ExperimentConfig | None:
    """The control cell of `config`, or None when it asks for none or is a control itself."""
    if not config.evaluate.control or config.select.strategy == CONTROL:
        return None
    select = SelectConfig.model_validate(  # validated anew: the control's own parameters, checked once
        {
            **config.select.model_dump(),
            "strategy": CONTROL,
            "params": {"reference": config.select.strategy, "reference_params": dict(config.select.params)},
        }
    )
    evaluate = config.evaluate.model_copy(update={"control": False})
    return config.model_copy(update={"select": select, "evaluate": evaluate})


def control_dir(out_dir: Path) -> Path:
    return out_dir.with_name(out_dir.name + "-control")


def headline(metrics: dict[str, dict[str, Any]], which: tuple[str, str] = HEADLINE) -> dict[str, Any] | None:
    """The headline record of a run's metrics.json (value, ci_low, ci_high, n), or None if never computed."""
    suite, name = which
    return metrics.get(suite, {}).get(name)


def graded_by_task(metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The four things a reader needs beside any accuracy, for the base and the tuned model (where measured):
    constraint-only accuracy, task-done rate, both together (the primary metric), the degenerate share and its
    kinds. {metric name: {"base": record, "tuned": record}}."""
    suite = metrics.get(HEADLINE[0], {})
    names = [
        "prompt_strict_acc",
        "task_done_rate",
        PRIMARY_METRIC,
        "degenerate_share",
        *(f"degenerate_share_{k}" for k in DEGENERATE_KINDS),
    ]
    return {
        n: {side: suite[f"{side}.{n}"] for side in ("base", "tuned") if f"{side}.{n}" in suite}
        for n in names
        if f"tuned.{n}" in suite
    }


def record_control(out_dir: Path, control_out: Path) -> dict[str, Any]:
    """Write the control's record (`RunFolder.CONTROL`) into the cell's folder: where the control ran and its headline
    effect."""
    metrics = RunFolder(control_out).metrics()
    record = {"run": str(control_out), "strategy": CONTROL, "metric": "/".join(HEADLINE), "effect": headline(metrics)}
    write_json(out_dir / RunFolder.CONTROL, record)
    return record
