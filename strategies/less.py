"""`less`: LESS (Xia et al., 2024) adapted to DPO.

Pairs are ranked by the cosine between their projected DPO-gradient feature and the mean
feature of a validation set of pairs; the top B are kept. The validation set is a seeded
share of the pool's prompts, reserved so that no validation pair is ever selected.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.core.records import Selection
from strategies._dynamic import reserve_validation, unit
from strategies.base import BudgetError, CandidatePool, Strategy, register


class LessParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    validation_fraction: float = Field(
        0.1, gt=0, lt=0.5, description="share of prompts whose pairs form the validation set"
    )


@register
class Less(Strategy):
    name = "less"
    description = "peer: LESS for DPO: top-B pairs by gradient cosine to a validation set's mean gradient"
    Params = LessParams
    requires: ClassVar[frozenset[str]] = frozenset({"gradients"})

    def max_budget(self, pool: CandidatePool, params: LessParams) -> int:
        n_val = max(1, round(params.validation_fraction * len(pool.pairs_by_prompt)))
        sizes = sorted((len(v) for v in pool.pairs_by_prompt.values()), reverse=True)
        return sum(sizes[n_val:])  # the worst case: the largest prompts go to validation

    def select(self, pool: CandidatePool, budget: int, rng: np.random.Generator, params: LessParams) -> Selection:
        selectable, validation = reserve_validation(pool, params.validation_fraction, rng)
        features = pool.pair_gradients
        target = unit(features.matrix([p.id for v in validation for p in pool.pairs_by_prompt[v]]).mean(0))
        candidates = [p for q in selectable for p in pool.pairs_by_prompt[q]]
        if budget > len(candidates):
            raise BudgetError(f"less can select from {len(candidates)} pairs after reserving validation prompts")
        cosine = features.matrix([p.id for p in candidates]) @ target
        order = sorted(range(len(candidates)), key=lambda i: (-cosine[i], candidates[i].id))[:budget]
        return Selection(
            strategy=self.name,
            budget=budget,
            pair_ids=[candidates[i].id for i in order],
            diagnostics={
                "validation_prompts": len(validation),
                "validation_pairs": sum(len(pool.pairs_by_prompt[v]) for v in validation),
                "selected_cosine_mean": float(np.mean(cosine[order])),
                "candidate_cosine_mean": float(np.mean(cosine)),
            },
        )
