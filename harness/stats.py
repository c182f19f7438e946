"""Bootstrap confidence intervals: the one place metrics get their CIs.

Resampling is over prompts (the unit that was sampled), also for ratios such as
instruction-level accuracy, whose numerator and denominator come from the same prompts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def bootstrap(
    statistic: Callable[[np.ndarray], float],
    n_items: int,
    *,
    n_boot: int,
    seed: int,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """(value, ci_low, ci_high) of `statistic(indices)` under resampling of item indices."""
    if n_items == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    value = float(statistic(np.arange(n_items)))
    draws = np.array([statistic(rng.integers(0, n_items, n_items)) for _ in range(n_boot)], dtype=float)
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return value, float(low), float(high)


def mean_ci(values: list[float] | np.ndarray, *, n_boot: int, seed: int) -> tuple[float, float, float]:
    arr = np.asarray(values, dtype=float)
    return bootstrap(lambda idx: arr[idx].mean(), len(arr), n_boot=n_boot, seed=seed)


def ratio_ci(numer: list[float], denom: list[float], *, n_boot: int, seed: int) -> tuple[float, float, float]:
    num, den = np.asarray(numer, dtype=float), np.asarray(denom, dtype=float)
    return bootstrap(lambda idx: num[idx].sum() / max(den[idx].sum(), 1e-12), len(num), n_boot=n_boot, seed=seed)


def metric(
    value_ci: tuple[float, float, float], n: int, judge: str, weak_judge: bool = False, **extra: Any
) -> dict[str, Any]:
    """The metrics.json record (DESIGN.md §4): value, 95% CI, n, judge id, weak_judge flag, extras.

    `weak_judge` is set when the judge is a model under 1B parameters, or a verifiable judge
    applied to prompts without constraints: readers must discount such numbers.
    """
    value, low, high = value_ci
    return {"value": value, "ci_low": low, "ci_high": high, "n": n, "judge": judge, "weak_judge": weak_judge, **extra}
