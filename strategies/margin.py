"""`margin`: the B pairs with the largest judge-score margin (margin-based data selection)."""

from __future__ import annotations

import numpy as np

from harness.records import Selection
from strategies.base import CandidatePool, Strategy
from strategies.registry import register


@register
class Margin(Strategy):
    name = "margin"
    description = "peer: top-B pairs by judge-score margin (ties broken at random)"

    def select(self, pool: CandidatePool, budget: int, rng: np.random.Generator, params) -> Selection:
        tie_break = rng.permutation(len(pool.pairs))
        order = sorted(range(len(pool.pairs)), key=lambda i: (-(pool.pairs[i].margin or 0.0), tie_break[i]))
        return Selection(strategy=self.name, budget=budget, pair_ids=[pool.pairs[i].id for i in order[:budget]])
