"""The `select` stage: the strategy under test picks `budget` pairs; the harness checks its output and adds
the diagnostics every strategy shares (breadth, depth, lengths, gradient coverage).

Keyed by the pool stage, the views' stage hashes, the select section, the run seed and the
held-out pairs (none of which a strategy may pick). Publishes selection.json.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from harness.core.cache import StageResult
from harness.core.errors import BenchError, BudgetError
from harness.core.io import write_json, write_jsonl
from harness.core.records import CandidatePool, Pair, Selection, to_row
from harness.core.run_files import RunFolder
from harness.stages.config import SelectConfig
from harness.training import dpo
from strategies import Strategy, get_strategy
from strategies._depth import gini

if TYPE_CHECKING:
    from harness.experiment import ExperimentConfig
    from harness.run_folder import Run

NAME = "select"


def inputs(config: ExperimentConfig, pool_hash: str, view_hashes: dict[str, str], heldout_key: str) -> dict[str, Any]:
    return {
        "pool": pool_hash,
        "views": view_hashes,
        "select": config.select.model_dump(),
        "seed": config.seed,
        "heldout": heldout_key,
    }


def run(
    run: Run, candidate_pool: CandidatePool, pool_hash: str, views: dict[str, dict[str, Any]], heldout_key: str
) -> StageResult:
    config = run.config

    def compute(out: Path) -> dict:
        chosen = run.selector.select(candidate_pool, config.seed)
        # timings go to the stage summary, not selection.json: a selection must be byte-identical across reruns
        seconds = {**views["seconds"], "clustering": chosen.diagnostics.pop("seconds_clustering", None)}
        write_json(out / RunFolder.SELECTION, to_row(chosen))
        pairs = training_pairs(chosen, candidate_pool)
        write_jsonl(out / "pairs.jsonl", (to_row(p) for p in pairs))
        write_jsonl(out / "train.jsonl", dpo.preference_rows(pairs, candidate_pool.prompts, candidate_pool.responses))
        return {"breadth": chosen.diagnostics["breadth"], "seconds_by_part": seconds}

    result = run.stage(NAME, inputs(config, pool_hash, views["hashes"], heldout_key), compute)
    run.publish_file(result.path / RunFolder.SELECTION, RunFolder.SELECTION)
    return result


@dataclass(frozen=True)
class Selector:
    """The configured strategy, looked up in the registry once, with its typed params and its budget: what a run's
    budget guard, pool views and select stage all read (`Run.selector`), so none of them looks the name up again."""

    name: str
    strategy: Strategy
    params: BaseModel
    budget: int

    @classmethod
    def of(cls, cfg: SelectConfig) -> "Selector":
        return cls(cfg.strategy, get_strategy(cfg.strategy), cfg.typed_params(), cfg.budget)

    def views(self) -> list[str]:
        """The pool views the strategy declares, in a fixed order (their hashes and timings are recorded in it)."""
        return sorted(self.strategy.needs(self.params))

    def check_budget(self, pool: CandidatePool) -> None:
        """Refuse a budget larger than the strategy can draw from `pool`: a run asks before its folder exists."""
        most = self.strategy.max_budget(pool, self.params)
        if self.budget > most:
            raise BenchError(
                f"select.budget = {self.budget} pairs, but strategy {self.name!r} can draw at most {most} from this pool "
                f"({len(pool.pairs)} candidate pairs over {len(pool.pairs_by_prompt)} prompts with at least one pair). "
                "Lower --budget, or grow the pool (prompts.n_train, pool.k) with --set."
            )

    def select(self, pool: CandidatePool, seed: int) -> Selection:
        """The strategy's selection from `pool` (its budget already checked), held to the contract, with the
        diagnostics every strategy shares."""
        try:
            selection = self.strategy.select(pool, self.budget, np.random.default_rng(seed), self.params)
        except BudgetError as exc:
            raise BenchError(f"strategy {self.name!r}: {exc}. Lower --budget or grow the pool.") from None
        _check(selection, pool, self.budget)
        selection.diagnostics = {**shared_diagnostics(selection, pool), **selection.diagnostics}
        return selection


def run_strategy(pool: CandidatePool, cfg: SelectConfig, seed: int) -> Selection:
    """A selection outside a run (tests, notebooks, benchmarks): the budget checked, then the strategy run."""
    selector = Selector.of(cfg)
    selector.check_budget(pool)
    return selector.select(pool, seed)


def training_pairs(selection: Selection, pool: CandidatePool) -> list[Pair]:
    """The selected pairs as DPO will see them: flipped ones with chosen and rejected swapped."""
    flipped = set(selection.flipped)
    out = []
    for pair_id in selection.pair_ids:
        pair = pool.pair_by_id[pair_id]
        if pair_id in flipped:
            margin = -pair.margin if pair.margin is not None else None
            pair = dataclasses.replace(pair, chosen_id=pair.rejected_id, rejected_id=pair.chosen_id, margin=margin)
        out.append(pair)
    return out


def _check(selection: Selection, pool: CandidatePool, budget: int) -> None:
    """A strategy that breaks the contract is a bug in that strategy: fail loudly."""
    ids = selection.pair_ids
    if len(ids) != budget:
        raise AssertionError(f"strategy {selection.strategy} returned {len(ids)} pairs for budget {budget}")
    if len(set(ids)) != len(ids):
        raise AssertionError(f"strategy {selection.strategy} returned duplicate pairs")
    missing = [i for i in ids if i not in pool.pair_by_id]
    if missing:
        raise AssertionError(f"strategy {selection.strategy} returned pairs not in the pool: {missing[:3]}")
    if not set(selection.flipped) <= set(ids):
        raise AssertionError(f"strategy {selection.strategy} flipped pairs it did not select")


def _words(text: str) -> int:
    return len(text.split())


def shared_diagnostics(selection: Selection, pool: CandidatePool) -> dict:
    """Breadth, depth and length statistics, computed the same way for every strategy.

    The chosen/rejected length gap is reported because DPO learns length first: a selection
    whose chosen answers are much shorter teaches brevity, whatever the constraints say.
    """
    pairs = training_pairs(selection, pool)
    depth = Counter(p.prompt_id for p in pairs)
    chosen_words = [_words(pool.responses[p.chosen_id].text) for p in pairs]
    rejected_words = [_words(pool.responses[p.rejected_id].text) for p in pairs]
    margins = [p.margin for p in pairs if p.margin is not None]
    return {
        "breadth": len(depth),
        "depth": dict(sorted(depth.items())),
        "depth_histogram": {str(k): v for k, v in sorted(Counter(depth.values()).items())},
        "depth_gini": gini(list(depth.values())),
        "n_pairs": len(pairs),
        "n_flipped": len(selection.flipped),
        "mean_margin": float(np.mean(margins)) if margins else None,
        "chosen_words_mean": float(np.mean(chosen_words)) if pairs else None,
        "rejected_words_mean": float(np.mean(rejected_words)) if pairs else None,
        "length_gap_words": float(np.mean(chosen_words) - np.mean(rejected_words)) if pairs else None,
        "pool_prompts_with_pairs": len(pool.pairs_by_prompt),
        "pool_pairs": len(pool.pairs),
        **gradient_coverage(depth, pool),
    }


def gradient_coverage(depth: Counter, pool: CandidatePool) -> dict:
    """How many of the pool's gradient clusters the selection touches, and its pairs per cluster.

    The pool's prompts (with pairs) are k-means clustered by gradient feature into ⌈√n⌉
    clusters with a fixed seed, so the figure is comparable across strategies on one pool.
    Only computed where gradient features exist (strategies that require them); else None.
    """
    if pool.prompt_gradients is None:
        return {"gradient_clusters": None, "gradient_clusters_covered": None, "pairs_per_gradient_cluster": None}
    from strategies._breadth import kmeans

    ids = sorted(pool.pairs_by_prompt)
    k = max(1, min(len(ids), int(np.ceil(np.sqrt(len(ids))))))
    labels = kmeans(pool.prompt_gradients.matrix(ids), k, seed=0).labels_ if k > 1 else np.zeros(len(ids), dtype=int)
    per_cluster = np.zeros(k, dtype=int)
    for pid, label in zip(ids, labels):
        per_cluster[label] += depth.get(pid, 0)
    return {
        "gradient_clusters": k,
        "gradient_clusters_covered": int((per_cluster > 0).sum()),
        "pairs_per_gradient_cluster": per_cluster.tolist(),
    }
