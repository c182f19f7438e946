"""What a strategy sees and returns: everything a strategy file imports comes from here.

A strategy is pure: it gets the candidate pool, the budget, a seeded generator and its own
validated parameters, and returns a `Selection`. It does no I/O and touches no global state;
the harness computes the diagnostics every strategy shares (breadth, depth, lengths).

    from strategies.base import CandidatePool, Selection, Strategy, register

This module is the strategies' stable surface: when the harness moves a record, it moves behind
these names, so a plugin written against them keeps working.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from harness.core.errors import BudgetError
from harness.core.records import CandidatePool, Features, Pair, Selection
from harness.core.registry import STRATEGIES, UnknownName

__all__ = [
    "BudgetError",
    "CandidatePool",
    "Features",
    "NoParams",
    "Pair",
    "Selection",
    "Strategy",
    "UnknownStrategy",
    "get_strategy",
    "register",
    "sample_without_replacement",
    "strategy_names",
]

UnknownStrategy = UnknownName
"""What an unknown strategy name raises (a KeyError whose message lists close matches)."""


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Strategy:
    """Base of every balancing strategy; subclasses set the class attributes and `select`."""

    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = NoParams
    requires: ClassVar[frozenset[str]] = frozenset()
    """Pool views the strategy reads: "embeddings" and/or "gradients"."""

    def needs(self, params: BaseModel) -> frozenset[str]:
        """The pool views to compute for these parameters (a wrapper strategy needs its inner one's)."""
        return self.requires

    def max_budget(self, pool: CandidatePool, params: BaseModel) -> int:
        """The largest budget this strategy can honour on `pool` (default: every pair)."""
        return len(pool.pairs)

    def select(self, pool: CandidatePool, budget: int, rng: np.random.Generator, params: BaseModel) -> Selection:
        raise NotImplementedError


def sample_without_replacement(items: list, count: int, rng: np.random.Generator) -> list:
    """`count` items in a seeded random order (the sampler of original, uniform and random; the other strategies
    draw from `rng` inside their own allocation)."""
    if count > len(items):
        raise BudgetError(f"asked for {count} items, only {len(items)} available")
    order = rng.permutation(len(items))[:count]
    return [items[i] for i in order]


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: the strategy becomes available under `cls.name` (a name registered twice is refused)."""
    return STRATEGIES.register(cls.name, cls)


def get_strategy(name: str) -> Strategy:
    """A fresh instance of the strategy registered as `name` (the registry imports strategies/ the first time)."""
    return STRATEGIES.get(name)()


def strategy_names() -> list[str]:
    return STRATEGIES.names()
