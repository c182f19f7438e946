"""Calibration table: coverage, false-positive rates and power of our statistics, on simulated data of known truth.

Prints, for the default testbed's sizes (12-48 held-out prompts per run, 96 in the confirmatory
matrix, 3-4 seeds), each quantity for the method the reports use now next to the simpler
method they used before (the percentile bootstrap over prompts holding the runs fixed; the
oracle z-test MDE), so the difference is measured, not asserted. The seeded, faster subset of
these checks is tests/analysis/test_calibration.py.

    python3 benchmarks/calibration.py [--reps 2000] [--out runs/benchmarks/calibration.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.analysis.power import components_from_pairs, mde  # noqa: E402
from harness.core.stats import bootstrap, holm, mean_ci, paired_ci, ratio_ci, seed_test, strata_df  # noqa: E402


def binary_matrix(
    rng: np.random.Generator, cells: int, seeds: int, units: int, run_sd: float, effects: np.ndarray | None = None
) -> np.ndarray:
    q = rng.uniform(0.2, 0.8, units)
    shift = rng.normal(0, run_sd, (cells, seeds, 1))
    effect = np.zeros((cells, 1, 1)) if effects is None else effects[:, None, None]
    return (rng.random((cells, seeds, units)) < np.clip(q + effect + shift, 0, 1)).astype(float)


def coverage_of_binary_means(rng: np.random.Generator, n: int, reps: int) -> dict[str, float]:
    hit_now = hit_before = 0
    for rep in range(reps):
        p = rng.uniform(0.1, 0.9)
        x = (rng.random(n) < p).astype(float)
        _, lo, hi = mean_ci(x, n_boot=500, seed=rep)
        hit_now += lo <= p <= hi
        _, lo, hi = bootstrap(lambda idx: x[idx].mean(), n, n_boot=500, seed=rep)
        hit_before += lo <= p <= hi
    return {"now (Wilson)": hit_now / reps, "before (percentile bootstrap)": hit_before / reps}


def coverage_of_paired_differences(rng: np.random.Generator, n: int, reps: int) -> dict[str, float]:
    hit_now = hit_before = 0
    for rep in range(reps):
        u = rng.random(n)
        x = (u < 0.5).astype(float)
        y = ((u < 0.35) | ((u >= 0.5) & (u < 0.55))).astype(float)
        now = paired_ci(x, y, n_boot=500, seed=rep)
        hit_now += now["low"] <= 0.1 <= now["high"]
        d = x - y
        _, lo, hi = bootstrap(lambda idx: d[idx].mean(), n, n_boot=500, seed=rep)
        hit_before += lo <= 0.1 <= hi
    return {"now (Newcombe)": hit_now / reps, "before (percentile bootstrap)": hit_before / reps}


def false_positives(rng: np.random.Generator, run_sd: float, seeds: int, units: int, reps: int) -> dict[str, float]:
    now = before = 0
    for _ in range(reps):
        a, b = binary_matrix(rng, 2, seeds, units, run_sd)
        v = seed_test(list(a - b), crossed=True)
        now += v["low"] > 0 or v["high"] < 0
        fixed = paired_ci(a.mean(axis=0), b.mean(axis=0), n_boot=500, seed=0)
        before += fixed["low"] > 0 or fixed["high"] < 0
    return {"now (verdict over seeds)": now / reps, "before (prompt bootstrap, runs fixed)": before / reps}


def family_wise(rng: np.random.Generator, reps: int) -> dict[str, float]:
    raw = adjusted = 0
    for _ in range(reps):
        runs = binary_matrix(rng, 9, 3, 96, 0.02)
        p = [seed_test(list(runs[k] - runs[0]), crossed=True)["p"] for k in range(1, 9)]
        raw += min(p) < 0.05
        adjusted += min(holm(p)) < 0.05  # type: ignore[type-var]
    return {"now (Holm)": adjusted / reps, "before (unadjusted)": raw / reps}


def power_promised_vs_achieved(rng: np.random.Generator, seeds: int, reps: int) -> dict[str, float]:
    """A 9-cell binary pilot at 96 prompts: the MDE each method prints, and the verdict test's power at it."""
    n = 96
    pilot = binary_matrix(rng, 9, seeds, n, 0.02)
    comp = components_from_pairs([list(pilot[a] - pilot[b]) for a in range(9) for b in range(a + 1, 9)], True, 9)
    now = mde(comp, n, seeds, 0.05, 0.8)
    se = np.sqrt(comp["var_a"] / seeds + comp["var_b"] / n + comp["var_e"] / (n * seeds))
    before = float((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * se)

    def achieved(effect: float) -> float:
        found = 0
        for _ in range(reps):
            a, b = binary_matrix(rng, 2, seeds, n, 0.02, effects=np.array([effect, 0.0]))
            v = seed_test(list(a - b), crossed=True)
            found += v["low"] > 0 or v["high"] < 0
        return found / reps

    return {
        "MDE now": now,
        "power at it": achieved(now),
        "MDE before (z-test)": before,
        "power at it (before)": achieved(before),
    }


def mt_bench_coverage(rng: np.random.Generator, reps: int) -> dict[str, float]:
    def questions(count: int) -> np.ndarray:
        return np.clip(np.round(6 + rng.normal(0, 2.0, (count, 1)) + rng.normal(0, 1.0, (count, 2))), 1, 10)

    truth = float(questions(200_000).mean())
    now = before = 0
    for rep in range(reps):
        scores = questions(80)
        _, lo, hi = ratio_ci(scores.sum(axis=1), np.full(80, 2.0), n_boot=500, seed=rep)
        now += lo <= truth <= hi
        _, lo, hi = mean_ci(scores.ravel(), n_boot=500, seed=rep)
        before += lo <= truth <= hi
    return {"now (questions resampled)": now / reps, "before (judgments resampled)": before / reps}


def clustered_layout(n: int, tasks: int = 90, types: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Held-out prompts as the planner lays them out: task i % 90, constraint type i % 11 (types balanced)."""
    return np.arange(n) % tasks, np.arange(n) % types


def clustered_false_positives(
    rng: np.random.Generator, seeds: int, n: int, task_sd: float, reps: int
) -> dict[str, float]:
    """Pass/fail on n held-out prompts of 90 base tasks, a task-by-strategy interaction of sd task_sd, no true effect:
    how often the verdict says 'significant', resampling base tasks (now) and prompts (before)."""
    tasks, types = clustered_layout(n)
    clusters, strata = [str(t) for t in tasks], [str(t) for t in types]
    now = before = 0
    for _ in range(reps):
        q = np.clip(0.5 + rng.normal(0, 0.15, 90)[tasks], 0.05, 0.95)
        tilt = rng.normal(0, task_sd, 90)[tasks]
        a = (rng.random((seeds, n)) < np.clip(q + tilt / 2, 0, 1)).astype(float)
        b = (rng.random((seeds, n)) < np.clip(q - tilt / 2, 0, 1)).astype(float)
        v = seed_test(list(a - b), crossed=True, clusters=clusters, strata=strata)
        w = seed_test(list(a - b), crossed=True)
        now += v["low"] > 0 or v["high"] < 0
        before += w["low"] > 0 or w["high"] < 0
    return {"now (base task resampled, type fixed)": now / reps, "before (prompt resampled)": before / reps}


def clustered_power(rng: np.random.Generator, seeds: int, n: int, reps: int) -> dict[str, float]:
    """Normal data with every component (run shift, type, task and prompt interactions, noise): the verdict test's
    power at the MDE `bench power` prints for these components, and its false-positive rate with no effect."""
    tasks, types = clustered_layout(n)
    clusters, strata = [str(t) for t in tasks], [str(t) for t in types]
    sd = {"a": 0.015, "type": 0.2, "c": 0.08, "b": 0.1, "e": 0.45}
    comp = {
        "design": "crossed",
        "n_units": n,
        "n_clusters": 90,
        "strata": 11,
        "strata_df": strata_df(tuple(clusters), tuple(strata)),
        "var_a": sd["a"] ** 2,
        "var_a_upper": sd["a"] ** 2,
        "var_c": sd["c"] ** 2,
        "var_b": sd["b"] ** 2,
        "var_e": sd["e"] ** 2,
    }
    effect = mde(comp, n, seeds, 0.05, 0.8)
    type_effect = np.linspace(-sd["type"], sd["type"], 11)[types]

    def draw(mu: float) -> np.ndarray:
        return (
            mu
            + rng.normal(0, sd["a"], (seeds, 1))
            + type_effect[None, :]
            + rng.normal(0, sd["c"], 90)[tasks][None, :]
            + rng.normal(0, sd["b"], (1, n))
            + rng.normal(0, sd["e"], (seeds, n))
        )

    found = sum(
        bool(
            (v := seed_test(list(draw(effect)), crossed=True, clusters=clusters, strata=strata))["low"] > 0
            or v["high"] < 0
        )
        for _ in range(reps)
    )
    fp = sum(
        bool(
            (v := seed_test(list(draw(0.0)), crossed=True, clusters=clusters, strata=strata))["low"] > 0
            or v["high"] < 0
        )
        for _ in range(reps)
    )
    return {"MDE": effect, "power promised": 0.8, "achieved": found / reps, "false positives": fp / reps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--reps",
        type=int,
        default=2000,
        help="simulated datasets per row (Monte-Carlo sd of a rate near 0.95: 0.005 at 2000)",
    )
    parser.add_argument("--out", type=Path, help="also write the table as JSON")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    reps = args.reps
    start = time.perf_counter()
    table: dict[str, dict[str, float]] = {}
    for n in (12, 48):
        table[f"95% CI of a binary mean, n = {n}: coverage"] = coverage_of_binary_means(rng, n, reps)
        table[f"95% CI of a paired binary difference, n = {n}: coverage"] = coverage_of_paired_differences(rng, n, reps)
    for run_sd, seeds, units in ((0.0, 3, 48), (0.02, 3, 48), (0.05, 3, 48), (0.02, 4, 96), (0.05, 4, 96)):
        table[f"'significant' with no effect, run-shift sd {run_sd}, {seeds} seeds x {units} prompts"] = (
            false_positives(rng, run_sd, seeds, units, reps // 2)
        )
    table["8 strategies vs a baseline, global null, 3 seeds x 96 prompts: P(any 'significant')"] = family_wise(
        rng, reps // 4
    )
    for seeds in (3, 4):
        table[f"power 0.8 promised at 96 prompts x {seeds} seeds"] = power_promised_vs_achieved(rng, seeds, reps // 2)
    table["MT-Bench score, 80 questions x 2 correlated turns: coverage"] = mt_bench_coverage(rng, reps // 4)
    for task_sd in (0.0, 0.12):
        table[
            f"clustered: 'significant' with no effect, 495 prompts / 90 tasks x 6 seeds, task interaction sd {task_sd}"
        ] = clustered_false_positives(rng, 6, 495, task_sd, reps // 4)
    for seeds, n in ((6, 495), (5, 495), (8, 660)):
        table[f"clustered: power 0.8 promised at {n} prompts / 90 tasks x {seeds} seeds"] = clustered_power(
            rng, seeds, n, reps // 2
        )
    width = max(len(k) for k in table)
    for name, row in table.items():
        print(f"{name:<{width}}  " + "  ".join(f"{k}: {v:.3f}" for k, v in row.items()))
    print(f"({reps} simulated datasets per coverage row; {time.perf_counter() - start:.0f} s)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
