"""The held-out evaluation prompts: what the evaluate stages, the `ifeval` suite without a path
and the held-out preference pairs are all asked, from one definition."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.core.records import Prompt
from harness.data.builtin import build_builtin_prompts
from harness.data.config import PromptsConfig

if TYPE_CHECKING:
    from harness.evaluation.config import EvaluateConfig

DEFAULT_SUITE_PROMPTS = 75
"""How many held-out prompts the `ifeval` suite asks when neither a path, a limit nor a run says."""


@dataclass(frozen=True)
class HeldoutSet:
    """Which held-out prompts a run asks: the held-out base tasks of its task set, with its constraint
    types, drawn with `seed`; `n` of them, a prefix of any larger n.

    A run's evaluate stages and an `ifeval` suite given no path read the same record, so they ask
    the same prompts (and share one cached generation where their settings agree).
    """

    tasks: str = "everyday"
    constraint_types: tuple[str, ...] | None = None
    seed: int = 1234
    constraints_per_prompt: int = 1
    n: int = DEFAULT_SUITE_PROMPTS

    @classmethod
    def of(cls, evaluate: EvaluateConfig, prompts: PromptsConfig) -> "HeldoutSet":
        """The held-out set of a run's config: its task set and types, the evaluate section's seed and size."""
        types = tuple(prompts.constraint_types) if prompts.constraint_types is not None else None
        return cls(prompts.tasks, types, evaluate.prompt_seed, evaluate.constraints_per_prompt, evaluate.n_prompts)

    def prompts(self, n: int | None = None) -> list[Prompt]:
        """The first `n` (default `self.n`) held-out prompts."""
        _, held_out = build_builtin_prompts(
            seed=self.seed,
            n_train=None,
            n_eval=n or self.n,
            constraints_per_prompt=self.constraints_per_prompt,
            constraint_types=self.constraint_types,
            task_set=self.tasks,
        )
        return held_out

    def key(self, n: int | None = None) -> dict[str, Any]:
        """What picks the prompts, for the keys of stages that ask them (the task file's content included)."""
        spec = PromptsConfig(
            tasks=self.tasks, constraint_types=list(self.constraint_types) if self.constraint_types else None
        )  # type: ignore[call-arg]
        return {
            "seed": self.seed,
            "constraints_per_prompt": self.constraints_per_prompt,
            "n": n or self.n,
            **spec.builtin_set(),
        }


def eval_prompts(cfg: EvaluateConfig, n: int | None = None, prompts: PromptsConfig | None = None) -> list[Prompt]:
    """The first `n` (default `n_prompts`) held-out prompts; a smaller n gives a prefix of a larger one.

    They come from the held-out tasks of the training prompts' task set, with the same constraint
    types (`prompts`; None = the defaults), so that training and evaluation ask the same kind of thing.
    """
    return HeldoutSet.of(cfg, prompts or PromptsConfig()).prompts(n)
