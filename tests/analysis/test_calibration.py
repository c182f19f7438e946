"""Calibration by simulation: our intervals, verdicts and power on data whose truth is known.

Numpy only and seeded, so every run draws the same datasets. Each check calls the functions
the reports and `bench power` call (harness.core.stats, harness.analysis.power) and asserts, within
Monte-Carlo error (the bounds below are nominal ± about 2.5 Monte-Carlo standard errors), that
an interval covers at its nominal rate, that a verdict's false-positive rate under the null is
at most nominal (singly, and family-wise with Holm), and that the power `bench power`
promises is the power the verdict test achieves. `benchmarks/calibration.py` prints the same
quantities as a table.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from harness.analysis.power import components_from_pairs, mde, power_curve
from harness.core.stats import holm, mean_ci, newcombe_paired, paired_ci, ratio_ci, seed_test, strata_df, wilson


def _mc_bound(rate: float, reps: int, k: float = 2.5) -> float:
    return k * np.sqrt(rate * (1 - rate) / reps)


def binary_matrix(
    rng: np.random.Generator, cells: int, seeds: int, units: int, run_sd: float, effects: np.ndarray | None = None
) -> np.ndarray:
    """Outcomes (cells × seeds × units) ~ Bernoulli(q_u + effect_c + shift_cs): the testbed's greedy pass/fail."""
    q = rng.uniform(0.2, 0.8, units)
    shift = rng.normal(0, run_sd, (cells, seeds, 1))
    effect = np.zeros((cells, 1, 1)) if effects is None else effects[:, None, None]
    return (rng.random((cells, seeds, units)) < np.clip(q + effect + shift, 0, 1)).astype(float)


def _verdict(a: np.ndarray, b: np.ndarray) -> dict:
    return seed_test(list(a - b), crossed=True)


@pytest.mark.parametrize("n", [12, 48])
def test_wilson_covers_binary_means_exactly_computed(n: int) -> None:
    """Exact coverage (a sum over the binomial, no simulation) over a grid of true rates."""
    grid = np.linspace(0.05, 0.95, 19)
    coverage = []
    for p in grid:
        k = np.arange(n + 1)
        inside = np.array([lo <= p <= hi for lo, hi in (wilson(float(j), n) for j in k)])
        coverage.append(float(stats.binom.pmf(k, n, p)[inside].sum()))
    assert np.mean(coverage) >= 0.945 and min(coverage) >= 0.89
    assert mean_ci([1.0] * n, n_boot=10, seed=0)[1] < 1 - 0.1 * 12 / n  # every item passed: not a zero-width [1, 1]


