"""The held-out preference pairs, and the `preference_samples` and `preference_pool` stages that make them when asked.

Three sources, by the preference section: a preference data set's own pairs (`source`),
base-model samples on evaluation prompts (`k` > 0: sampled by the `preference_samples` stage, judged and
paired like the training pool by the `preference_pool` stage, keyed by the evaluation prompts and prompt_seed,
never the run seed, so one pool serves a whole matrix), or else pairs reserved from the training pool before
any strategy sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.core.cache import StageResult
from harness.core.io import content_hash
from harness.core.records import CandidatePool, Pair
from harness.data.heldout import eval_prompts
from harness.evaluation import preference as preference_eval
from harness.stages import candidates as pool_engine
from harness.stages import samples
from harness.stages.config import PoolConfig
from harness.stages.pool import judged

if TYPE_CHECKING:
    from harness.experiment import ExperimentConfig
    from harness.models.choices import Resolved
    from harness.run_folder import Run

NAME = "preference_pool"


@dataclass(frozen=True)
class HeldoutPairs:
    """The held-out pairs, the pool whose prompts and responses they index, what is left for the
    strategies to select from, and the key that names the pair set."""

    pairs: list[Pair]
    texts: CandidatePool
    selectable: CandidatePool
    key: str


def preference_pool_config(config: ExperimentConfig) -> PoolConfig:
    """The pool's own sampling, judge and pairing at `preference.k` samples: held-out pairs are made like training pairs."""
    return config.pool.model_copy(update={"k": config.preference.k})


def prompts_spec(config: ExperimentConfig) -> dict[str, Any]:
    """The evaluation prompts the held-out pool samples: the evaluation's own, by prompt_seed, never the run seed."""
    ecfg = config.evaluate
    return {
        "n": config.preference.prompts,
        "seed": ecfg.prompt_seed,
        "constraints_per_prompt": ecfg.constraints_per_prompt,
        **config.prompts.builtin_set(),
    }


def samples_inputs(resolved: Resolved) -> dict[str, Any]:
    """The key of `preference_samples`: one held-out pool serves a whole matrix."""
    config = resolved.config
    return samples.inputs(
        resolved, samples.PREFERENCE, prompts_spec(config), preference_pool_config(config), config.evaluate.prompt_seed
    )


def _sampled(run: Run, config: ExperimentConfig) -> CandidatePool:
    """The preference_samples and preference_pool stages through the cache."""
    ecfg = config.evaluate
    prompts = eval_prompts(ecfg, config.preference.prompts, config.prompts)
    cfg = preference_pool_config(config)
    drawn = samples.run(run, samples.PREFERENCE, prompts_spec(config), prompts, cfg, ecfg.prompt_seed)
    result: StageResult = judged(run, NAME, drawn, prompts, [], cfg, ecfg.prompt_seed)
    return pool_engine.read_pool(result.path, prompts)


def heldout(run: Run, candidate_pool: CandidatePool) -> HeldoutPairs:
    pcfg, seed = run.config.preference, run.config.evaluate.prompt_seed
    if pcfg.source:
        texts, pairs = preference_eval.heldout_from_source(pcfg, seed, set(candidate_pool.prompts))
        selectable = candidate_pool
    elif pcfg.k > 0:
        texts = _sampled(run, run.config)
        selectable, pairs = candidate_pool, preference_eval.cap_pairs(list(texts.pairs), pcfg.pairs, seed)
    else:
        selectable, pairs = preference_eval.reserve_heldout(candidate_pool, pcfg.holdout, pcfg.pairs, seed)
        texts = candidate_pool
    return HeldoutPairs(pairs, texts, selectable, content_hash(sorted(p.id for p in pairs)))
