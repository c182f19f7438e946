"""`uniform`: the paper's simple balancing: B/d prompts with d pairs each.

Prompts are picked at random among those with at least d pairs (breadth compression by
k-means replaces this in the BPO issue). When d does not divide B, the last prompt gets the
remaining B mod d pairs, so the budget is always met exactly.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.records import Selection
from strategies.base import BudgetError, CandidatePool, Strategy, sample_without_replacement
from strategies.registry import register


class UniformParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    depth: int = Field(2, ge=1, description="pairs per prompt (d)")


@register
class Uniform(Strategy):
    name = "uniform"
    description = "simple balancing: B/d random prompts with d pairs each (paper's uniform depth)"
    Params = UniformParams

    def _eligible(self, pool: CandidatePool, depth: int) -> list[str]:
        return sorted(pid for pid, pairs in pool.pairs_by_prompt.items() if len(pairs) >= depth)

    def max_budget(self, pool: CandidatePool, params: UniformParams) -> int:
        return params.depth * len(self._eligible(pool, params.depth))

    def select(self, pool: CandidatePool, budget: int, rng: np.random.Generator, params: UniformParams) -> Selection:
        d = params.depth
        n_prompts = math.ceil(budget / d)
        eligible = self._eligible(pool, d)
        if n_prompts > len(eligible):
            raise BudgetError(f"uniform needs {n_prompts} prompts with >= {d} pairs; the pool has {len(eligible)}")
        prompts = sample_without_replacement(eligible, n_prompts, rng)
        picked: list[str] = []
        remaining = budget
        for pid in prompts:
            take = min(d, remaining)
            pairs = pool.pairs_by_prompt[pid]
            picked += [p.id for p in sample_without_replacement(pairs, take, rng)]
            remaining -= take
        return Selection(strategy=self.name, budget=budget, pair_ids=picked)
