"""The verifiable metrics, each defined once: the evaluate stage, the ifeval/ifbench suites,
`bench power` and the comparison report all compute them from these functions.

A prompt's verdicts are one entry per constraint: True (followed), False, or None when the
constraint's checker cannot run here. An unscorable verdict is left out, never failed:

- `prompt_strict_acc` (and `_loose`): the share of prompts whose every constraint is followed,
  over the prompts whose every constraint could be checked;
- `instruction_strict_acc` (and `_loose`): IFEval's pooled ratio, constraints followed over
  constraints checked, across all prompts;
- `mean_words`: the greedy output's length in words;
- `cut_share`: the share of greedy outputs cut at max_new_tokens (a cut answer has not finished; the primary
  metric counts it as not done).

The verifiable judge sees only the constraint, so a model can pass it without doing the task (`P.S.` alone
passes "end with a postscript"). Next to it, where the rows carry the task check's verdict (`task`:
harness/evaluation/task_check.py), four more, which every report shows beside the constraint accuracy:

- `task_done_rate`: the share of answers that do their base task;
- `prompt_strict_task_acc`: every constraint followed (strict) AND the task done;
- `prompt_strict_task_uncut_acc`: the same, and the answer not cut at max_new_tokens: the primary metric. Tuned
  models answer at greater length, and an answer cut mid-way has not done its task even where the part before the
  cut passes (docs/testbed.md, "Truncation"); the task record's `cut` is the generation's flag;
- `degenerate_share`, and `degenerate_share_<kind>` for each of DEGENERATE_KINDS: the share the task check
  rejects, by what it found.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.core.stats import mean_ci, metric, ratio_ci

METRICS_VERSION = 2
"""Changes whenever the metrics computed from graded rows change (2: `cut_share`, and the primary metric reads the
task record's `cut`): part of the evaluations' grader key, so no cached evaluation reports the old set."""

Verdicts = Sequence[bool | None]
MODES = ("strict", "loose")

DEGENERATE_KINDS = ("marker_only", "loop", "echo", "refusal", "off_topic")
"""What the task check calls an answer that does not do its task."""
UNCUT_METRIC = "prompt_strict_task_uncut_acc"
"""The one metric that also reads the task record's `cut`."""
PRIMARY_METRIC = UNCUT_METRIC
PAIRED_TASK_METRICS = ("prompt_strict_task_acc", UNCUT_METRIC)
"""The task metrics each run also reports as a paired tuned − base difference: constraint and task, with and
without counting a cut answer as not done."""
"""The headline: constraint followed AND task done AND the answer whole (a constraint-only metric rewards the
checker's loopholes; one that ignores cut answers rewards length)."""
TASK_METRICS = {
    "prompt_strict_task_acc": "per held-out prompt, every constraint followed (strict) and the task done (the task check)",
    "prompt_strict_task_uncut_acc": "per held-out prompt, every constraint followed (strict), the task done (the task check) "
    "and the answer not cut at max_new_tokens",
    "task_done_rate": "per held-out prompt, the answer does its base task (the task check)",
    "degenerate_share": "per held-out prompt, the task check rejects the answer (marker-only, loop, echo, refusal, off-topic)",
}
"""The metrics that need the task check's verdict, and what one unit of each is."""
TASK_JUDGE = "task check (harness/evaluation/task_check.py)"


def prompt_pass(verdicts: Verdicts) -> float | None:
    """1.0 when every constraint is followed, 0.0 when one is not, None when one cannot be checked."""
    if None in verdicts:
        return None
    return float(all(verdicts))


def instruction_counts(verdicts: Verdicts) -> tuple[int, int]:
    """(constraints followed, constraints checked) of one prompt."""
    checked = [v for v in verdicts if v is not None]
    return sum(checked), len(checked)


def instruction_share(verdicts: Verdicts) -> float | None:
    """The share of a prompt's checkable constraints it follows (None when none can be checked)."""
    followed, checked = instruction_counts(verdicts)
    return followed / checked if checked else None


def task_unit(name: str, verdicts: Verdicts, task: dict | None) -> float | None:
    """One prompt's outcome on a TASK_METRICS metric (None where its verdicts, the task check or, for the uncut
    metric, the task record's `cut` are missing)."""
    if task is None or (name == UNCUT_METRIC and task.get("cut") is None):
        return None
    done = float(task["done"])
    if name == "task_done_rate":
        return done
    if name == "degenerate_share":
        return 1.0 - done
    passed = prompt_pass(verdicts)
    if passed is None:
        return None
    return passed * done * (1.0 - float(task["cut"])) if name == UNCUT_METRIC else passed * done


def unit_outcomes(
    name: str, verdicts_by_prompt: dict[str, Verdicts], tasks: dict[str, dict] | None = None
) -> dict[str, float]:
    """Per-prompt outcomes whose plain mean is the metric `name` over these prompts.

    Paired and variance analyses (`bench power`, paired tests) work on per-prompt units; for the
    prompt-level metrics a unit is the prompt's pass, for the pooled instruction-level ratio it
    is the prompt's followed count scaled by n / (constraints checked), so that the mean of the
    units is exactly the pooled ratio; for TASK_METRICS (which need `tasks`, prompt id -> the task check's
    verdict) it is `task_unit`.
    """
    if name in TASK_METRICS:
        units = {pid: task_unit(name, v, (tasks or {}).get(pid)) for pid, v in verdicts_by_prompt.items()}
        return {pid: u for pid, u in units.items() if u is not None}
    if name.startswith("prompt_"):
        passes = {pid: prompt_pass(v) for pid, v in verdicts_by_prompt.items()}
        return {pid: p for pid, p in passes.items() if p is not None}
    counts = {pid: instruction_counts(v) for pid, v in verdicts_by_prompt.items()}
    counts = {pid: c for pid, c in counts.items() if c[1]}
    total = sum(c[1] for c in counts.values())
    return {pid: followed * len(counts) / total for pid, (followed, _) in counts.items()}


def accuracies(rows: list[dict[str, Any]], bootstrap: int, judge: str, weak: bool, seed: int = 0) -> dict[str, dict]:
    """IFEval's prompt- and instruction-level strict/loose accuracy, plus mean words, with intervals."""
    out = {}
    for mode in MODES:
        passes = [p for p in (prompt_pass(r[mode]) for r in rows) if p is not None]
        counts = [c for c in (instruction_counts(r[mode]) for r in rows) if c[1]]
        followed, total = [float(f) for f, _ in counts], [float(t) for _, t in counts]
        out[f"prompt_{mode}_acc"] = metric(mean_ci(passes, n_boot=bootstrap, seed=seed), len(passes), judge, weak)
        out[f"instruction_{mode}_acc"] = metric(
            ratio_ci(followed, total, n_boot=bootstrap, seed=seed), int(sum(total)), judge, weak
        )
    words = [float(len(r["output"].split())) for r in rows]
    out["mean_words"] = metric(mean_ci(words, n_boot=bootstrap, seed=seed), len(rows), "none (length)")
    cut = [float(r["truncated"]) for r in rows if r.get("truncated") is not None]
    if cut:
        out["cut_share"] = metric(mean_ci(cut, n_boot=bootstrap, seed=seed), len(cut), "none (cut at max_new_tokens)")
    if rows and all(r.get("task") for r in rows):
        out.update(task_accuracies(rows, bootstrap, judge, seed))
    return out


def task_accuracies(rows: list[dict[str, Any]], bootstrap: int, judge: str, seed: int = 0) -> dict[str, dict]:
    """The task-check metrics of rows that carry `task` ({done, kind}), with intervals."""
    out = {}
    for name in TASK_METRICS:
        units = [u for u in (task_unit(name, r["strict"], r["task"]) for r in rows) if u is not None]
        if not units:
            continue
        who = f"{judge} AND {TASK_JUDGE}" if name.startswith("prompt_") else TASK_JUDGE
        out[name] = metric(mean_ci(units, n_boot=bootstrap, seed=seed), len(units), who)
    for kind in DEGENERATE_KINDS:
        units = [float(r["task"]["kind"] == kind) for r in rows]
        out[f"degenerate_share_{kind}"] = metric(mean_ci(units, n_boot=bootstrap, seed=seed), len(units), TASK_JUDGE)
    return out
