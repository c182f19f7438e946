"""The `features` stage: per-pair and per-prompt gradient features (engine: harness/training/gradient_features.py; the pool
view that attaches them: harness/pool_views/gradients.py).

Keyed by the pool stage, the model, the resolved train section (the LoRA the gradients are taken
through), the features section and the pool seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.models.choices import Resolved

NAME = "features"


def inputs(resolved: Resolved, pool_hash: str) -> dict:
    """The resolved train section: target modules and precision as found here."""
    config = resolved.config
    return {
        "pool": pool_hash,
        "model": resolved.model_key,
        "train": resolved.train.model_dump(),
        "features": config.features.model_dump(),
        "seed": config.pool_seed,
    }
