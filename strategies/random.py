"""`random`: B pairs drawn uniformly from the whole pool; breadth and depth fall out."""

from __future__ import annotations

import numpy as np

from harness.core.records import Selection
from strategies.base import CandidatePool, Strategy, register, sample_without_replacement


@register
class RandomPairs(Strategy):
    name = "random"
    description = "B pairs drawn uniformly at random from the candidate pool"

    def select(self, pool: CandidatePool, budget: int, rng: np.random.Generator, params) -> Selection:
        picked = sample_without_replacement([p.id for p in pool.pairs], budget, rng)
        return Selection(strategy=self.name, budget=budget, pair_ids=picked)
