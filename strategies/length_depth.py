"""`length_depth`: the paper's length-based ablation: bpo's breadth, depth proportional to mean response length."""

from __future__ import annotations

import numpy as np

from strategies._dynamic import DynamicDepth, by_margin
from strategies.base import register


@register
class LengthDepth(DynamicDepth):
    name = "length_depth"
    description = "ablation (paper's length-based): bpo's breadth, depth proportional to mean response length"

    def depth_plan(self, pool, prompts, target, rng, params, seed):
        lengths = []
        for p in prompts:
            ids = {r for pair in pool.pairs_by_prompt[p] for r in (pair.chosen_id, pair.rejected_id)}
            lengths.append(np.mean([len(pool.responses[r].text.split()) for r in ids]))
        weights = np.asarray(lengths, dtype=float) + 1.0
        return weights, {p: by_margin(pool, p) for p in prompts}, {"mean_response_words": dict(zip(prompts, lengths))}
