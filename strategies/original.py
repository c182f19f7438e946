"""`original`: the (n, 2) baseline: B random prompts, one pair each."""

from __future__ import annotations

import numpy as np

from harness.core.records import Pair, Selection
from strategies.base import CandidatePool, Strategy, register, sample_without_replacement


def representative_pair(pairs: list[Pair]) -> Pair:
    """The pair the source itself provides, else the best-vs-worst (largest margin) pair."""
    native = [p for p in pairs if p.native]
    if native:
        return native[0]
    return max(pairs, key=lambda p: (p.margin or 0.0, p.id))


@register
class Original(Strategy):
    name = "original"
    description = "(n,2) baseline: B random prompts with one pair each (native pair, else best-vs-worst)"

    def max_budget(self, pool: CandidatePool, params) -> int:
        return len(pool.pairs_by_prompt)

    def select(self, pool: CandidatePool, budget: int, rng: np.random.Generator, params) -> Selection:
        prompt_ids = sample_without_replacement(sorted(pool.pairs_by_prompt), budget, rng)
        chosen = [representative_pair(pool.pairs_by_prompt[pid]).id for pid in prompt_ids]
        return Selection(strategy=self.name, budget=budget, pair_ids=chosen)
