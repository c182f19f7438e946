"""The `samples` and `preference_samples` stages: K sampled responses per prompt, before any judge sees them
(engine: harness/stages/candidates.py).

Keyed by the prompts, the model, the pool's sampling settings and the generation engine that drew them (this
machine's, or a bundle's: `Resolved.sampler`), with the seed. They are stages of their own, apart from the `pool`
stages that judge and pair them, so that judging the same samples again (another judge, another pairing) never
samples again, and a pool bundle's samples serve any machine, which judges and pairs them itself where its
settings differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.cache import StageResult
from harness.core.records import Prompt
from harness.stages import candidates
from harness.stages.config import PoolConfig

if TYPE_CHECKING:
    from harness.models.choices import Resolved
    from harness.run_folder import Run

NAME = "samples"
PREFERENCE = "preference_samples"
SAMPLING = ("k", "max_new_tokens", "temperature", "top_p", "batch_size")
"""The pool settings that decide the samples (batch size too: which rows decode together changes a seed's tokens)."""


def inputs(resolved: Resolved, stage: str, prompts: Any, cfg: PoolConfig, seed: int) -> dict[str, Any]:
    """`prompts`: the prompts stage's hash, or the spec of the evaluation prompts the preference pool samples."""
    return {
        "prompts": prompts,
        "model": resolved.model_key,
        "sampling": cfg.model_dump(include=set(SAMPLING)),
        **resolved.sampler(stage),
        "seed": seed,
    }


def run(run: Run, stage: str, prompts_key: Any, prompts: list[Prompt], cfg: PoolConfig, seed: int) -> StageResult:
    def compute(out: Path) -> dict:
        return candidates.draw_samples(run.model, prompts, cfg, seed, out, run.resolved.sampling(stage))

    return run.stage(stage, inputs(run.resolved, stage, prompts_key, cfg, seed), compute)
