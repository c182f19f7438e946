"""Depth allocation: turn per-prompt weights into integer depths that sum to the budget."""

from __future__ import annotations

import numpy as np

from strategies.base import BudgetError


def softmax(x: np.ndarray, temperature: float) -> np.ndarray:
    z = (x - x.max()) / temperature
    e = np.exp(z)
    return e / e.sum()


def allocate_depth(weights: np.ndarray, capacity: np.ndarray, budget: int) -> np.ndarray:
    """Largest-remainder rounding of budget·w, clipped to [1, capacity], surplus redistributed.

    Every prompt kept by breadth compression gets at least one pair; units that clipping
    frees or takes are moved to the prompts whose rounded depth is furthest from their
    share, so Σ depth = budget exactly.
    """
    weights = np.asarray(weights, dtype=float)
    capacity = np.asarray(capacity, dtype=int)
    if budget < len(weights):
        raise BudgetError(f"budget {budget} is smaller than the breadth {len(weights)} (each prompt needs a pair)")
    if budget > capacity.sum():
        raise BudgetError(f"budget {budget} exceeds the {capacity.sum()} pairs the selected prompts have")
    share = budget * weights / weights.sum()
    depth = np.floor(share).astype(int)
    order = np.argsort(-(share - depth), kind="stable")
    depth[order[: budget - depth.sum()]] += 1
    depth = np.clip(depth, 1, capacity)
    while depth.sum() < budget:
        gap = np.where(depth < capacity, share - depth, -np.inf)
        depth[int(np.argmax(gap))] += 1
    while depth.sum() > budget:
        excess = np.where(depth > 1, depth - share, -np.inf)
        depth[int(np.argmax(excess))] -= 1
    return depth


def gini(values: list[int] | np.ndarray) -> float:
    """Gini coefficient of the depth distribution: 0 for uniform depth, towards 1 for skewed."""
    x = np.sort(np.asarray(values, dtype=float))
    if len(x) == 0 or x.sum() == 0:
        return 0.0
    n = len(x)
    return float((2 * np.arange(1, n + 1) - n - 1).dot(x) / (n * x.sum()))
