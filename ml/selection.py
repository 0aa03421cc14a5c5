"""Choosing the served fusion on validation: every source alone, the defaults, and a weight search.

The candidates service orders its list by weighted reciprocal-rank fusion
(ml/retrieval.py: merge). For each validation shopper this module holds every
source's list as a matrix of reciprocal ranks, so the fused top-K of any weight
vector is one product: scoring a configuration over thousands of shoppers takes
milliseconds. The top K of `merge` is the top K by fused score (quotas only decide
which items fill the list's tail), ties broken by item id as `merge` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ml.metrics import ndcg_of_hits, recall_of_hits, top_k
from ml.retrieval import FUSION_K, Retrieved

K = 20
# Weights tried for each source in the coordinate search, relative to the others.
WEIGHT_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
SEARCH_PASSES = 2
# A configuration replaces the best so far only when it is better by more than this NDCG.
MIN_IMPROVEMENT = 1e-4


@dataclass(frozen=True)
class Scored:
    """One configuration's mean NDCG@K and Recall@K over the validation shoppers."""

    name: str
    weights: dict[str, float]
    ndcg: float
    recall: float
    per_user: np.ndarray  # NDCG@K of each validation shopper, for paired comparisons


class FusionScorer:
    """The validation shoppers' source lists as reciprocal-rank tensors [users, sources, items]."""

    def __init__(
        self,
        lists: Mapping[str, Mapping[str, Sequence[Retrieved]]],
        relevant: Mapping[str, set[str]],
        sources: Sequence[str],
        k: int = K,
    ) -> None:
        self.sources = list(sources)
        self.k = k
        users = sorted(lists)
        unions = [sorted({c.item_id for found in lists[u].values() for c in found}) for u in users]
        width = max((len(items) for items in unions), default=0)
        self.ranks = np.zeros((len(users), len(self.sources), max(width, 1)), np.float64)
        self.hits = np.zeros((len(users), max(width, 1)), np.float32)
        self.valid = np.zeros((len(users), max(width, 1)), bool)
        self.relevant = np.array([len(relevant[u]) for u in users], np.float32)
        for row, (user, items) in enumerate(zip(users, unions, strict=True)):
            position = {item: i for i, item in enumerate(items)}
            self.valid[row, : len(items)] = True
            self.hits[row, : len(items)] = [item in relevant[user] for item in items]
            for column, source in enumerate(self.sources):
                for rank, candidate in enumerate(lists[user].get(source, ())):
                    self.ranks[row, column, position[candidate.item_id]] = 1.0 / (FUSION_K + rank + 1)

    def score(self, name: str, weights: Mapping[str, float]) -> Scored:
        vector = np.array([weights.get(source, 0.0) for source in self.sources], np.float64)
        fused = np.einsum("s,usn->un", vector, self.ranks)
        order = top_k(fused, self.k, exclude=~self.valid | (fused <= 0))
        found = np.take_along_axis(self.hits, order, 1) * np.take_along_axis(fused > 0, order, 1)
        ndcg = ndcg_of_hits(found, self.relevant)
        recall = recall_of_hits(found, self.relevant)
        return Scored(name, dict(weights), float(ndcg.mean()), float(recall.mean()), ndcg)


def search_weights(
    scorer: FusionScorer, servable: Sequence[str], start: Mapping[str, float]
) -> tuple[Scored, list[Scored]]:
    """The best weights found by coordinate search over WEIGHT_GRID from the best of: each servable
    source alone and `start`; returns it and every configuration tried by name."""
    tried = [scorer.score(f"{source} alone", {source: 1.0}) for source in servable]
    tried.append(scorer.score("default fusion", {s: w for s, w in start.items() if s in servable}))
    best = max(tried, key=lambda scored: scored.ndcg)
    for _ in range(SEARCH_PASSES):
        improved = False
        for source in servable:
            for value in WEIGHT_GRID:
                weights = {**best.weights, source: value}
                if value == best.weights.get(source, 0.0) or not any(weights.values()):
                    continue
                candidate = scorer.score("searched fusion", weights)
                if candidate.ndcg > best.ndcg + MIN_IMPROVEMENT:
                    best, improved = candidate, True
        if not improved:
            break
    return best, tried
