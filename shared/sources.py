"""Names of the retrieval sources, as they appear in `source` fields across the contracts,
and where a source placed an item (what the ranker learns from)."""

from __future__ import annotations

from dataclasses import dataclass

GENERATOR = "candidate-gan"
ITEM_KNN = "item-knn"
POPULAR = "popular"
ITEM_TEXT = "item-text"  # items whose text embedding is close to the shopper's (finds unsold items)
KNOWLEDGE_GRAPH = "knowledge-graph"  # items sharing a brand, category or attribute with the shopper's
EASE = "ease"  # closed-form item-item regression over the shopper's items (ml/ease.py)
ALL = (GENERATOR, ITEM_KNN, EASE, POPULAR, ITEM_TEXT, KNOWLEDGE_GRAPH)


@dataclass(frozen=True, slots=True)  # millions of them in training: no __dict__ each
class Placement:
    """One source's rank (0-based) and own score for an item."""

    source: str
    rank: int
    score: float
