"""Power analysis from a pilot matrix: how small a difference between two settings can the verdict test detect?

The verdict test (harness.core.stats.seed_test) compares two cells A and B on matched seeds. Per
matched seed s and evaluation unit u (a held-out prompt; for preference accuracy, the mean
over a prompt's held-out pairs, which share responses) the difference of their outcomes is

    d_su = μ + a_s + b_u + ε_su,   Var a = σ²_a, Var b = σ²_b, Var ε = σ²_ε,

with a_s the run shift of the difference (training randomness, and the pool, move a whole
run; what seed s's pool shares between A and B cancels), b_u the cell-by-unit interaction and
ε_su a unit flipping between seeds. Everything is estimated from differences of cells at
matched seeds, the quantity the test uses, never from one cell's spread.

- **Crossed** (every run answers the same units): the two-way mean squares of the s × n matrix
  give σ²_a = (MS_seed − MS_res)/n, σ²_b = (MS_unit − MS_res)/s, σ²_ε = MS_res, and
  Var(mean) = σ²_a/s + σ²_b/n + σ²_ε/(ns).
- **Clustered** (crossed, with the held-out prompts' base tasks and constraint types known):
  prompts of one base task are not independent and the constraint type is a fixed, balanced
  factor. The type means are removed (fixed strata) and the base task is the unit the test
  resamples (harness.core.stats.cluster_scores); the interaction splits into σ²_c (base task) and
  σ²_b (prompt within task), ICC = σ²_c/(σ²_c + σ²_b), and at n prompts over C tasks
  (m = n/C each) Var(mean) = σ²_a/s + (σ²_c + σ²_b/m)/C + σ²_ε/(mCs).
- **Nested** (units drawn anew per seed: held-out pairs reserved from each seed's own pool):
  σ²_b and σ²_ε cannot be told apart and need not be; with w the within-seed variance over
  units of d, Var(per-seed mean) = σ²_a + w/n, so σ²_a = var_s(mean d_s) − w/n and
  Var(mean) = σ²_a/s + w/(ns). Units shared by some seeds only are treated as nested (the
  per-seed means are then slightly correlated); held-out prompt sets of the greedy metrics
  must be identical and are refused otherwise.

Pooled over every pair of cells in a context, each estimate comes with a one-sided 95% upper
bound for σ²_a (χ² on the seed degrees of freedom, counted conservatively as
(cells − 1)·(seeds − 1)): with 3 seeds the run-shift term is poorly known, and the MDE at its
upper bound says how bad it may be.

Power is that of the test actually run: for nested designs the t over per-seed means (a
noncentral t with s − 1 df); for crossed designs the two-way interval with its Satterthwaite df
and the seeds-t floor. Both are evaluated under the normal model by simulating the test's
independent sufficient statistics (the mean, and the χ² mean squares), with common random
numbers so that the MDE is a clean root (scipy's noncentral t fails at large noncentrality).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats

from harness.analysis.runs import METRICS, PREFERENCE, RunRecord
from harness.core.errors import BenchError
from harness.core.stats import cluster_scores, crossed_half_width, strata_df, two_way

DRAWS = 40000
"""Simulated tests per power evaluation of a crossed design (Monte-Carlo sd of a power near 0.8: 0.002)."""
SEEDS_OPTIONS = (2, 3, 5, 10)
"""Seeds per cell for which `bench power` gives the units needed (one seed gives no verdict)."""


def unit_design(runs: list[Any], metric: str, units: list[str] | None) -> tuple[list[str] | None, list[str] | None]:
    """(clusters, strata) aligned with the shared `units` of a crossed design: each held-out prompt's base task
    and constraint types, when every run recorded them; (None, None) otherwise (each unit its own cluster).
    Held-out preference accuracy has units of its own (preference prompts): no clusters."""
    if units is None or metric == PREFERENCE or not all(r.units and all(u in r.units for u in units) for r in runs):
        return None, None
    first = runs[0].units
    strata = [first[u][1] for u in units]
    return [first[u][0] for u in units], (strata if len(set(strata)) > 1 else None)


def matched_differences(a: list[Any], b: list[Any], metric: str, units: list[str] | None) -> list[np.ndarray]:
    """Per matched seed, the per-unit differences A − B: on `units` (crossed) or on the units both runs share."""
    ours, theirs = ({r.seed: r for r in group} for group in (a, b))
    out = []
    for seed in sorted(set(ours) & set(theirs)):
        x, y = ours[seed].outcomes[metric], theirs[seed].outcomes[metric]
        shared = units if units is not None else sorted(set(x) & set(y))
        if len(shared) < 2:
            raise BenchError(
                f"{metric}: {ours[seed].path} and {theirs[seed].path} share {len(shared)} evaluation units; "
                "runs of one seed must be evaluated on the same units to be paired."
            )
        out.append(np.array([x[u] - y[u] for u in shared]))
    return out


def shared_units(runs: list[Any], metric: str) -> list[str] | None:
    """The units every run answered, when every run answered the same ones (a crossed design); else None."""
    sets = [frozenset(r.outcomes[metric]) for r in runs]
    return sorted(sets[0]) if sets and all(s == sets[0] for s in sets) else None


def components_from_pairs(
    diffs: list[list[np.ndarray]],
    crossed: bool,
    n_cells: int,
    clusters: list[str] | None = None,
    strata: list[str] | None = None,
) -> dict[str, Any]:
    """Pooled variance components from the matched per-seed differences of several cell pairs (see the module docstring).

    Crossed designs with `clusters` (each unit's base task) and `strata` (each unit's constraint
    types) split the cell-by-unit term into a cluster part σ²_c and a within-cluster part σ²_b,
    after removing the strata's fixed means: the cluster scores of harness.core.stats.cluster_scores
    (m units per cluster) have interaction variance σ²_c + σ²_b/m and residual σ²_ε/m.
    """
    diffs = [d for d in diffs if len(d) >= 2]
    if not diffs:
        raise BenchError(
            "a power analysis needs two settings run with the same 2 or more seeds (3 or more recommended)."
        )
    weights = np.array([len(d) - 1 for d in diffs], dtype=float)
    seeds = min(len(d) for d in diffs)
    dof = max(1, (n_cells - 1) * (seeds - 1))
    if crossed:
        n = diffs[0][0].size
        singletons = [str(i) for i in range(n)]
        lost = strata_df(tuple(singletons), tuple(strata)) if strata is not None else 0.0
        raw = np.array([two_way(np.vstack(d)) for d in diffs])  # (pairs, 3): before the strata are removed
        units = [np.vstack(d) if strata is None else cluster_scores(np.vstack(d), singletons, strata) for d in diffs]
        ms = np.array([two_way(u, lost) for u in units])
        ms_seed = float(np.average(ms[:, 0], weights=weights))
        ms_unit, ms_res = float(ms[:, 1].mean()), float(ms[:, 2].mean())
        var_a = max((ms_seed - ms_res) / n, 0.0)
        var_units = max((ms_unit - ms_res) / seeds, 0.0)  # the whole cell-by-unit term, within strata
        upper_ms = ms_seed * dof / float(stats.chi2.ppf(0.05, dof))
        comp = {
            "design": "crossed",
            "n_units": n,
            "var_a": var_a,
            "var_a_upper": max((upper_ms - ms_res) / n, 0.0),
            "var_b": var_units,
            "var_e": ms_res,
        }
        if strata is not None:
            before = max((float(raw[:, 1].mean()) - float(raw[:, 2].mean())) / seeds, 0.0)
            comp |= {
                "strata": len(set(strata)),
                "stratum_share": (1 - var_units / before) if before > 0 else 0.0,
                "strata_df": lost,
            }
        if clusters is not None:
            c = len(set(clusters))
            lost = strata_df(tuple(clusters), tuple(strata)) if strata is not None else 0.0
            comp["strata_df"] = lost
            scores = [two_way(cluster_scores(np.vstack(d), clusters, strata), lost) for d in diffs]
            ms_c = np.array(scores)
            var_cluster_scores = max(
                (float(ms_c[:, 1].mean()) - float(ms_c[:, 2].mean())) / seeds, 0.0
            )  # σ²_c + σ²_b/m
            m = n / c
            within = max((var_units - var_cluster_scores) / (1 - 1 / m), 0.0) if m > 1 else var_units
            var_c = max(var_units - within, 0.0) if m > 1 else 0.0
            comp |= {
                "n_clusters": c,
                "var_b": within,
                "var_c": var_c,
                "icc": (var_c / var_units) if var_units > 0 and m > 1 else None,
            }
    else:
        sizes = np.array([x.size for d in diffs for x in d], dtype=float)
        w = float(np.mean([np.var(x, ddof=1) for d in diffs for x in d]))
        var_means = float(np.average([np.var([x.mean() for x in d], ddof=1) for d in diffs], weights=weights))
        inv_n = float(np.mean(1 / sizes))
        upper = var_means * dof / float(stats.chi2.ppf(0.05, dof))
        comp = {
            "design": "nested",
            "n_units": int(round(1 / inv_n)),
            "var_a": max(var_means - w * inv_n, 0.0),
            "var_a_upper": max(upper - w * inv_n, 0.0),
            "var_unit": w,
        }
    return {**comp, "pilot_seeds": seeds, "pairs": len(diffs), "cells": n_cells, "seed_dof": dof}


def variance_components(runs: list[RunRecord], metric: str) -> dict[str, Any]:
    """The components of `metric` over every pair of cells among `runs` (one context), and, under "by_pair", each
    pair's own (cells named by their strategy and setting label)."""
    having = [r for r in runs if r.outcomes.get(metric)]
    cells: dict[str, list[RunRecord]] = defaultdict(list)
    for run in having:
        cells[run.cell].append(run)
    units = shared_units(having, metric)
    clusters, strata = unit_design(having, metric, units)
    names = sorted(cells)
    diffs = {
        (a, b): matched_differences(cells[a], cells[b], metric, units) for a, b in itertools.combinations(names, 2)
    }
    by_pair = []
    for (a, b), d in diffs.items():
        if len(d) >= 2:
            by_pair.append(
                {
                    "a": cells[a][0].title,
                    "b": cells[b][0].title,
                    "seed_correlation": seed_correlation(cells[a], cells[b], metric),
                    **components_from_pairs([d], units is not None, 2, clusters, strata),
                }
            )
    return {
        "metric": metric,
        **components_from_pairs(list(diffs.values()), units is not None, len(cells), clusters, strata),
        "by_pair": by_pair,
    }


