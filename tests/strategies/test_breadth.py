"""Breadth compression with the real offline embedding model."""

from __future__ import annotations

import numpy as np

from harness.models.embedder import embed_texts
from strategies._breadth import compress_breadth
from strategies.base import Features

TOPICS = {
    "cooking": ["How do I boil an egg?", "Give me a simple pasta recipe.", "What spices go well with roasted chicken?"],
    "space": ["Why is Mars red?", "How far away is the Moon?", "What is a black hole?"],
    "money": [
        "How should I start a monthly budget?",
        "What is compound interest?",
        "Tips for saving money on groceries.",
    ],
}


def test_breadth_compression_keeps_one_prompt_per_topic() -> None:
    texts = [t for group in TOPICS.values() for t in group]
    vectors = embed_texts(texts, "all-MiniLM-L6-v2")
    assert vectors.shape == (9, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    ids = [f"p{i}" for i in range(len(texts))]
    features = Features(dict(zip(ids, vectors)))
    for seed in range(3):
        kept = compress_breadth(ids, features, 3, seed)
        topics = {next(name for name, group in TOPICS.items() if texts[ids.index(k)] in group) for k in kept}
        assert len(kept) == 3 and topics == set(TOPICS), kept
    assert compress_breadth(ids, features, 9, 0) == ids
