"""`margin`: the B pairs with the largest (or smallest) judge-score margin.

Margin-based selection is contested: Deng et al. 2025 keep high-margin pairs (clear
preferences), Yang et al. 2024 find small margins (hard pairs) better. `order` makes both one
strategy, so a matrix compares them on the same pool; cells that differ only in it stay apart
in every table (their settings differ).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.core.records import Selection
from strategies.base import CandidatePool, Strategy, register


class MarginParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    order: Literal["high", "low"] = Field(
        "high", description="high: the largest margins first; low: the smallest (hardest) first"
    )


@register
class Margin(Strategy):
    name = "margin"
    description = "peer: top-B pairs by judge-score margin, largest first (order: low for the smallest; ties at random)"
    Params = MarginParams

    def select(self, pool: CandidatePool, budget: int, rng: np.random.Generator, params: MarginParams) -> Selection:
        tie_break = rng.permutation(len(pool.pairs))
        sign = -1.0 if params.order == "high" else 1.0
        order = sorted(range(len(pool.pairs)), key=lambda i: (sign * (pool.pairs[i].margin or 0.0), tie_break[i]))
        return Selection(strategy=self.name, budget=budget, pair_ids=[pool.pairs[i].id for i in order[:budget]])
