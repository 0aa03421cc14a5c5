"""Names of the retrieval sources, as they appear in `source` fields across the contracts,
and where a source placed an item (what the ranker learns from)."""

from __future__ import annotations

from dataclasses import dataclass

GENERATOR = "candidate-gan"
ITEM_KNN = "item-knn"
POPULAR = "popular"
ALL = (GENERATOR, ITEM_KNN, POPULAR)


@dataclass(frozen=True)
class Placement:
    """One source's rank (0-based) and own score for an item."""

    source: str
    rank: int
    score: float
