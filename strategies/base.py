"""What a strategy sees and returns.

A strategy is pure: it gets the candidate pool, the budget, a seeded generator and its own
validated parameters, and returns a `Selection`. It does no I/O and touches no global state;
the harness computes the diagnostics every strategy shares (breadth, depth, lengths).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from harness.records import Pair, Prompt, Response, Selection


class BudgetError(ValueError):
    """The pool cannot supply the requested number of pairs under this strategy."""


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Features:
    """Unit-norm vectors keyed by record id (prompt, pair or response)."""

    vectors: dict[str, np.ndarray]

    def __getitem__(self, key: str) -> np.ndarray:
        return self.vectors[key]

    def matrix(self, keys: list[str]) -> np.ndarray:
        return np.stack([self.vectors[k] for k in keys]) if keys else np.zeros((0, 0), dtype=np.float32)


@dataclass(frozen=True)
class CandidatePool:
    """Prompts, scored responses and candidate pairs, read-only for strategies.

    The optional views are filled by the harness only for strategies that declare them in
    `requires`: prompt and response embeddings, and per-pair / per-prompt gradient features.
    """

    prompts: dict[str, Prompt]
    responses: dict[str, Response]
    scores: dict[str, float]
    pairs: tuple[Pair, ...]
    prompt_embeddings: Features | None = None
    response_embeddings: Features | None = None
    pair_gradients: Features | None = None
    prompt_gradients: Features | None = None

    @cached_property
    def pairs_by_prompt(self) -> dict[str, list[Pair]]:
        """Pairs grouped by prompt, in pool order (prompts with no pair are absent)."""
        grouped: dict[str, list[Pair]] = defaultdict(list)
        for pair in self.pairs:
            grouped[pair.prompt_id].append(pair)
        return dict(grouped)

    @cached_property
    def pair_by_id(self) -> dict[str, Pair]:
        return {p.id: p for p in self.pairs}


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
    """`count` items in a seeded random order; the one sampler every strategy uses."""
    if count > len(items):
        raise BudgetError(f"asked for {count} items, only {len(items)} available")
    order = rng.permutation(len(items))[:count]
    return [items[i] for i in order]
