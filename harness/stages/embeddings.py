"""The `embeddings` stage and pool view: prompt and response embeddings (engine: harness/embeddings.py).

Keyed by the pool stage and the embeddings section only.
"""

from __future__ import annotations

from pathlib import Path

from harness import embeddings as engine
from harness.config import ExperimentConfig
from harness.errors import require
from harness.io import read_json
from harness.records import CandidatePool
from harness.registry import POOL_VIEWS
from harness.stages.views import PoolView, ViewResult

NAME = "embeddings"


def inputs(config: ExperimentConfig, pool_hash: str) -> dict:
    return {"pool": pool_hash, "embeddings": config.embeddings.model_dump()}


def compute(run, candidate_pool: CandidatePool, pool_hash: str) -> ViewResult:
    cfg = run.config.embeddings

    def _compute(out: Path) -> dict:
        return engine.compute_pool_embeddings(candidate_pool, cfg.model, cfg.batch_size, out)

    result = run.stage(NAME, inputs(run.config, pool_hash), _compute)
    prompts, responses = engine.load_pool_embeddings(result.path)
    seconds = {"embeddings": read_json(result.path / "stage.json").get("seconds_embeddings")}
    return ViewResult({"prompt_embeddings": prompts, "response_embeddings": responses}, NAME, result.hash, seconds)


def preflight(config: ExperimentConfig) -> None:
    """The embedding library and the packaged default model (the error names the pip command)."""
    needed_for = f"strategy {config.select.strategy} (it embeds the prompts: embeddings.model = {config.embeddings.model})"
    require("sentence_transformers", "pip install 'sentence-transformers>=3.0'", needed_for)
    engine.resolve_embedder(config.embeddings.model)


POOL_VIEWS.register(NAME, PoolView(compute, preflight))