@pytest.mark.parametrize("n", [12, 48])
def test_newcombe_covers_paired_binary_differences(n: int) -> None:
    rng = np.random.default_rng(100 + n)
    reps, hits = 4000, 0
    p_both, p_x, p_y = 0.35, 0.15, 0.05  # correlated pass/fail of tuned and base on one prompt; true diff 0.10
    for _ in range(reps):
        u = rng.random(n)
        x = (u < p_both + p_x).astype(float)
        y = ((u < p_both) | ((u >= p_both + p_x) & (u < p_both + p_x + p_y))).astype(float)
        _, lo, hi = newcombe_paired(x, y)
        hits += lo <= p_x - p_y <= hi
    assert hits / reps >= 0.95 - _mc_bound(0.95, reps)
    same = np.array([1.0] * (n // 2) + [0.0] * (n - n // 2))
    _, lo, hi = newcombe_paired(same, same)
    assert lo < 0 < hi  # every prompt agrees: an honest non-zero interval, not [0, 0]


def test_cluster_ratio_ci_never_prints_zero_width() -> None:
    value, lo, hi = ratio_ci([3, 2, 4], [3, 2, 4], n_boot=100, seed=0)
    assert value == 1.0 and hi == 1.0 and lo < 0.5
    boot = paired_ci(np.ones(20), np.ones(20), n_boot=999, seed=0)
    assert boot["p"] == 1.0 and boot["low"] < 0 < boot["high"]
    shifted = paired_ci(np.ones(20), np.zeros(20), n_boot=999, seed=0)
    assert shifted["p"] == pytest.approx(2 / 1000)  # no resample crosses 0: p is bounded by 2/(n_boot+1), never 0


@pytest.mark.parametrize("run_sd,seeds", [(0.0, 3), (0.02, 4), (0.05, 4), (0.05, 3)])
def test_verdicts_keep_their_false_positive_rate_under_run_to_run_noise(run_sd: float, seeds: int) -> None:
    """No true effect, runs shifting between seeds: the verdict fires ≤ 5% (the run-fixed interval does not)."""
    rng = np.random.default_rng(int(run_sd * 1000) + seeds)
    reps, verdict_fp, fixed_fp = 800, 0, 0
    for _ in range(reps):
        a, b = binary_matrix(rng, 2, seeds, 96, run_sd)
        v = _verdict(a, b)
        verdict_fp += v["low"] > 0 or v["high"] < 0
        fixed = paired_ci(a.mean(axis=0), b.mean(axis=0), n_boot=300, seed=0)
        fixed_fp += fixed["low"] > 0 or fixed["high"] < 0
    assert verdict_fp / reps <= 0.05 + _mc_bound(0.05, reps)
    if run_sd >= 0.05:
        assert fixed_fp / reps > 0.10  # why the prompt interval is labelled "these runs differ" and never a verdict


def test_verdict_interval_covers_an_effect_with_prompt_by_strategy_interaction() -> None:
    """Crossed design with every component present: the two-way interval covers the population effect."""
    rng = np.random.default_rng(7)
    s, n, mu, reps, hits = 4, 96, 0.04, 1500, 0
    for _ in range(reps):
        d = mu + rng.normal(0, 0.03, (s, 1)) + rng.normal(0, 0.15, (1, n)) + rng.normal(0, 0.5, (s, n))
        v = seed_test(list(d), crossed=True)
        hits += v["low"] <= mu <= v["high"]
    assert hits / reps >= 0.95 - _mc_bound(0.95, reps)


def test_nested_verdicts_keep_their_false_positive_rate() -> None:
    """Held-out units drawn anew per seed (each seed's own pool): a t over per-seed mean differences."""
    rng = np.random.default_rng(8)
    reps, fp = 1500, 0
    for _ in range(reps):
        per_seed = [rng.normal(rng.normal(0, 0.04), 0.6, int(rng.integers(20, 40))) for _ in range(3)]
        v = seed_test(per_seed, crossed=False)
        fp += v["low"] > 0 or v["high"] < 0
    assert fp / reps <= 0.05 + _mc_bound(0.05, reps)


@pytest.mark.parametrize("crossed", [True, False])
def test_seeds_that_agree_by_chance_do_not_make_a_verdict_certain(crossed: bool) -> None:
    """Two seeds whose mean differences are equal (as two seeds of the curve were, both −11/495 on 495 pass/fail
    prompts) but whose prompts disagree: the interval keeps the width the prompts' own noise gives it, and a
    difference of 0.022 on that noise is no verdict. Without the floor the interval was [−0.022, −0.022], p < 0.001."""
    rng = np.random.default_rng(12)
    n = 495
    first = np.zeros(n)
    first[rng.choice(n, 80, replace=False)] = 1.0
    first[rng.choice(np.flatnonzero(first == 0), 91, replace=False)] = -1.0  # mean −11/495
    second = rng.permutation(first)  # the same mean, on other prompts
    v = seed_test([first, second], crossed=crossed)
    assert v["diff"] == pytest.approx(-11 / n)
    assert v["p"] > 0.05 and v["low"] < -0.1 and v["high"] > 0.05
    assert seed_test([first, first], crossed=crossed)["p"] > 0.05  # identical prompts too: chance, not certainty


def test_holm_controls_the_family_wise_rate_of_eight_strategies_against_a_baseline() -> None:
    rng = np.random.default_rng(9)
    reps, raw_any, holm_any = 400, 0, 0
    for _ in range(reps):
        runs = binary_matrix(rng, 9, 3, 48, 0.02)
        p = [_verdict(runs[k], runs[0])["p"] for k in range(1, 9)]
        raw_any += min(p) < 0.05
        holm_any += min(holm(p)) < 0.05  # type: ignore[type-var]
    assert holm_any / reps <= 0.05 + _mc_bound(0.05, reps)
    assert raw_any / reps > 0.10  # eight unadjusted tests: at least one 'significant' far more often than 5%


@pytest.mark.parametrize("design", ["crossed", "nested"])
def test_promised_power_is_the_power_the_verdict_test_achieves(design: str) -> None:
    """At the MDE `bench power` prints, the verdict test on data of those components finds the effect 80% of the time."""
    rng = np.random.default_rng(10)
    s, n, reps = 4, 96, 2000
    if design == "crossed":
        comp = {"design": "crossed", "var_a": 0.02**2, "var_a_upper": 0.04**2, "var_b": 0.1**2, "var_e": 0.45**2}
    else:
        comp = {"design": "nested", "var_a": 0.02**2, "var_a_upper": 0.04**2, "var_unit": 0.46**2}
    effect = mde(comp, n, s, 0.05, 0.8)
    assert power_curve(comp, n, s, 0.05)(effect) == pytest.approx(0.8, abs=0.002)
    found = 0
    for _ in range(reps):
        shifts = rng.normal(0, comp["var_a"] ** 0.5, (s, 1))
        if design == "crossed":
            d = (
                effect
                + shifts
                + rng.normal(0, comp["var_b"] ** 0.5, (1, n))
                + rng.normal(0, comp["var_e"] ** 0.5, (s, n))
            )
        else:
            d = effect + shifts + rng.normal(0, comp["var_unit"] ** 0.5, (s, n))
        v = seed_test(list(d), crossed=design == "crossed")
        found += v["low"] > 0 or v["high"] < 0
    assert abs(found / reps - 0.8) <= _mc_bound(0.8, reps) + 0.01


def test_power_from_a_binary_pilot_matches_the_binary_truth() -> None:
    """End to end on pass/fail data: components estimated from a 5-cell pilot, MDE, then fresh matrices at that effect."""
    rng = np.random.default_rng(11)
    s, n = 4, 96
    pilot = binary_matrix(rng, 5, s, n, 0.02)
    comp = components_from_pairs([list(pilot[a] - pilot[b]) for a in range(5) for b in range(a + 1, 5)], True, 5)
    effect = mde(comp, n, s, 0.05, 0.8)
    assert 0.04 < effect < 0.2
    reps, found = 600, 0
    for _ in range(reps):
        a, b = binary_matrix(rng, 2, s, n, 0.02, effects=np.array([effect, 0.0]))
        v = _verdict(a, b)
        found += v["low"] > 0
    # one pilot's estimate carries its own error (its 95% upper bound is printed for that reason): a wider band
    assert 0.62 <= found / reps <= 0.95


def test_question_clustered_mt_bench_interval_covers_when_turns_correlate() -> None:
    """Two turns of one question share its difficulty: resampling questions covers, resampling judgments does not."""
    rng = np.random.default_rng(12)
    reps, n_q, hits, naive_hits = 300, 40, 0, 0

    def questions(count: int) -> np.ndarray:
        difficulty = rng.normal(0, 2.0, (count, 1))
        return np.clip(np.round(6 + difficulty + rng.normal(0, 1.0, (count, 2))), 1, 10)

    truth = float(questions(200_000).mean())
    for rep in range(reps):
        scores = questions(n_q)
        _, lo, hi = ratio_ci(scores.sum(axis=1), np.full(n_q, 2.0), n_boot=400, seed=rep)
        hits += lo <= truth <= hi
        _, lo, hi = mean_ci(scores.ravel(), n_boot=400, seed=rep)
        naive_hits += lo <= truth <= hi
    assert hits / reps >= 0.95 - _mc_bound(0.95, reps, 3)
    assert naive_hits / reps < hits / reps


TASKS, TYPES = 90, 11


def _layout(n: int) -> tuple[list[str], list[str]]:
    """n held-out prompts as the planner lays them out: every base task once per constraint type, types balanced."""
    return [f"task{i % TASKS}" for i in range(n)], [f"type{i % TYPES}" for i in range(n)]


def _clustered(rng: np.random.Generator, s: int, n: int, effect: float, sd: dict[str, float]) -> np.ndarray:
    """Per-seed × per-prompt differences A − B: run shift, a fixed type effect (zero on average), a base-task
    interaction shared by the task's prompts, a prompt interaction and noise."""
    tasks, types = _layout(n)
    t_idx = np.array([int(t[4:]) for t in tasks])
    y_idx = np.array([int(t[4:]) for t in types])
    type_effect = np.linspace(-sd["type"], sd["type"], TYPES)  # fixed by the design, sums to 0
    return (
        effect
        + rng.normal(0, sd["a"], (s, 1))
        + type_effect[y_idx][None, :]
        + rng.normal(0, sd["c"], TASKS)[t_idx][None, :]
        + rng.normal(0, sd["b"], (1, n))
        + rng.normal(0, sd["e"], (s, n))
    )


def test_clustered_verdicts_keep_their_false_positive_rate_where_prompt_units_do_not() -> None:
    """495 prompts on 90 base tasks, 6 seeds, pass/fail outcomes whose task part moves all of a task's
    prompts together: resampling tasks keeps the rate ≤ 5%; treating prompts as independent does not."""
    rng = np.random.default_rng(21)
    s, n, reps = 6, 495, 600
    tasks, types = _layout(n)
    t_idx = np.array([int(t[4:]) for t in tasks])
    fp_cluster = fp_prompt = 0
    for _ in range(reps):
        q = np.clip(0.5 + rng.normal(0, 0.15, TASKS)[t_idx], 0.05, 0.95)
        tilt = rng.normal(0, 0.12, TASKS)[t_idx]  # the task-by-strategy interaction: a task suits A or B
        shift = rng.normal(0, 0.01, (2, s, 1))
        a = (rng.random((s, n)) < np.clip(q + tilt / 2 + shift[0], 0, 1)).astype(float)
        b = (rng.random((s, n)) < np.clip(q - tilt / 2 + shift[1], 0, 1)).astype(float)
        # the population difference is E[tilt] = 0
        v = seed_test(list(a - b), crossed=True, clusters=tasks, strata=types)
        fp_cluster += v["low"] > 0 or v["high"] < 0
        w = seed_test(list(a - b), crossed=True)
        fp_prompt += w["low"] > 0 or w["high"] < 0
    assert fp_cluster / reps <= 0.05 + _mc_bound(0.05, reps)
    assert fp_prompt / reps > fp_cluster / reps + 0.02


@pytest.mark.parametrize(
    "sd",
    [
        {"a": 0.015, "type": 0.2, "c": 0.08, "b": 0.1, "e": 0.45},
        {"a": 0.03, "type": 0.3, "c": 0.0, "b": 0.12, "e": 0.45},
    ],
)
def test_clustered_power_promised_at_the_printed_mde_is_achieved(sd: dict[str, float]) -> None:
    """Components estimated the way `bench power` does, from a pilot of known truth; at the MDE printed for 495 prompts
    x 6 seeds the clustered verdict finds the effect 80% ± 2% of the time; with no effect it fires ≤ 5%."""
    rng = np.random.default_rng(22)
    s, n = 6, 495
    tasks, types = _layout(n)
    truth = {
        "design": "crossed",
        "n_units": n,
        "n_clusters": TASKS,
        "strata": TYPES,
        "strata_df": strata_df(tuple(tasks), tuple(types)),
        "var_a": sd["a"] ** 2,
        "var_a_upper": sd["a"] ** 2,
        "var_c": sd["c"] ** 2,
        "var_b": sd["b"] ** 2,
        "var_e": sd["e"] ** 2,
    }
    effect = mde(truth, n, s, 0.05, 0.8)
    assert power_curve(truth, n, s, 0.05)(effect) == pytest.approx(0.8, abs=0.003)
    reps, found, fp = 1500, 0, 0
    for _ in range(reps):
        v = seed_test(list(_clustered(rng, s, n, effect, sd)), crossed=True, clusters=tasks, strata=types)
        found += v["low"] > 0 or v["high"] < 0
        v0 = seed_test(list(_clustered(rng, s, n, 0.0, sd)), crossed=True, clusters=tasks, strata=types)
        fp += v0["low"] > 0 or v0["high"] < 0
    assert abs(found / reps - 0.8) <= 0.02 + _mc_bound(0.8, reps)
    assert fp / reps <= 0.05 + _mc_bound(0.05, reps)
    # the pilot's estimate of the components recovers the truth it was drawn from
    pilot = [list(_clustered(rng, s, n, 0.0, sd)) for _ in range(8)]
    est = components_from_pairs(pilot, True, 9, tasks, types)
    assert (
        est["n_clusters"] == TASKS and est["strata"] == TYPES and est["strata_df"] == pytest.approx(truth["strata_df"])
    )
    assert (
        truth["strata_df"] < 1
    )  # every task holds 5-6 of the 11 types, spread evenly: removing the types costs the tasks little
    assert est["var_e"] == pytest.approx(sd["e"] ** 2, rel=0.05)
    assert abs(est["var_c"] - sd["c"] ** 2) < 0.004 and abs(est["var_b"] - sd["b"] ** 2) < 0.006
    type_var = float(np.var(np.linspace(-sd["type"], sd["type"], TYPES), ddof=1))
    assert est["stratum_share"] == pytest.approx(type_var / (type_var + sd["c"] ** 2 + sd["b"] ** 2), abs=0.05)
