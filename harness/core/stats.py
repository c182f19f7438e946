"""Intervals, tests and p-value adjustment: the one place metrics get their CIs and verdicts their p.

Two kinds of interval, never confused:

- **Run-fixed intervals** (`mean_ci`, `ratio_ci`, `paired_ci`) resample the evaluation units
  (prompts, the unit that was sampled; also for ratios whose numerator and denominator come
  from the same prompts) and hold the runs fixed: they say whether *these runs* differ.
  Binary means use Wilson's score interval and paired binary differences Newcombe's (1998,
  method 10): both cover near their nominal rate at n = 12, where the percentile bootstrap
  covers about 0.88, and neither is zero-width when every unit agrees.
- **Verdicts** (`seed_test`) also count run-to-run variation: a t-interval over matched seeds,
  widened by the unit-by-strategy term where the units are shared by every seed (a two-way
  crossed random-effects model, harness/analysis/power.py sizes the same test). With fewer than 2
  matched seeds there is no verdict.

Bootstrap p-values carry the +1 correction, so they are never printed as 0; `holm` adjusts a
table's p-values for the number of tests it holds.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats

METHOD = "wilson-newcombe-cluster-v2"
"""Names the interval methods of this module: a part of every cache key whose stage computes metrics."""


def bootstrap(
    statistic: Callable[[np.ndarray], float],
    n_items: int,
    *,
    n_boot: int,
    seed: int,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """(value, ci_low, ci_high) of `statistic(indices)`: percentile bootstrap over item indices."""
    if n_items == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    value = float(statistic(np.arange(n_items)))
    draws = np.array([statistic(rng.integers(0, n_items, n_items)) for _ in range(n_boot)], dtype=float)
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return value, float(low), float(high)


def is_binary(values: np.ndarray) -> bool:
    return values.size > 0 and bool(np.all((values == 0) | (values == 1)))


def wilson(successes: float, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson's score interval for a proportion: honest at small n and at 0 or n successes."""
    if n <= 0:
        return float("nan"), float("nan")
    z = float(stats.norm.ppf(1 - alpha / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (0.0 if successes <= 0 else max(0.0, centre - half)), (1.0 if successes >= n else min(1.0, centre + half))


def newcombe_paired(x: np.ndarray, y: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float]:
    """(mean(x − y), low, high) for paired binary outcomes: Newcombe's method 10 (Wilson margins, φ-corrected)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    a = float(np.sum((x == 1) & (y == 1)))
    b = float(np.sum((x == 1) & (y == 0)))
    c = float(np.sum((x == 0) & (y == 1)))
    d = n - a - b - c
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n, alpha)
    l2, u2 = wilson(a + c, n, alpha)
    denom = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    if cross > 0:
        cross = max(cross - n / 2, 0.0)
    phi = cross / math.sqrt(denom) if denom > 0 else 0.0
    dl = math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    du = math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    diff = p1 - p2
    return diff, max(-1.0, diff - dl), min(1.0, diff + du)


def mean_ci(values: Sequence[float] | np.ndarray, *, n_boot: int, seed: int) -> tuple[float, float, float]:
    """Mean and 95% CI over items: Wilson's interval for 0/1 items, the percentile bootstrap otherwise."""
    arr = np.asarray(values, dtype=float)
    if is_binary(arr):
        return (float(arr.mean()), *wilson(float(arr.sum()), len(arr)))
    return bootstrap(lambda idx: arr[idx].mean(), len(arr), n_boot=n_boot, seed=seed)


def ratio_ci(numer: Sequence[float], denom: Sequence[float], *, n_boot: int, seed: int) -> tuple[float, float, float]:
    """A pooled ratio (Σ numer / Σ denom) with a CI over clusters (prompts).

    When every cluster is all-or-nothing the same way (every constraint followed, or none),
    resampling cannot vary and would print a zero-width interval: the clusters' Wilson
    interval is given instead (conservative: a cluster counts as one unit, not several).
    """
    num, den = np.asarray(numer, dtype=float), np.asarray(denom, dtype=float)
    if len(num) and (np.all(num == den) or np.all(num == 0)):
        value = float(num.sum() / max(den.sum(), 1e-12))
        return (value, *wilson(float(len(num)) if np.all(num == den) else 0.0, len(num)))
    return bootstrap(lambda idx: num[idx].sum() / max(den[idx].sum(), 1e-12), len(num), n_boot=n_boot, seed=seed)


def bootstrap_p(draws: np.ndarray) -> float:
    """Two-sided bootstrap p of 'the mean is 0', with the +1 correction: never below 2/(n_boot + 1)."""
    k = min(int(np.sum(draws <= 0)), int(np.sum(draws >= 0)))
    return min(1.0, 2 * (k + 1) / (len(draws) + 1))


def paired_ci(x: np.ndarray, y: np.ndarray, *, n_boot: int, seed: int) -> dict[str, Any]:
    """Run-fixed interval of mean(x − y) over units: Newcombe for binary pairs, else a bootstrap over units.

    p is the bootstrap's two-sided p (also for binary pairs), floored at 2/(n_boot + 1).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    diff = x - y
    rng = np.random.default_rng(seed)
    boots = diff[rng.integers(0, len(diff), (n_boot, len(diff)))].mean(axis=1)
    if is_binary(x) and is_binary(y):
        value, low, high = newcombe_paired(x, y)
        method = "Newcombe (paired binary)"
    else:
        value = float(diff.mean())
        low, high = (float(v) for v in np.percentile(boots, [2.5, 97.5]))
        method = "bootstrap over units"
    return {
        "diff": value,
        "low": low,
        "high": high,
        "p": bootstrap_p(boots),
        "p_floor": 2 / (n_boot + 1),
        "n_units": len(diff),
        "method": method,
    }


def two_way(d: np.ndarray, lost: float = 0) -> tuple[float, float, float]:
    """Mean squares (seeds, units, residual) of an s × n matrix of paired differences (seeds × shared units).

    `lost`: degrees of freedom the units' column spread gave up before (fixed strata removed
    from it, `cluster_scores`; `strata_df`), so that the unit mean square stays unbiased.
    """
    s, n = d.shape
    row, col, grand = d.mean(axis=1), d.mean(axis=0), float(d.mean())
    ms_seed = n * float(np.sum((row - grand) ** 2)) / (s - 1)
    ms_unit = s * float(np.sum((col - grand) ** 2)) / max(n - 1 - lost, 1) if n > 1 else 0.0
    resid = d - row[:, None] - col[None, :] + grand  # a column effect removed before leaves the residual's df alone
    ms_resid = float(np.sum(resid**2)) / ((s - 1) * (n - 1)) if n > 1 else 0.0
    return ms_seed, ms_unit, ms_resid


def crossed_half_width(
    ms_seed: Any, ms_unit: Any, ms_resid: Any, s: int, n: int, alpha: float = 0.05
) -> tuple[Any, Any]:
    """(half-width, se) of the verdict interval for a crossed s × n design; vectorised over mean squares.

    Var(mean) = σ²_a/s + σ²_b/n + σ²_ε/(ns) is estimated by (MS_seed + max(MS_unit − MS_resid, 0))/(ns)
    with Satterthwaite's df; the half-width is never below the plain t-interval over the s
    per-seed means (s − 1 df), so the unit term can only widen the seeds interval.
    """
    ms_seed, ms_unit, ms_resid = (np.asarray(v, dtype=float) for v in (ms_seed, ms_unit, ms_resid))
    extra = np.maximum(ms_unit - ms_resid, 0.0)
    var = (ms_seed + extra) / (n * s)
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = ms_seed**2 / (s - 1) + np.where(
            extra > 0, ms_unit**2 / max(n - 1, 1) + ms_resid**2 / max((s - 1) * (n - 1), 1), 0.0
        )
        df = np.where(denom > 0, (ms_seed + extra) ** 2 / denom, s - 1)
    df = np.maximum(df, 1.0)
    half = np.maximum(
        stats.t.ppf(1 - alpha / 2, df) * np.sqrt(var), stats.t.ppf(1 - alpha / 2, s - 1) * np.sqrt(ms_seed / (n * s))
    )
    return half, np.sqrt(var)


def cluster_scores(d: np.ndarray, clusters: Sequence[str], strata: Sequence[str] | None = None) -> np.ndarray:
    """An s × n matrix of per-unit differences as s × C cluster scores whose plain mean per seed is the units' mean.

    Units of one cluster (held-out prompts of one base task) are not independent, so the cluster
    is what the test resamples: its score is its units' residual total scaled by C/N (a
    cluster-robust ratio estimator). A fixed, balanced stratum (the constraint type) moves every
    run alike; its mean over all seeds is removed from each unit first, so that the strata's
    differences, which the design fixes, do not count as spread between clusters. The per-seed
    means are unchanged by both steps (the stratum means sum back to the grand mean); with
    clusters of one size a score is the cluster's mean.
    """
    d = np.asarray(d, dtype=float)
    resid = d.copy()
    if strata is not None:
        labels = np.asarray(strata)
        for stratum in np.unique(labels):
            mask = labels == stratum
            resid[:, mask] -= d[:, mask].mean()
        resid += d.mean()
    ids = np.asarray(clusters)
    names = np.unique(ids)
    scale = len(names) / d.shape[1]
    centre = resid.mean(axis=1, keepdims=True)  # deviations from the seed's mean: unequal cluster sizes add no spread
    return centre + np.stack([(resid[:, ids == c] - centre).sum(axis=1) * scale for c in names], axis=1)


@functools.lru_cache(maxsize=64)
def strata_df(clusters: tuple[str, ...], strata: tuple[str, ...]) -> float:
    """Degrees of freedom the clusters' spread loses when the strata's means are removed first (`cluster_scores`).

    Removing T stratum means costs T − 1 degrees of freedom among units, but among clusters only
    as much as the strata line up with clusters: none when every cluster holds every stratum
    equally, T − 1 when each cluster holds one. Computed as the share of the between-cluster
    sum of squares of unit-level noise that the removal takes away, times C − 1.
    """
    ids, kinds = np.asarray(clusters), np.asarray(strata)
    names, types = np.unique(ids), np.unique(kinds)
    n = len(ids)
    members = (ids[None, :] == names[:, None]).astype(float)  # C × N
    members -= members.mean(axis=0, keepdims=True)  # centred over clusters
    indicators = (kinds[None, :] == types[:, None]).astype(float)  # T × N
    project = (
        indicators.T @ (indicators / indicators.sum(axis=1, keepdims=True)) - 1.0 / n
    )  # onto stratum means, less the grand mean
    full = float(np.sum(members * members))
    removed = float(np.sum((members @ project) * members))
    return (len(names) - 1) * removed / full if full > 0 else 0.0


def seed_test(
    per_seed: list[np.ndarray],
    *,
    crossed: bool,
    alpha: float = 0.05,
    clusters: Sequence[str] | None = None,
    strata: Sequence[str] | None = None,
) -> dict[str, Any] | None:
    """The verdict test of a mean paired difference, counting run-to-run variation; None below 2 seeds.

    `per_seed[i]` holds the per-unit differences (A − B) of matched seed i. Crossed (every seed
    on the same units, in the same order): the two-way interval of `crossed_half_width`, over
    clusters when `clusters` names each unit's cluster (the base task; `strata`, each unit's
    fixed stratum, is then removed first: `cluster_scores`), else over units. Nested (units
    drawn anew per seed, e.g. held-out pairs from each seed's own pool): a t-interval over the
    per-seed mean differences, which are then independent draws.

    Seeds whose mean differences are all equal while their units disagree (on a discrete metric a chance tie: two
    seeds, both −11/495) estimate no seed spread at all, and the interval would have zero width: a difference called
    certain that the units' noise alone could make. There, the seeds' spread is read as its least possible expectation,
    the units' own sampling error (crossed: MS_resid, which MS_seed's expectation nσ²_a + σ²_ε never falls below;
    nested: each seed mean's variance over its units). Only exact ties: elsewhere the test is the calibrated one.
    """
    s = len(per_seed)
    if s < 2:
        return None
    means = np.array([float(np.mean(d)) for d in per_seed])
    diff = float(means.mean())
    unit = "unit"
    if crossed:
        d = np.vstack(per_seed)
        lost = 0
        if clusters is not None:
            d = cluster_scores(d, clusters, strata)
            unit = "cluster"
            lost = strata_df(tuple(clusters), tuple(strata)) if strata is not None else 0.0
        n = d.shape[1]
        ms_seed, ms_unit, ms_resid = two_way(d, lost)
        if np.ptp(means) == 0:
            ms_seed = ms_resid
        half, se = crossed_half_width(ms_seed, ms_unit, ms_resid, s, n, alpha)
        half, se = float(half), float(se)
    else:
        spread = float(np.var(means, ddof=1))
        if np.ptp(means) == 0:
            spread = float(np.mean([np.var(x, ddof=1) / len(x) if len(x) > 1 else 0.0 for x in per_seed]))
        se = math.sqrt(spread / s)
        half = float(stats.t.ppf(1 - alpha / 2, s - 1)) * se
    # p from the same rule: the level at which the interval would just touch 0
    if half == 0:
        p = 1.0 if diff == 0 else 0.0
    else:
        q = float(
            stats.t.ppf(1 - alpha / 2, s - 1)
        )  # invert with the seeds df (conservative when the unit term widens)
        p = float(2 * stats.t.sf(abs(diff) / (half / q), s - 1))
    return {
        "diff": diff,
        "low": diff - half,
        "high": diff + half,
        "p": min(1.0, p),
        "per_seed": means.tolist(),
        "n_seeds": s,
        "design": "crossed" if crossed else "nested",
        "se": se,
        "unit": unit,
        **({"n_clusters": int(d.shape[1])} if unit == "cluster" else {}),
    }


def equivalence_p(verdict: dict[str, Any], margin: float, alpha: float = 0.05) -> float:
    """The TOST p of "the difference lies within ±margin" from a `seed_test` verdict: the larger of the two one-sided
    p-values, with the verdict's own standard error and the seeds' degrees of freedom, so that it is below `alpha`
    exactly when the (1 − 2·alpha) verdict interval lies inside ±margin. Absence of a difference is not equivalence;
    this is the test that can show it."""
    df = verdict["n_seeds"] - 1
    se = (verdict["high"] - verdict["low"]) / 2 / float(stats.t.ppf(1 - alpha / 2, df))
    diff = verdict["diff"]
    if se == 0:
        return 0.0 if abs(diff) < margin else 1.0
    return float(max(stats.t.sf((diff + margin) / se, df), stats.t.sf((margin - diff) / se, df)))


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment: controls the family-wise error rate under any dependence. None stays None."""
    present = sorted((float(p), i) for i, p in enumerate(pvalues) if p is not None and math.isfinite(p))
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (len(present) - rank) * p))
        adjusted[i] = running
    return adjusted


def correlation(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, alpha: float = 0.05
) -> dict[str, float | None]:
    """Pearson's r with its Fisher-z interval and p (scipy); all None where either side is constant (no slope to find)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"r": None, "low": None, "high": None, "p": None}
    result = stats.pearsonr(x, y)
    interval = result.confidence_interval(1 - alpha)
    return {
        "r": float(result.statistic),
        "low": float(interval.low),
        "high": float(interval.high),
        "p": float(result.pvalue),
    }


def metric(
    value_ci: tuple[float, float, float], n: int, judge: str, weak_judge: bool = False, **extra: Any
) -> dict[str, Any]:
    """The metrics.json record: value, 95% CI, n, judge id, weak_judge flag, extras.

    `weak_judge` is set when the judge is a model under 1B parameters, or a verifiable judge
    applied to prompts without constraints: readers must discount such numbers.
    """
    value, low, high = value_ci
    return {"value": value, "ci_low": low, "ci_high": high, "n": n, "judge": judge, "weak_judge": weak_judge, **extra}