def seed_correlation(a: list[RunRecord], b: list[RunRecord], metric: str) -> float | None:
    """Correlation over matched seeds of the two cells' per-seed means: how much of a seed's luck (its pool draw,
    its training order) the two share, which the paired difference cancels (common random numbers)."""
    ours, theirs = ({r.seed: float(np.mean(list(r.outcomes[metric].values()))) for r in side} for side in (a, b))
    seeds = sorted(set(ours) & set(theirs))
    if len(seeds) < 3:
        return None
    x, y = np.array([ours[s] for s in seeds]), np.array([theirs[s] for s in seeds])
    return float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else None


def design_terms(comp: dict[str, Any], n: int) -> tuple[int, float, float, float]:
    """(clusters C, interaction variance and residual variance of a cluster score, strata df lost) at n units.

    The df the strata cost (`strata_df`) is the pilot's: how the held-out set lays types over
    tasks changes little with its size (each task takes each type at most once).

    With base-task clusters, n prompts spread over C = min(n, the pilot's clusters) tasks, m = n/C
    per task: a cluster score has interaction variance σ²_c + σ²_b/m and residual σ²_ε/m.
    Without (`var_c` absent), every unit is its own cluster.
    """
    clusters = min(n, comp["n_clusters"]) if comp.get("n_clusters") else n
    m = n / clusters
    return clusters, comp.get("var_c", 0.0) + comp["var_b"] / m, comp["var_e"] / m, comp.get("strata_df", 0.0)


