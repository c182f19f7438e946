"""The pool view `embeddings`: every pool prompt's and paired response's embedding, from the `embeddings` stage
(harness/stages/embeddings.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.errors import require
from harness.core.io import read_json
from harness.core.records import CandidatePool
from harness.models.embedder import resolve_embedder
from harness.pool_views.base import PoolView, ViewResult, register
from harness.stages.embeddings import NAME, compute_pool_embeddings, inputs, load_pool_embeddings

if TYPE_CHECKING:
    from harness.experiment import ExperimentConfig
    from harness.run_folder import Run


def compute(run: Run, candidate_pool: CandidatePool, pool_hash: str) -> ViewResult:
    cfg = run.config.embeddings

    def _compute(out: Path) -> dict:
        return compute_pool_embeddings(candidate_pool, cfg.model, cfg.batch_size, out)

    result = run.stage(NAME, inputs(run.config, pool_hash), _compute)
    prompts, responses = load_pool_embeddings(result.path)
    seconds = {"embeddings": read_json(result.path / "stage.json").get("seconds_embeddings")}
    return ViewResult({"prompt_embeddings": prompts, "response_embeddings": responses}, NAME, result.hash, seconds)


def preflight(config: ExperimentConfig) -> None:
    """The embedding library and the packaged default model (the error names the pip command)."""
    needed_for = (
        f"strategy {config.select.strategy} (it embeds the prompts: embeddings.model = {config.embeddings.model})"
    )
    require("sentence_transformers", "pip install 'sentence-transformers>=3.0'", needed_for)
    resolve_embedder(config.embeddings.model)


register(PoolView(compute, preflight, name="embeddings"))
