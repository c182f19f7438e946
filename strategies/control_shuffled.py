"""`control_shuffled`: a reference strategy's pairs with their labels swapped at random.

The negative control every ablation needs (docs/design.md §6): the same prompts, the same pairs,
the same amount of training, but preferences that carry no information. A strategy whose
effect does not beat this control has shown only that training moved the model, not that
its data taught anything. The pairs are exactly those the reference strategy picks with the
same seed (it is run first on the same generator); the flips are drawn after it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.core.records import CONTROL, Selection
from strategies.base import CandidatePool, Strategy, UnknownStrategy, get_strategy, register


class ControlParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    reference: str = Field("uniform", description="the strategy whose pairs are used")
    reference_params: dict[str, Any] = Field(default_factory=dict, description="its select.params")
    flip_probability: float = Field(0.5, gt=0, le=1, description="chance that each pair's labels are swapped")

    @field_validator("reference")
    @classmethod
    def _not_itself(cls, value: str) -> str:
        if value == CONTROL:
            raise ValueError("the reference must be another strategy")
        try:
            get_strategy(value)
        except UnknownStrategy as exc:  # a KeyError; pydantic reports ValueErrors
            raise ValueError(exc.message) from None
        return value


@register
class ControlShuffled(Strategy):
    name = CONTROL
    description = "negative control: a reference strategy's pairs (default uniform), labels swapped at random"
    Params = ControlParams

    def _reference(self, params: ControlParams) -> tuple[Strategy, BaseModel]:
        reference = get_strategy(params.reference)
        return reference, reference.Params.model_validate(params.reference_params)

    def needs(self, params: ControlParams) -> frozenset[str]:
        reference, reference_params = self._reference(params)
        return reference.needs(reference_params)

    def max_budget(self, pool: CandidatePool, params: ControlParams) -> int:
        reference, reference_params = self._reference(params)
        return reference.max_budget(pool, reference_params)

    def select(self, pool: CandidatePool, budget: int, rng: np.random.Generator, params: ControlParams) -> Selection:
        reference, reference_params = self._reference(params)
        picked = reference.select(pool, budget, rng, reference_params)
        flips = rng.random(len(picked.pair_ids)) < params.flip_probability
        return Selection(
            strategy=self.name,
            budget=budget,
            pair_ids=picked.pair_ids,
            diagnostics={**picked.diagnostics, "reference": params.reference},
            flipped=[pair_id for pair_id, flip in zip(picked.pair_ids, flips) if flip],
        )
