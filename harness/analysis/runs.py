"""The one record of a finished run, and its one loader: every analysis (comparisons, power, confounds,
diagnostics) reads run folders through here.

A run folder holds manifest.json (config, seed, stages), selection.json (strategy, budget,
diagnostics), metrics.json and, for the per-unit analyses, eval_outputs.jsonl and
heldout_preferences.jsonl. Runs are grouped into cells (every setting but the seed) and
contexts (the cell without the strategy), labelled by the settings in which they differ.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.analysis.grouping import (
    cell_key,
    context_key,
    labels,
    refuse_duplicates,
    run_kind,
    setting,
    without_strategy,
)
from harness.constraints.metrics import PAIRED_TASK_METRICS, TASK_METRICS, unit_outcomes
from harness.core.errors import BenchError
from harness.core.run_files import RunFolder

VERIFIABLE = {
    "prompt_strict_acc": "tuned_strict",
    "instruction_strict_acc": "tuned_strict",
    "prompt_loose_acc": "tuned_loose",
    "instruction_loose_acc": "tuned_loose",
    **{name: "tuned_strict" for name in TASK_METRICS},
}
"""The verifiable metrics bench power analyses, and the eval_outputs.jsonl field of the tuned model's
verdicts each is computed from (per prompt, by harness.constraints.metrics: one definition); the task
metrics also read the task check's verdicts (`TASK_FIELD`)."""
TASK_FIELD = "tuned_task_check"
SAMPLED = ("mean_verifiable_reward", "tuned_sampled_reward")
METRICS = [*VERIFIABLE, SAMPLED[0]]


PREFERENCE = "preference_accuracy"
PAIRED_METRICS = {
    **{name: f"ifeval_heldout/{name}: {TASK_METRICS[name]} (greedy output)" for name in PAIRED_TASK_METRICS},
    "prompt_strict_acc": "ifeval_heldout/prompt_strict_acc: per held-out prompt, all its constraints followed (greedy output; "
    "constraint only: the checker's loopholes pass it)",
    "task_done_rate": f"ifeval_heldout/task_done_rate: {TASK_METRICS['task_done_rate']} (greedy output)",
    "preference_accuracy": "preference_heldout/preference_accuracy: per held-out prompt, the share of its held-out pairs "
    "the tuned model's implicit reward ranks right",
    "mean_verifiable_reward": "ifeval_heldout/mean_verifiable_reward: per held-out prompt, the share of its constraints "
    "a sampled output follows, averaged over evaluate.samples samples",
}
"""The per-prompt outcomes the paired tests compare, where runs recorded them."""


@dataclass
class RunRecord:
    """One finished run as the analysis reads it from its folder: what it ran, what it measured, per-unit outcomes."""

    path: Path
    strategy: str
    budget: int
    seed: int
    status: str
    metrics: dict[str, dict[str, Any]]  # "suite/metric" -> record
    breadth: float | None
    mean_depth: float | None
    outcomes: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> held-out prompt id -> tuned outcome
    cost: dict[str, Any] = field(
        default_factory=dict
    )  # selection vs training seconds (manifest "cost", Run.record_cost)
    setting: dict[str, Any] = field(
        default_factory=dict
    )  # the resolved config bar seed and name (harness.analysis.grouping)
    units: dict[str, tuple[str, str]] = field(
        default_factory=dict
    )  # held-out prompt id -> (base task, constraint types)
    cell: str = ""
    context: str = ""
    label: str = ""  # the fields in which this run's setting differs from the others compared
    context_label: str = ""
    pool_judge: dict[str, Any] = field(
        default_factory=dict
    )  # the judge that labelled the pool's pairs (config pool.judge)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def folder(self) -> RunFolder:
        """The run's folder, read through its one owner."""
        return RunFolder(self.path)

    @property
    def title(self) -> str:
        """The cell in words: its strategy, and the settings in which it differs from the runs compared with it
        ("uniform (2 pairs per prompt)"); every table, plot and message names a cell this way."""
        return self.strategy + (f" ({self.label})" if self.label else "")


def load_run(run_dir: Path) -> RunRecord:
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    if not folder.is_run():
        raise BenchError(f"{run_dir} has no {RunFolder.MANIFEST}: pass folders written by `bench run`.")
    manifest = folder.manifest()
    config = manifest.get("config", {})
    selection = folder.selection()
    diag = selection.get("diagnostics", {})
    metrics: dict[str, dict] = {}
    for suite, table in folder.metrics().items():
        for name, record in table.items():
            metrics[f"{suite}/{name.removeprefix('tuned.')}" if name.startswith("tuned.") else f"{suite}/{name}"] = (
                record
            )
    histogram = diag.get("depth_histogram") or {}
    n_prompts = sum(histogram.values())
    mean_depth = sum(int(d) * c for d, c in histogram.items()) / n_prompts if n_prompts else None
    strategy = str(selection.get("strategy", config.get("select", {}).get("strategy", "?")))
    budget = int(selection.get("budget", config.get("select", {}).get("budget", 0)))
    return RunRecord(
        path=run_dir,
        strategy=strategy,
        budget=budget,
        seed=int(manifest.get("seed", config.get("seed", 0))),
        status=str(manifest.get("status", "?")),
        metrics=metrics,
        breadth=diag.get("breadth"),
        mean_depth=mean_depth,
        outcomes=run_outcomes(run_dir),
        cost=manifest.get("cost") or {},
        setting=setting(config, strategy, budget, run_kind(manifest)),
        units=run_units(run_dir),
        pool_judge=config.get("pool", {}).get("judge") or {},
    )