def _variance_of_mean(comp: dict[str, Any], n: int, s: int, var_a: float) -> float:
    if comp["design"] == "crossed":
        c, var_b, var_e, _ = design_terms(comp, n)
        return var_a / s + var_b / c + var_e / (c * s)
    return var_a / s + comp["var_unit"] / (n * s)


def power_curve(comp: dict[str, Any], n: int, s: int, alpha: float, upper: bool = False) -> Callable[[float], float]:
    """effect -> probability that the verdict test at n units and s matched seeds finds it (two-sided, level alpha)."""
    var_a = comp["var_a_upper"] if upper else comp["var_a"]
    se = math.sqrt(_variance_of_mean(comp, n, s, var_a))
    if s < 2:
        return lambda effect: 0.0  # one seed: no verdict
    if se == 0:
        return lambda effect: float(effect != 0)
    rng = np.random.default_rng(0)
    z = rng.standard_normal(DRAWS)
    if comp["design"] == "nested":  # the t-test over per-seed means: a noncentral t, simulated like the crossed case
        spread = (s * se * se) * rng.chisquare(s - 1, DRAWS) / (s - 1)
        half = float(stats.t.ppf(1 - alpha / 2, s - 1)) * np.sqrt(spread / s)
    else:
        c, var_b, var_e, lost = design_terms(comp, n)
        dfs = (s - 1, max(c - 1 - lost, 1), (s - 1) * (c - 1))
        expected = (c * var_a + var_e, s * var_b + var_e, var_e)
        ms_seed, ms_unit, ms_resid = (e * rng.chisquare(df, DRAWS) / df for e, df in zip(expected, dfs))
        half, _ = crossed_half_width(ms_seed, ms_unit, ms_resid, s, c, alpha)
    return lambda effect: float(np.mean(np.abs(effect + se * z) > half))


