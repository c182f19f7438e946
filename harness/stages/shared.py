"""The key parts several stages share: the policy model and the generation engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.core.config import ExperimentConfig
from harness.core.io import content_hash
from harness.models.resolve import engine_key, model_fingerprint


def model_key(config: ExperimentConfig) -> str:
    """The policy model in every cache key: its weights' fingerprint, and the configured chat template's
    text when there is one (it changes every prompt the model sees)."""
    key = model_fingerprint(config.model)
    if config.chat_template:
        key += "+chat_template:" + content_hash(Path(config.chat_template).expanduser().read_text(encoding="utf-8"), 16)
    return key


def generation_engine(config: ExperimentConfig) -> dict[str, str]:
    """The resolved back end and dtype: a pool sampled by another engine is another pool."""
    return engine_key(config.generation.backend, config.generation.dtype)


def builtin_set(config: ExperimentConfig) -> dict[str, Any]:
    """The held-out prompts come from the training prompts' task set and constraint types."""
    chosen = config.prompts.builtin_set()
    return {"builtin_set": chosen} if chosen else {}
