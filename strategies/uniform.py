"""`uniform`: the paper's simple balancing: B/d prompts with d pairs each.

Prompts are chosen by breadth compression (k-means over prompt embeddings, the prompt nearest
each centroid) among those with at least d pairs; the d pairs of each are drawn at random.
When d does not divide B, the last prompt gets the remaining B mod d pairs, so the budget is
always met exactly.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.core.records import Selection
from strategies._breadth import compress_breadth
from strategies.base import CandidatePool, Strategy, register, sample_without_replacement


class UniformParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    depth: int = Field(2, ge=1, description="pairs per prompt (d)")


@register
class Uniform(Strategy):
    name = "uniform"
    description = "simple balancing: B/d prompts by k-means breadth compression, d random pairs each"
    Params = UniformParams
    requires = frozenset({"embeddings"})

    def _eligible(self, pool: CandidatePool, depth: int) -> list[str]:
        return sorted(pid for pid, pairs in pool.pairs_by_prompt.items() if len(pairs) >= depth)

    def max_budget(self, pool: CandidatePool, params: UniformParams) -> int:
        return params.depth * len(self._eligible(pool, params.depth))

    def select(self, pool: CandidatePool, budget: int, rng: np.random.Generator, params: UniformParams) -> Selection:
        d = params.depth
        seed = int(rng.integers(2**31 - 1))
        prompts = compress_breadth(self._eligible(pool, d), pool.prompt_embeddings, math.ceil(budget / d), seed)
        picked: list[str] = []
        remaining = budget
        for pid in prompts:
            take = min(d, remaining)
            pairs = pool.pairs_by_prompt[pid]
            picked += [p.id for p in sample_without_replacement(pairs, take, rng)]
            remaining -= take
        return Selection(strategy=self.name, budget=budget, pair_ids=picked)
