"""The verifiable metrics, each defined once: the evaluate stage, the ifeval/ifbench suites,
`bench power` and the comparison report all compute them from these functions.

A prompt's verdicts are one entry per constraint: True (followed), False, or None when the
constraint's checker cannot run here. An unscorable verdict is left out, never failed:

- `prompt_strict_acc` (and `_loose`): the share of prompts whose every constraint is followed,
  over the prompts whose every constraint could be checked;
- `instruction_strict_acc` (and `_loose`): IFEval's pooled ratio, constraints followed over
  constraints checked, across all prompts;
- `mean_words`: the greedy output's length in words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.core.stats import mean_ci, metric, ratio_ci

Verdicts = Sequence[bool | None]
MODES = ("strict", "loose")


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


def unit_outcomes(name: str, verdicts_by_prompt: dict[str, Verdicts]) -> dict[str, float]:
    """Per-prompt outcomes whose plain mean is the metric `name` over these prompts.

    Paired and variance analyses (`bench power`, paired tests) work on per-prompt units; for the
    prompt-level metrics a unit is the prompt's pass, for the pooled instruction-level ratio it
    is the prompt's followed count scaled by n / (constraints checked), so that the mean of the
    units is exactly the pooled ratio.
    """
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
        out[f"instruction_{mode}_acc"] = metric(ratio_ci(followed, total, n_boot=bootstrap, seed=seed), int(sum(total)), judge, weak)
    words = [float(len(r["output"].split())) for r in rows]
    out["mean_words"] = metric(mean_ci(words, n_boot=bootstrap, seed=seed), len(rows), "none (length)")
    return out
