"""`bpo`: Balanced Preference Optimization (Wang et al., NAACL 2025; our reconstruction, docs/design.md):
k-means breadth over prompt embeddings, then each selected prompt's depth from the clusters of its pairs'
projected DPO gradients. The dynamic-depth family it belongs to is in _dynamic.py; its ablations are files of their own.
"""

from __future__ import annotations

from strategies._dynamic import ClusteredDepth
from strategies.base import CandidatePool, Features, register


@register
class BPO(ClusteredDepth):
    name = "bpo"
    description = "Balanced Preference Optimization: k-means breadth, dynamic depth from DPO-gradient clusters"
    requires = frozenset({"embeddings", "gradients"})
    feature_label = "projected DPO gradient (LoRA)"

    def pair_features(self, pool: CandidatePool) -> Features:
        return pool.pair_gradients
