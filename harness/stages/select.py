"""The `select` stage: the strategy under test picks `budget` pairs (engine: harness/selection.py).

Keyed by the pool stage, the views' stage hashes, the select section, the run seed and the
held-out pairs (none of which a strategy may pick). Publishes selection.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import selection, trainer
from harness.cache import StageResult
from harness.config import ExperimentConfig
from harness.io import write_json, write_jsonl
from harness.records import CandidatePool, to_row

NAME = "select"


def inputs(config: ExperimentConfig, pool_hash: str, view_hashes: dict[str, str], heldout_key: str) -> dict[str, Any]:
    return {"pool": pool_hash, "views": view_hashes, "select": config.select.model_dump(), "seed": config.seed, "heldout": heldout_key}


def run(run, candidate_pool: CandidatePool, pool_hash: str, views: dict[str, dict[str, Any]], heldout_key: str) -> StageResult:
    config = run.config

    def compute(out: Path) -> dict:
        chosen = selection.run_strategy(candidate_pool, config.select, config.seed)
        # timings go to the stage summary, not selection.json: a selection must be byte-identical across reruns
        seconds = {**views["seconds"], "clustering": chosen.diagnostics.pop("seconds_clustering", None)}
        write_json(out / "selection.json", to_row(chosen))
        pairs = selection.training_pairs(chosen, candidate_pool)
        write_jsonl(out / "pairs.jsonl", (to_row(p) for p in pairs))
        write_jsonl(out / "train.jsonl", trainer.preference_rows(pairs, candidate_pool.prompts, candidate_pool.responses))
        return {"breadth": chosen.diagnostics["breadth"], "seconds_by_part": seconds}

    result = run.stage(NAME, inputs(config, pool_hash, views["hashes"], heldout_key), compute)
    run.publish_file(result.path / "selection.json", "selection.json")
    return result


def check_budget(selectable: CandidatePool, config: ExperimentConfig) -> None:
    """Refuse a budget the strategy cannot draw from the selectable pairs, before the run folder exists."""
    selection.check_budget(selectable, config.select)
