"""The key part several stages share: the built-in prompt set (the model and engine come resolved: Run.resolved)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.experiment import ExperimentConfig


def builtin_set(config: ExperimentConfig) -> dict[str, Any]:
    """The held-out prompts come from the training prompts' task set and constraint types."""
    chosen = config.prompts.builtin_set()
    return {"builtin_set": chosen} if chosen else {}
