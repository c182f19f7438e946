"""The `pool` stage: the `samples` stage's responses judged and paired (engine: harness/stages/candidates.py).

Keyed by the samples stage and the rest of the pool section (the judge, not its transport settings, and the
pairing), with the pool seed: one pool serves every strategy of a matrix, and another judge labels the same
samples without sampling them again. With `k_max` the stage samples more itself, so this machine's engine and
the model enter its key too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.cache import StageResult
from harness.core.errors import BenchError
from harness.core.records import CandidatePool, Prompt
from harness.judges import get_judge
from harness.judges.config import JudgeConfig
from harness.stages import candidates, samples
from harness.stages.config import PoolConfig

if TYPE_CHECKING:
    from harness.experiment import ExperimentConfig
    from harness.models.choices import Resolved
    from harness.run_folder import Run

NAME = "pool"
PAIRS_PER_PROMPT = {"all": lambda k: k * (k - 1) // 2, "best_vs_rest": lambda k: k - 1, "best_worst": lambda k: 1}
"""The most pairs one prompt's K samples give under each `pool.pairing`."""


def pool_key(cfg: PoolConfig) -> dict[str, Any]:
    """The pool settings that change its pairs but not its samples: not the judge's transport settings, and
    `k_max` only when set. `seed` enters the pool's inputs resolved (`ExperimentConfig.pool_seed`), not here."""
    exclude: dict[str, Any] = {
        "judge": set(JudgeConfig.TRANSPORT_FIELDS),
        "seed": True,
        **{f: True for f in samples.SAMPLING},
    }
    if cfg.k_max is None:
        exclude["k_max"] = True
    return cfg.model_dump(exclude=exclude)


def inputs(resolved: Resolved, samples_hash: str, cfg: PoolConfig | None = None) -> dict[str, Any]:
    cfg = cfg or resolved.config.pool
    tops_up = {"model": resolved.model_key, **resolved.engine} if cfg.k_max else {}
    return {"samples": samples_hash, "pool": pool_key(cfg), **tops_up}


def check_coverage(config: ExperimentConfig, prompts: list[Prompt], n_native: int) -> None:
    """Refuse, before any sampling, prompts the judge cannot score and budgets no pool could supply."""

    judge = get_judge(config.pool.judge)
    reasons = [r for r in (judge.unsupported_reason(p) for p in prompts) if r]
    if reasons:
        raise BenchError(
            f"pool.judge = {config.pool.judge}: {len(reasons)} of {len(prompts)} prompts cannot be judged; first: {reasons[0]}"
        )
    k = config.pool.k
    per_prompt = PAIRS_PER_PROMPT[config.pool.pairing](k)
    ceiling = len(prompts) * per_prompt + n_native
    if config.select.budget > ceiling:
        raise BenchError(
            f"select.budget = {config.select.budget} pairs cannot be met: {len(prompts)} prompts x at most {per_prompt} "
            f"pairs each (pool.k = {k}, pool.pairing = {config.pool.pairing}) gives at most {ceiling}. "
            "Lower --budget or raise prompts.n_train / pool.k."
        )


def run(
    run: Run, prompts_stage: StageResult, prompts: list[Prompt], native: list[dict]
) -> tuple[StageResult, CandidatePool]:
    config = run.config
    check_coverage(config, prompts, len(native))
    drawn = samples.run(run, samples.NAME, prompts_stage.hash, prompts, config.pool, config.pool_seed)
    result = judged(run, NAME, drawn, prompts, native, config.pool, config.pool_seed)
    return result, candidates.read_pool(result.path, prompts)


def judged(
    run: Run, stage: str, drawn: StageResult, prompts: list[Prompt], native: list[dict], cfg: PoolConfig, seed: int
) -> StageResult:
    """A pool stage over a samples stage: its samples judged and paired (the training pool's and the held-out one's)."""

    def compute(out: Path) -> dict:
        return candidates.build_pool(
            run.model,
            prompts,
            native,
            candidates.read_samples(drawn.path),
            cfg,
            seed,
            out,
            generation=run.resolved.generation,
            cache_dir=run.cache,
        )

    return run.stage(stage, inputs(run.resolved, drawn.hash, cfg), compute)
