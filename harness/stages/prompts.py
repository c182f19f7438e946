"""The `prompts` stage: normalised training prompts (and native pairs) from any source.

Keyed by the prompts section and the pool seed (the built-in set draws its training prompts with it).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.cache import StageResult
from harness.core.errors import BenchError
from harness.core.io import read_jsonl, write_jsonl
from harness.core.records import Prompt, from_row, to_row
from harness.data.builtin import build_builtin_prompts
from harness.data.config import PromptsConfig
from harness.data.sources import SourceError, load_source

if TYPE_CHECKING:
    from harness.experiment import ExperimentConfig
    from harness.run_folder import Run

NAME = "prompts"


def inputs(config: ExperimentConfig) -> dict:
    return {"prompts": config.prompts.key(), "seed": config.pool_seed}


def load_training_prompts(cfg: PromptsConfig, seed: int) -> tuple[list[Prompt], list[dict], dict[str, dict[str, int]]]:
    """Training prompts, native pairs (`{"prompt_id", "chosen", "rejected"}`) and what was dropped.

    The third item counts the source rows left out on purpose, by reason (`skipped`: rows that
    cannot give a pair, such as identical replies; `merged`: repeated prompts folded into one),
    so that the run's report can say how much of the data was used.
    """
    if cfg.source == "builtin":
        try:
            train, _ = build_builtin_prompts(
                seed=seed,
                n_train=cfg.n_train,
                n_eval=None,
                constraints_per_prompt=cfg.constraints_per_prompt,
                constraint_types=cfg.constraint_types,
                task_set=cfg.tasks,
            )
        except ValueError as exc:
            raise BenchError(f"prompts: {exc}") from None
        return train, [], {"skipped": {}, "merged": {}}

    try:
        loaded = load_source(cfg.source, format=cfg.format, split=cfg.split, data_dir=cfg.data_dir, limit=cfg.n_train)
    except SourceError as exc:
        raise BenchError(str(exc)) from None
    return (
        loaded.prompts,
        [asdict(p) for p in loaded.native_pairs],
        {"skipped": loaded.skipped, "merged": loaded.merged},
    )


def write_prompts(out: Path, prompts: list[Prompt], native: list[dict], dropped: dict[str, dict[str, int]]) -> dict:
    write_jsonl(out / "prompts.jsonl", (to_row(p) for p in prompts))
    write_jsonl(out / "native_pairs.jsonl", native)
    return {
        "n_prompts": len(prompts),
        "n_native_pairs": len(native),
        "rows_skipped": dropped["skipped"],
        "rows_merged": dropped["merged"],
    }


def read_prompts(path: Path) -> tuple[list[Prompt], list[dict]]:
    prompts = [from_row(Prompt, r) for r in read_jsonl(path / "prompts.jsonl")]
    return prompts, read_jsonl(path / "native_pairs.jsonl")


def run(run: Run) -> tuple[StageResult, list[Prompt], list[dict]]:
    """The stage through the cache: its result, the prompts and the native pairs."""
    config = run.config

    def compute(out: Path) -> dict:
        prompts, native, dropped = load_training_prompts(config.prompts, config.pool_seed)
        return write_prompts(out, prompts, native, dropped)

    result = run.stage(NAME, inputs(config), compute)
    return (result, *read_prompts(result.path))
