"""The dynamic-depth family's shared pipeline: breadth compression, then a per-prompt depth. Each member is a
file of its own, named as it is registered: `bpo` (strategies/bpo.py), `embedding_depth`, `length_depth` and
`random_depth`; `less` borrows `unit` and `reserve_validation`. A helper module (leading underscore): the
registry does not look for strategies here.

All four share one pipeline and differ only in the depth measure (docs/design.md §3):
`bpo` clusters prompts by the DPO gradient they induce, `embedding_depth` by response
embeddings, `length_depth` weights prompts by response length, `random_depth` at random.
For the same seed and parameters they keep the same prompts (same breadth).
"""

from __future__ import annotations

import math
import time
from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.core.records import Selection
from strategies._breadth import compress_breadth, kmeans
from strategies._depth import allocate_depth, softmax
from strategies.base import CandidatePool, Features, Strategy


class DynamicParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    breadth: int | None = Field(
        None, ge=1, description="m, prompts kept by breadth compression (default: ceil(B / mean_depth))"
    )
    mean_depth: float = Field(2.0, ge=1, description="sets the default breadth m = ceil(B / mean_depth)")
    clusters: int | None = Field(None, ge=1, description="C, feature clusters (default: ceil(sqrt(m)))")
    temperature: float = Field(0.25, gt=0, description="tau in softmax((centrality + lambda*usefulness)/tau)")
    usefulness_weight: float = Field(1.0, ge=0, description="lambda")
    usefulness: Literal["mean", "validation", "none"] = Field(
        "mean",
        description="cluster usefulness against the mean pool gradient, a reserved validation split, or not at all",
    )
    validation_fraction: float = Field(
        0.1, gt=0, lt=0.5, description="share of prompts reserved when usefulness=validation"
    )


def unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def reserve_validation(pool: CandidatePool, fraction: float, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Split prompts with pairs into (selectable, validation); validation pairs are never selected."""
    ids = sorted(pool.pairs_by_prompt)
    n_val = max(1, round(fraction * len(ids)))
    order = rng.permutation(len(ids))
    val = sorted(ids[i] for i in order[:n_val])
    return sorted(set(ids) - set(val)), val


class DynamicDepth(Strategy):
    Params = DynamicParams
    requires: ClassVar[frozenset[str]] = frozenset({"embeddings"})

    def depth_plan(
        self,
        pool: CandidatePool,
        prompts: list[str],
        target: np.ndarray | None,
        rng: np.random.Generator,
        params: DynamicParams,
        seed: int,
    ) -> tuple[np.ndarray, dict[str, list[str]], dict]:
        """Per-prompt weights, each prompt's pairs in order of preference, and diagnostics."""
        raise NotImplementedError

    def pair_features(self, pool: CandidatePool) -> Features | None:
        return None

    def select(self, pool: CandidatePool, budget: int, rng: np.random.Generator, params: DynamicParams) -> Selection:
        seed = int(rng.integers(2**31 - 1))
        candidates = sorted(pool.pairs_by_prompt)
        target = None
        features = self.pair_features(pool)
        if params.usefulness == "validation":
            candidates, validation = reserve_validation(pool, params.validation_fraction, rng)
            if features is not None:
                target = unit(features.matrix([p.id for v in validation for p in pool.pairs_by_prompt[v]]).mean(0))
        elif params.usefulness == "mean" and features is not None:
            target = unit(features.matrix([p.id for p in pool.pairs]).mean(0))
        m = params.breadth or math.ceil(budget / params.mean_depth)
        m = min(m, budget)
        prompts = compress_breadth(candidates, pool.prompt_embeddings, m, seed)
        weights, ordered, diagnostics = self.depth_plan(pool, prompts, target, rng, params, seed)
        capacity = np.array([len(pool.pairs_by_prompt[p]) for p in prompts])
        depth = allocate_depth(weights, capacity, budget)
        pair_ids = [pid for p, d in zip(prompts, depth) for pid in ordered[p][:d]]
        diagnostics["weights"] = dict(zip(prompts, np.round(weights, 5).tolist()))
        return Selection(strategy=self.name, budget=budget, pair_ids=pair_ids, diagnostics=diagnostics)


def by_margin(pool: CandidatePool, prompt_id: str) -> list[str]:
    """A prompt's pair ids, largest judge margin first (ties by id)."""
    return [p.id for p in sorted(pool.pairs_by_prompt[prompt_id], key=lambda p: (-(p.margin or 0.0), p.id))]


class ClusteredDepth(DynamicDepth):
    """Cluster prompt features; central prompts of useful clusters get more depth."""

    feature_label: ClassVar[str]

    def prompt_features(self, pool: CandidatePool, prompts: list[str], pair_features: Features) -> np.ndarray:
        return np.stack([unit(pair_features.matrix([p.id for p in pool.pairs_by_prompt[q]]).mean(0)) for q in prompts])

    def depth_plan(self, pool, prompts, target, rng, params, seed):
        start = time.perf_counter()
        pair_features = self.pair_features(pool)
        g = self.prompt_features(pool, prompts, pair_features)
        n_clusters = min(params.clusters or math.ceil(math.sqrt(len(prompts))), len(prompts))
        labels = kmeans(g, n_clusters, seed).labels_ if n_clusters > 1 else np.zeros(len(prompts), dtype=int)
        centroids = unit(np.stack([g[labels == c].mean(0) for c in range(n_clusters)]))
        centrality = np.einsum("nd,nd->n", g, centroids[labels])
        usefulness = centroids @ target if target is not None else np.zeros(n_clusters)
        weights = softmax(centrality + params.usefulness_weight * usefulness[labels], params.temperature)
        ordered = {}
        for q, c in zip(prompts, labels):
            pairs = pool.pairs_by_prompt[q]
            closeness = pair_features.matrix([p.id for p in pairs]) @ centroids[c]
            rank = sorted(range(len(pairs)), key=lambda i: (-closeness[i], -(pairs[i].margin or 0.0), pairs[i].id))
            ordered[q] = [pairs[i].id for i in rank]
        sizes = np.bincount(labels, minlength=n_clusters)
        return (
            weights,
            ordered,
            {
                "feature": self.feature_label,
                "clusters": int(n_clusters),
                "cluster_sizes": sizes.tolist(),
                "clusters_covered": int((sizes > 0).sum()),
                "cluster_usefulness": np.round(usefulness, 4).tolist(),
                "centrality_mean": float(centrality.mean()),
                "seconds_clustering": time.perf_counter() - start,
            },
        )
