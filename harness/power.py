"""Power analysis from a pilot matrix: how small a difference between two strategies can it detect?

A comparison of strategies A and B estimates the mean, over n evaluation units (held-out
prompts; for preference accuracy, the prompts of the held-out pairs, each the mean over its
pairs, since pairs sharing a prompt and responses are not independent), of the difference of their outcomes
averaged over s seeds each. With run shift δ (training randomness that moves a whole run),
per-unit seed noise e (a prompt flips between seeds) and strategy-by-unit interaction ab,

    SE²(n, s) = 2·σ²_δ/s + 2·σ²_e/(n·s) + σ²_ab/n.

From the pilot: V_run, the variance of run means across seeds of one strategy (pooled over
strategies), equals σ²_δ + σ²_e/n₀; W, the across-seed variance of one unit's outcome (pooled
over units and strategies), equals σ²_δ + σ²_e. So σ²_e = (W − V_run)·n₀/(n₀ − 1) and
σ²_δ = V_run − σ²_e/n₀. σ²_ab is the variance over units of the difference of two strategies'
seed-averaged outcomes minus σ²_e·(1/s_A + 1/s_B), pooled over strategy pairs (never below 0).
Where units differ between seeds (held-out pairs come from each seed's own pool), W cannot be
measured: the unit terms are then estimated within each seed, from single-run differences
(variance 2σ²_e + σ²_ab, split half and half), and since s seeds then average n·s distinct
units, the interaction term becomes σ²_ab/(n·s).

The minimum detectable effect at two-sided level α with power 1 − β is
MDE = (z_{1−α/2} + z_{1−β})·SE; the units needed for a target effect at s seeds solve
MDE(n, s) = effect, and when the seed term alone exceeds it no n is enough at that s.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from harness.config import BenchError
from harness.io import read_json, read_jsonl

Outcome = Callable[[dict[str, Any]], float]

# per-prompt outcomes read from a run's eval_outputs.jsonl (the tuned model's verdicts)
METRICS: dict[str, Outcome] = {
    "prompt_strict_acc": lambda r: float(all(r["tuned_strict"])),
    "instruction_strict_acc": lambda r: float(np.mean(r["tuned_strict"])),
    "prompt_loose_acc": lambda r: float(all(r["tuned_loose"])),
    "instruction_loose_acc": lambda r: float(np.mean(r["tuned_loose"])),
    "mean_verifiable_reward": lambda r: r["tuned_sampled_reward"],
}
# the eval_outputs field a metric needs: runs written before it was kept (or with samples off) lack it
NEEDS = {"prompt_loose_acc": "tuned_loose", "instruction_loose_acc": "tuned_loose", "mean_verifiable_reward": "tuned_sampled_reward"}


PREFERENCE = "preference_accuracy"


@dataclass
class PilotRun:
    path: Path
    strategy: str
    budget: int
    seed: int
    outcomes: dict[str, dict[str, float]]  # metric -> prompt id -> outcome


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
    if (run / "eval_outputs.jsonl").is_file():
        rows = read_jsonl(run / "eval_outputs.jsonl")
        outcomes = {
            name: {r["prompt_id"]: fn(r) for r in rows if r.get(NEEDS.get(name, "tuned_strict")) is not None}
            for name, fn in METRICS.items()
            if rows and rows[0].get(NEEDS.get(name, "tuned_strict")) is not None
        }
    if (run / "heldout_preferences.jsonl").is_file():
        outcomes[PREFERENCE] = _per_prompt(read_jsonl(run / "heldout_preferences.jsonl"), "correct")
    return outcomes


def load_pilot(paths: list[Path]) -> list[PilotRun]:
    """Run folders (or folders holding run folders, such as runs/<matrix>) with held-out outputs."""
    runs = []
    for path in paths:
        candidates = [path] if (path / "manifest.json").is_file() else sorted(p for p in path.iterdir() if (p / "manifest.json").is_file())
        for run in candidates:
            if not (run / "eval_outputs.jsonl").is_file():
                continue
            manifest, selection = read_json(run / "manifest.json"), read_json(run / "selection.json")
            runs.append(PilotRun(run, selection["strategy"], int(selection["budget"]), int(manifest["seed"]), run_outcomes(run)))
    if not runs:
        raise BenchError(f"no finished runs with held-out outputs (eval_outputs.jsonl) under {', '.join(map(str, paths))}.")
    return runs


def variance_components(runs: list[PilotRun], metric: str) -> dict[str, Any]:
    """σ²_δ, σ²_e and σ²_ab of `metric` from runs at one budget (see the module docstring)."""
    by_strategy: dict[str, list[PilotRun]] = defaultdict(list)
    for run in runs:
        if run.outcomes.get(metric):
            by_strategy[run.strategy].append(run)
    repeated = {k: g for k, g in by_strategy.items() if len(g) >= 2}
    if not repeated:
        raise BenchError("a power analysis needs at least one strategy run with 2 or more seeds (3 or more recommended).")
    if metric in METRICS:  # every run of one configuration answers the same held-out prompts
        first, *rest = [r for g in by_strategy.values() for r in g]
        odd = next((r for r in rest if r.outcomes[metric].keys() != first.outcomes[metric].keys()), None)
        if odd is not None:
            raise BenchError(f"{metric}: the runs were evaluated on different held-out prompts ({first.path}: "
                             f"{len(first.outcomes[metric])} prompts, {odd.path}: {len(odd.outcomes[metric])}); "
                             "pass runs of one evaluation configuration, e.g. the cells of one matrix run.")
    seeds = {k: len(g) for k, g in by_strategy.items()}
    dof = sum(len(g) - 1 for g in repeated.values())
    v_run = sum((len(g) - 1) * np.var([np.mean(list(r.outcomes[metric].values())) for r in g], ddof=1) for g in repeated.values()) / dof
    shared = sorted(set.intersection(*(set(r.outcomes[metric]) for g in by_strategy.values() for r in g)))
    if shared:
        n0 = len(shared)
        w = sum(np.var([[r.outcomes[metric][u] for u in shared] for r in g], axis=0, ddof=1).mean() * (len(g) - 1) for g in repeated.values()) / dof
        var_e = max((w - v_run) * n0 / max(n0 - 1, 1), 0.0)
        means = {k: np.array([np.mean([r.outcomes[metric][u] for r in g]) for u in shared]) for k, g in by_strategy.items()}
        ab = [max(float(np.var(means[a] - means[b], ddof=1)) - var_e * (1 / seeds[a] + 1 / seeds[b]), 0.0)
              for a, b in itertools.combinations(sorted(means), 2)]
        units = "shared"
    else:  # units differ by seed: single-run differences within each seed
        n0 = int(np.mean([len(r.outcomes[metric]) for g in by_strategy.values() for r in g]))
        single = []
        for seed in sorted({r.seed for g in by_strategy.values() for r in g}):
            at_seed = {k: next(r for r in g if r.seed == seed) for k, g in by_strategy.items() if any(r.seed == seed for r in g)}
            for a, b in itertools.combinations(sorted(at_seed), 2):
                common = sorted(set(at_seed[a].outcomes[metric]) & set(at_seed[b].outcomes[metric]))
                if len(common) > 1:
                    single.append(float(np.var([at_seed[a].outcomes[metric][u] - at_seed[b].outcomes[metric][u] for u in common], ddof=1)))
        if not single:
            raise BenchError(f"{metric}: no two strategies share evaluation units at any seed.")
        var_e = float(np.mean(single)) / 4  # half of the single-run difference variance, split over two runs
        ab = [float(np.mean(single)) / 2]
        units = "per seed"
    var_delta = max(v_run - var_e / n0, 0.0)
    return {
        "metric": metric, "n_units": n0, "units": units, "seeds": seeds, "strategies": len(by_strategy),
        "var_run": float(v_run), "var_delta": float(var_delta), "var_e": float(var_e), "var_ab": float(np.mean(ab)) if ab else 0.0,
        "seed_dof": dof,
    }


def _z(alpha: float, power: float) -> float:
    return float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))


def standard_error(comp: dict[str, Any], n: int, s: int) -> float:
    # with units drawn anew for each seed, s seeds average n·s distinct units: the interaction averages too
    interaction = comp["var_ab"] / (n * s) if comp["units"] == "per seed" else comp["var_ab"] / n
    return math.sqrt(2 * comp["var_delta"] / s + 2 * comp["var_e"] / (n * s) + interaction)


def mde(comp: dict[str, Any], n: int, s: int, alpha: float, power: float) -> float:
    return _z(alpha, power) * standard_error(comp, n, s)


def units_needed(comp: dict[str, Any], effect: float, s: int, alpha: float, power: float) -> int | None:
    """Smallest n with MDE(n, s) ≤ effect; None when the run-shift term alone is too large at s seeds."""
    room = (effect / _z(alpha, power)) ** 2 - 2 * comp["var_delta"] / s
    per_unit = (2 * comp["var_e"] + comp["var_ab"]) / s if comp["units"] == "per seed" else 2 * comp["var_e"] / s + comp["var_ab"]
    if room <= 0:
        return None
    return max(1, math.ceil(per_unit / room))


def analyse(runs: list[PilotRun], effect: float, alpha: float, power: float, seeds_options: tuple[int, ...] = (1, 3, 5, 10)) -> list[dict[str, Any]]:
    """One row per (budget, metric): the components, the MDE at the pilot's sizes, and the sizes a target needs."""
    rows = []
    for budget in sorted({r.budget for r in runs}):
        at_budget = [r for r in runs if r.budget == budget]
        for metric in [*METRICS, PREFERENCE]:
            if not any(r.outcomes.get(metric) for r in at_budget):
                continue
            comp = variance_components(at_budget, metric)
            pilot_seeds = min(comp["seeds"].values())
            row = {
                "budget": budget, **comp, "pilot_seeds": pilot_seeds,
                "mde_at_pilot": mde(comp, comp["n_units"], pilot_seeds, alpha, power),
                "units_needed": {s: units_needed(comp, effect, s, alpha, power) for s in seeds_options},
                "effect": effect, "alpha": alpha, "power": power,
            }
            row["detects_effect_at_pilot"] = row["mde_at_pilot"] <= effect
            rows.append(row)
    return rows
