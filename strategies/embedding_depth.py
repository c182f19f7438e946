"""`embedding_depth`: bpo with response-embedding differences instead of DPO gradients as the clustered features."""

from __future__ import annotations

from strategies._dynamic import ClusteredDepth, unit
from strategies.base import CandidatePool, Features, register


@register
class EmbeddingDepth(ClusteredDepth):
    name = "embedding_depth"
    description = "ablation: bpo with response-embedding differences instead of gradients as features"
    feature_label = "response embedding difference"

    def pair_features(self, pool: CandidatePool) -> Features:
        emb = pool.response_embeddings
        return Features({p.id: unit(emb[p.chosen_id] - emb[p.rejected_id]) for p in pool.pairs})
