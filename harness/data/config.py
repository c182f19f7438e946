"""The `prompts` section: where the training prompts come from (read by harness/data/sources.py and builtin.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from harness.constraints.catalogue import check_constraint_types
from harness.core.io import content_hash
from harness.core.sections import Section
from harness.data.builtin import TASK_SETS


class PromptsConfig(Section):
    """Where training prompts come from."""

    source: str = Field("builtin", description="'builtin', a local JSON/JSONL/Parquet file, or a hub dataset id")
    format: Literal["auto", "hh_rlhf", "trl", "prompts", "pku_saferlhf"] = "auto"
    split: str = "train"
    data_dir: str | None = None
    n_train: int | None = Field(48, ge=1, description="number of training prompts (None: all)")
    constraints_per_prompt: int = Field(1, ge=1, le=3)
    tasks: Literal["everyday", "short"] = Field(
        "everyday",
        description="builtin: the base-task set, 'everyday' (answers of 100+ words) or 'short' (a sentence or two); "
        "the held-out evaluation prompts come from the same set's held-out tasks",
    )
    constraint_types: list[str] | None = Field(
        None,
        description="builtin: the constraint types to draw from (training and held-out prompts alike); "
        "null = the default twelve (harness/data/CONSTRAINT_PASS_RATES.md)",
    )

    @field_validator("constraint_types")
    @classmethod
    def _known_types(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            check_constraint_types(value)
        return value

    def builtin_set(self) -> dict[str, Any]:
        """The built-in set's non-default choices, for the keys of every stage that builds its prompts:
        empty at the defaults, so that keys made before these settings existed stay valid."""
        chosen = {"tasks": self.tasks, "constraint_types": self.constraint_types}
        defaults = {"tasks": "everyday", "constraint_types": None}
        key = {k: v for k, v in chosen.items() if v != defaults[k]}
        if "tasks" in key:  # an edited task file makes other prompts: its content is part of the key
            key["tasks_sha"] = content_hash(TASK_SETS[self.tasks].read_text(encoding="utf-8"), 16)
        return key

    def key(self) -> dict[str, Any]:
        """What changes the training prompts: every field, the built-in set's only where not default."""
        return {**self.model_dump(exclude={"tasks", "constraint_types"}), **self.builtin_set()}