def run_folders(paths: list[Path]) -> list[Path]:
    """Run folders, each given itself or as a folder of them (runs/<matrix>)."""
    return [
        p
        for path in map(Path, paths)
        for p in ([path] if RunFolder(path).is_run() else sorted(q for q in path.iterdir() if RunFolder(q).is_run()))
    ]


def load_runs(paths: list[Path], need_outputs: bool = False) -> list[RunRecord]:
    """The runs under `paths` (run folders, or folders of them), grouped into cells (refusing duplicate cell and seed,
    or differing prompt sets). `need_outputs` keeps only runs with held-out outputs, and refuses none."""
    folders = run_folders(paths)
    if need_outputs:
        folders = [f for f in folders if RunFolder(f).has(RunFolder.EVAL_OUTPUTS)]
        if not folders:
            raise BenchError(
                f"no finished runs with held-out outputs ({RunFolder.EVAL_OUTPUTS}) under {', '.join(map(str, paths))}."
            )
    runs = [load_run(f) for f in folders]
    group_runs(runs)
    return runs


def cells_of(runs: list[RunRecord]) -> list[list[RunRecord]]:
    """Runs grouped by cell (every setting but the seed), in a stable order: budget, strategy, label."""
    groups: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        groups[run.cell].append(run)
    return sorted(groups.values(), key=lambda g: (g[0].budget, g[0].strategy, g[0].label))


def _per_prompt(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    """One unit per prompt, its pairs averaged: pairs sharing a prompt (and responses) are not independent."""
    groups: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        groups[row["prompt_id"]].append(float(row[key]))
    return {prompt: float(np.mean(values)) for prompt, values in groups.items()}


def run_outcomes(run: Path) -> dict[str, dict[str, float]]:
    """Per-unit outcomes of one run folder: metric -> held-out prompt id -> the tuned model's outcome.

    The unit of every metric is a held-out prompt (for preference accuracy, the mean over that
    prompt's held-out pairs); metrics a run did not record are absent, never zero.
    """
    outcomes: dict[str, dict[str, float]] = {}
    rows = RunFolder(run).eval_outputs()
    tasks = {r["prompt_id"]: r[TASK_FIELD] for r in rows if r.get(TASK_FIELD) is not None}
    for name, key in VERIFIABLE.items():
        if name in TASK_METRICS and not tasks:
            continue  # graded before the task check (`bench regrade` adds it)
        if rows and rows[0].get(key) is not None:  # runs written before a field was kept lack it
            outcomes[name] = unit_outcomes(
                name, {r["prompt_id"]: r[key] for r in rows if r.get(key) is not None}, tasks
            )
    name, key = SAMPLED
    if rows and rows[0].get(key) is not None:
        outcomes[name] = {r["prompt_id"]: r[key] for r in rows if r.get(key) is not None}
    preferences = RunFolder(run).heldout_preferences()
    if preferences:
        outcomes[PREFERENCE] = _per_prompt(preferences, "correct")
    return outcomes


def sample_answers(run: Path, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """`n` held-out answers of a run's tuned model drawn at random (seeded), with their prompt and verdicts: what a
    reader should see beside the run's numbers (a metric can rise because answers found the judge's blind spot)."""
    import random

    rows = RunFolder(run).eval_outputs()
    keep = ("prompt", "tuned_output", "tuned_strict", "tuned_task_check")
    return [{k: r.get(k) for k in keep} for r in random.Random(seed).sample(rows, min(n, len(rows)))]


def run_units(run: Path) -> dict[str, tuple[str, str]]:
    """Held-out prompt id -> (its base task, its constraint types): the cluster and the fixed stratum of
    each greedy unit (empty for runs written before eval_outputs.jsonl kept the base task)."""
    rows = RunFolder(run).eval_outputs()
    if not rows or any(r.get("base_task") is None for r in rows):
        return {}
    return {r["prompt_id"]: (str(r["base_task"]), "+".join(sorted(r.get("instructions") or []))) for r in rows}


def group_runs(runs: list[RunRecord]) -> None:
    """Give each run (anything with path, strategy, budget, seed and a `setting`) its cell, context and label.

    Refuses two folders of one cell and seed, and greedy metrics evaluated on different
    held-out prompts within one context (they could not be paired).
    """
    settings = [r.setting for r in runs]
    for run, label, shared in zip(runs, labels(settings), labels([without_strategy(s) for s in settings])):
        run.cell, run.context, run.label, run.context_label = (
            cell_key(run.setting),
            context_key(run.setting),
            label,
            shared,
        )
    refuse_duplicates((r.cell, r.seed, r.path, describe(r)) for r in runs)
    by_context: dict[str, list[Any]] = defaultdict(list)
    for run in runs:
        by_context[run.context].append(run)
    for members in by_context.values():
        for metric in METRICS:
            having = [r for r in members if r.outcomes.get(metric)]
            odd = next((r for r in having[1:] if r.outcomes[metric].keys() != having[0].outcomes[metric].keys()), None)
            if odd is not None:
                first = having[0]
                raise BenchError(
                    f"{metric}: {first.path} and {odd.path} were evaluated on different held-out prompts "
                    f"({len(first.outcomes[metric])} and {len(odd.outcomes[metric])} prompts, "
                    f"{len(first.outcomes[metric].keys() ^ odd.outcomes[metric].keys())} not shared) although nothing else "
                    "tells them apart; pass runs of one evaluation configuration, e.g. the cells of one matrix run."
                )


def describe(run: RunRecord) -> str:
    return f"{run.strategy}, budget {run.budget}" + (f", {run.label}" if run.label else "")
