"""The `features` stage and pool view "gradients": per-pair and per-prompt gradient features
(engine: harness/training/gradients.py).

Keyed by the pool stage, the model, the resolved train section (the LoRA the gradients are taken
through), the features section and the pool seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.io import read_json
from harness.core.records import CandidatePool, Features
from harness.core.registry import POOL_VIEWS
from harness.stages.views import PoolView, ViewResult
from harness.training import gradients

if TYPE_CHECKING:
    from harness.models.resolved import Resolved
    from harness.run_folder import Run

NAME = "features"


def inputs(resolved: Resolved, pool_hash: str) -> dict:
    """The resolved train section: target modules and precision as found here."""
    config = resolved.config
    return {"pool": pool_hash, "model": resolved.model_key, "train": resolved.train.model_dump(), "features": config.features.model_dump(),
            "seed": config.pool_seed}


def compute(run: Run, candidate_pool: CandidatePool, pool_hash: str) -> ViewResult:
    config = run.config

    def _compute(out: Path) -> dict:
        return gradients.compute_gradient_features(
            run.model, candidate_pool.prompts, candidate_pool.responses, list(candidate_pool.pairs),
            run.train, config.features, config.pool_seed, out,
        )

    result = run.stage(NAME, inputs(run.resolved, pool_hash), _compute)
    grads = gradients.load_gradient_features(result.path)
    fields = {
        "pair_gradients": Features(dict(zip(grads.pair_ids, grads.pair_features))),
        "prompt_gradients": Features(dict(zip(grads.prompt_ids, grads.prompt_features))),
    }
    stats = read_json(result.path / "stage.json")
    return ViewResult(fields, NAME, result.hash, {k.removeprefix("seconds_"): v for k, v in stats.items() if k.startswith("seconds_")})


POOL_VIEWS.register("gradients", PoolView(compute))
