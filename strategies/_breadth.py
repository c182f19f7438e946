"""Breadth compression: k-means over prompt embeddings, keep the prompt nearest each centroid.

Shared by `uniform`, the depth ablations and `bpo`, which therefore select the same prompts
for the same seed and breadth, and differ only in how they spend depth.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from strategies.base import BudgetError, Features


def kmeans(x: np.ndarray, k: int, seed: int) -> KMeans:
    return KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x)


def compress_breadth(candidates: list[str], embeddings: Features, m: int, seed: int) -> list[str]:
    """`m` representative prompts among `candidates` (sorted ids), one per k-means cluster.

    Each centroid takes its nearest prompt not already taken by another centroid, so exactly
    `m` distinct prompts come back even when two centroids share a nearest neighbour.
    """
    if m > len(candidates):
        raise BudgetError(f"breadth compression needs {m} prompts, the pool has {len(candidates)} eligible")
    if m == len(candidates):
        return list(candidates)
    x = embeddings.matrix(candidates)
    distances = kmeans(x, m, seed).transform(x)
    chosen: list[str] = []
    taken: set[int] = set()
    for centre in range(m):
        for index in np.argsort(distances[:, centre], kind="stable"):
            if index not in taken:
                taken.add(int(index))
                chosen.append(candidates[index])
                break
    return chosen
