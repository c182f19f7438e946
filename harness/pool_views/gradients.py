"""The pool view `gradients`: per-pair and per-prompt projected LoRA gradients, from the `features` stage
(harness/stages/features.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.io import read_json
from harness.core.records import CandidatePool, Features
from harness.pool_views.base import PoolView, ViewResult, register
from harness.stages.features import NAME, inputs
from harness.training import gradient_features

if TYPE_CHECKING:
    from harness.run_folder import Run


def compute(run: Run, candidate_pool: CandidatePool, pool_hash: str) -> ViewResult:
    config = run.config

    def _compute(out: Path) -> dict:
        return gradient_features.compute_gradient_features(
            run.model,
            candidate_pool.prompts,
            candidate_pool.responses,
            list(candidate_pool.pairs),
            run.train,
            config.features,
            config.pool_seed,
            out,
        )

    result = run.stage(NAME, inputs(run.resolved, pool_hash), _compute)
    grads = gradient_features.load_gradient_features(result.path)
    fields = {
        "pair_gradients": Features(dict(zip(grads.pair_ids, grads.pair_features))),
        "prompt_gradients": Features(dict(zip(grads.prompt_ids, grads.prompt_features))),
    }
    stats = read_json(result.path / "stage.json")
    return ViewResult(
        fields, NAME, result.hash, {k.removeprefix("seconds_"): v for k, v in stats.items() if k.startswith("seconds_")}
    )


register(PoolView(compute, name="gradients"))
