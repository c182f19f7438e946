"""`random_depth`: the dynamic-depth family's null ablation: bpo's breadth, random depth per prompt."""

from __future__ import annotations

import numpy as np

from strategies._dynamic import DynamicDepth
from strategies.base import register


@register
class RandomDepth(DynamicDepth):
    name = "random_depth"
    description = "ablation: bpo's breadth, random depth per prompt (Dirichlet weights), random pairs"

    def depth_plan(self, pool, prompts, target, rng, params, seed):
        weights = rng.dirichlet(np.ones(len(prompts)))
        ordered = {
            p: [pool.pairs_by_prompt[p][i].id for i in rng.permutation(len(pool.pairs_by_prompt[p]))] for p in prompts
        }
        return weights, ordered, {}
