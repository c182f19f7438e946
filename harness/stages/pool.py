"""The `pool` stage: K samples per training prompt, judged, paired (engine: harness/stages/candidates.py).

Keyed by the prompts stage, the model, the pool section (not the judge's transport settings) and
the generation engine that sampled it (this machine's, or a bundle's: `Resolved.sampler`), with the
pool seed: one pool serves every strategy of a matrix.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.cache import StageResult
from harness.core.config import BenchError, ExperimentConfig, JudgeConfig, PoolConfig
from harness.core.records import CandidatePool, Prompt
from harness.stages import candidates as engine

if TYPE_CHECKING:
    from harness.models.resolved import Resolved
    from harness.run_folder import Run

NAME = "pool"
PAIRS_PER_PROMPT = {"all": lambda k: k * (k - 1) // 2, "best_vs_rest": lambda k: k - 1, "best_worst": lambda k: 1}
"""The most pairs one prompt's K samples give under each `pool.pairing`."""


def pool_key(cfg: PoolConfig) -> dict[str, Any]:
    """The pool settings that change its contents: not the judge's transport settings, and `k_max`
    only when set, so that pools made before it existed stay cached. `seed` enters the pool's
    inputs resolved (`ExperimentConfig.pool_seed`), not here."""
    exclude: dict[str, Any] = {"judge": set(JudgeConfig.TRANSPORT_FIELDS), "seed": True}
    if cfg.k_max is None:
        exclude["k_max"] = True
    return cfg.model_dump(exclude=exclude)


def inputs(resolved: Resolved, prompts_hash: str) -> dict[str, Any]:
    config = resolved.config
    return {
        "prompts": prompts_hash,
        "model": resolved.model_key,
        "pool": pool_key(config.pool),
        **resolved.sampler(NAME),
        "seed": config.pool_seed,
    }


def check_coverage(config: ExperimentConfig, prompts: list[Prompt], n_native: int) -> None:
    """Refuse, before any sampling, prompts the judge cannot score and budgets no pool could supply."""
    from harness.judges import get_judge

    judge = get_judge(config.pool.judge)
    reasons = [r for r in (judge.unsupported_reason(p) for p in prompts) if r]
    if reasons:
        raise BenchError(f"pool.judge = {config.pool.judge}: {len(reasons)} of {len(prompts)} prompts cannot be judged; first: {reasons[0]}")
    k = config.pool.k
    per_prompt = PAIRS_PER_PROMPT[config.pool.pairing](k)
    ceiling = len(prompts) * per_prompt + n_native
    if config.select.budget > ceiling:
        raise BenchError(
            f"select.budget = {config.select.budget} pairs cannot be met: {len(prompts)} prompts x at most {per_prompt} "
            f"pairs each (pool.k = {k}, pool.pairing = {config.pool.pairing}) gives at most {ceiling}. "
            "Lower --budget or raise prompts.n_train / pool.k."
        )


def run(run: Run, prompts_stage: StageResult, prompts: list[Prompt], native: list[dict]) -> tuple[StageResult, CandidatePool]:
    config = run.config
    check_coverage(config, prompts, len(native))

    def compute(out: Path) -> dict:
        return engine.build_pool(run.model, prompts, native, config.pool, config.pool_seed, out, generation=run.resolved.sampling(NAME), cache_dir=run.cache)

    result = run.stage(NAME, inputs(run.resolved, prompts_stage.hash), compute)
    return result, engine.read_pool(result.path, prompts)
