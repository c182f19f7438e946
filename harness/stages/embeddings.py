"""The `embeddings` stage: prompt and response embeddings, for breadth compression and the embedding-depth ablation
(the pool view that attaches them: harness/pool_views/embeddings.py).

Keyed by the pool stage and the embeddings section only; the embedder is harness/models/embedder.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.core.records import Features
from harness.models.embedder import embed_texts

if TYPE_CHECKING:
    from harness.experiment import ExperimentConfig

    pass

NAME = "embeddings"


def compute_pool_embeddings(pool, model_name: str, batch_size: int, out_dir: Path) -> dict:
    """Embed every pool prompt (its last user turn) and every response that is in a pair."""
    import time

    start = time.perf_counter()
    prompt_ids = sorted(pool.prompts)
    response_ids = sorted({r for p in pool.pairs for r in (p.chosen_id, p.rejected_id)})
    prompt_vecs = embed_texts([pool.prompts[i].messages[-1]["content"] for i in prompt_ids], model_name, batch_size)
    response_vecs = embed_texts([pool.responses[i].text for i in response_ids], model_name, batch_size)
    with open(out_dir / "embeddings.npz", "wb") as handle:
        np.savez(
            handle,
            prompt_ids=np.array(prompt_ids),
            prompt=prompt_vecs,
            response_ids=np.array(response_ids),
            response=response_vecs,
        )
    return {
        "seconds_embeddings": time.perf_counter() - start,
        "n_prompts": len(prompt_ids),
        "n_responses": len(response_ids),
    }


def load_pool_embeddings(out_dir: Path):
    """(prompt Features, response Features) as written by `compute_pool_embeddings`."""

    data = np.load(out_dir / "embeddings.npz")
    prompts = Features(dict(zip(data["prompt_ids"].tolist(), data["prompt"])))
    responses = Features(dict(zip(data["response_ids"].tolist(), data["response"])))
    return prompts, responses


def inputs(config: ExperimentConfig, pool_hash: str) -> dict:
    return {"pool": pool_hash, "embeddings": config.embeddings.model_dump()}