def mde(comp: dict[str, Any], n: int, s: int, alpha: float, power: float, upper: bool = False) -> float:
    """The smallest effect the verdict test detects with probability `power` (inf with one seed)."""
    curve = power_curve(comp, n, s, alpha, upper)
    if s < 2:
        return math.inf
    hi = max(math.sqrt(_variance_of_mean(comp, n, s, comp["var_a_upper"] if upper else comp["var_a"])), 1e-9)
    while curve(hi) < power:
        hi *= 2
        if hi > 1e6:
            return math.inf
    lo = 0.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if curve(mid) < power else (lo, mid)
    return hi


def units_needed(
    comp: dict[str, Any], effect: float, s: int, alpha: float, power: float, limit: int = 10**6
) -> int | None:
    """Smallest n at which the verdict test at s seeds detects `effect` with `power`; None when no n is enough."""
    if s < 2 or power_curve(comp, limit, s, alpha)(effect) < power:
        return None
    lo, hi = 1, limit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if power_curve(comp, max(mid, 2), s, alpha)(effect) < power else (lo, mid)
    return max(hi, 2)


def analyse(
    runs: list[RunRecord], effect: float, alpha: float, power: float, seeds_options: tuple[int, ...] = SEEDS_OPTIONS
) -> list[dict[str, Any]]:
    """One row per (context, metric): the components, the MDE at the pilot's sizes (and at the run-shift upper bound), the sizes a target needs."""
    rows = []
    by_context: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        by_context[run.context].append(run)
    for members in sorted(by_context.values(), key=lambda m: (m[0].budget, m[0].label)):
        for metric in [*METRICS, PREFERENCE]:
            if not any(r.outcomes.get(metric) for r in members):
                continue
            comp = variance_components(members, metric)
            n, s = comp["n_units"], comp["pilot_seeds"]
            for pair in comp["by_pair"]:
                pair |= {
                    "mde_at_pilot": mde(pair, n, pair["pilot_seeds"], alpha, power),
                    "mde_at_upper": mde(pair, n, pair["pilot_seeds"], alpha, power, upper=True),
                }
            row = {
                "budget": members[0].budget,
                "context": members[0].context,
                "setting": members[0].context_label,
                **comp,
                "mde_at_pilot": mde(comp, n, s, alpha, power),
                "mde_at_upper": mde(comp, n, s, alpha, power, upper=True),
                "units_needed": {k: units_needed(comp, effect, k, alpha, power) for k in seeds_options},
                "effect": effect,
                "alpha": alpha,
                "power": power,
                "test": "seed_test (harness/core/stats.py)",
            }
            row["detects_effect_at_pilot"] = row["mde_at_pilot"] <= effect
            rows.append(row)
    return rows
