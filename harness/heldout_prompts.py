"""The held-out evaluation prompts: what the evaluate stages, the `ifeval` suite without a path
and the held-out preference pairs are all asked, from one definition."""

from __future__ import annotations

from harness.builtin_prompts import build_builtin_prompts
from harness.config import EvaluateConfig, PromptsConfig
from harness.records import Prompt


def eval_prompts(cfg: EvaluateConfig, n: int | None = None, prompts: PromptsConfig | None = None) -> list[Prompt]:
    """The first `n` (default `n_prompts`) held-out prompts; a smaller n gives a prefix of a larger one.

    They come from the held-out tasks of the training prompts' task set, with the same constraint
    types (`prompts`; None = the defaults), so that training and evaluation ask the same kind of thing.
    """
    prompts = prompts or PromptsConfig()
    _, held_out = build_builtin_prompts(
        seed=cfg.prompt_seed, n_train=None, n_eval=n or cfg.n_prompts, constraints_per_prompt=cfg.constraints_per_prompt,
        constraint_types=prompts.constraint_types, task_set=prompts.tasks,
    )
    return held_out
