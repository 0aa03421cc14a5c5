"""Ranking metrics at K, averaged over test users, and list-level beyond-accuracy metrics.

Relevance is binary. NDCG uses the log2 discount and an ideal DCG over
min(|relevant|, K) hits, as the retail-temporal protocol specifies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

ACCURACY = ("precision", "recall", "ndcg", "mrr", "hitrate")


def user_metrics(ranked: Sequence[str] | np.ndarray, relevant: set, k: int) -> dict[str, float]:
    """Accuracy metrics of one ranked list against one user's relevant items."""
    top = list(ranked[:k])
    hits = [1.0 if item in relevant else 0.0 for item in top]
    hit_count = sum(hits)
    dcg = sum(hit / np.log2(rank + 2) for rank, hit in enumerate(hits))
    ideal = sum(1.0 / np.log2(rank + 2) for rank in range(min(len(relevant), k)))
    first = next((rank for rank, hit in enumerate(hits) if hit), None)
    return {
        "precision": hit_count / k,
        "recall": hit_count / len(relevant) if relevant else 0.0,
        "ndcg": dcg / ideal if ideal else 0.0,
        "mrr": 1.0 / (first + 1) if first is not None else 0.0,
        "hitrate": 1.0 if hit_count else 0.0,
    }


def mean_metrics(
    rankings: Mapping[object, Sequence], truth: Mapping[object, set], k: int
) -> dict[str, float]:
    """Accuracy metrics averaged over every user in `truth` (a user with no ranking scores 0)."""
    totals = dict.fromkeys(ACCURACY, 0.0)
    for user, relevant in truth.items():
        for name, value in user_metrics(rankings.get(user, []), relevant, k).items():
            totals[name] += value
    return {name: value / max(len(truth), 1) for name, value in totals.items()}


def coverage(rankings: Mapping[object, Sequence], k: int, catalog_size: int) -> float:
    """Share of the catalog that appears in at least one top-K list."""
    shown = {item for ranked in rankings.values() for item in list(ranked[:k])}
    return len(shown) / catalog_size if catalog_size else 0.0


def novelty(rankings: Mapping[object, Sequence], k: int, popularity: Mapping, users: int) -> float:
    """Mean self-information -log2(share of users who bought the item) of recommended items."""
    values = [
        -np.log2(max(popularity.get(item, 0), 1) / users)
        for ranked in rankings.values()
        for item in list(ranked[:k])
    ]
    return float(np.mean(values)) if values else 0.0


def intra_list_diversity(
    rankings: Mapping[object, Sequence], k: int, item_vectors: Mapping[object, np.ndarray]
) -> float:
    """Mean pairwise cosine distance between the items of each top-K list."""
    per_list = []
    for ranked in rankings.values():
        vectors = [item_vectors[item] for item in list(ranked[:k]) if item in item_vectors]
        if len(vectors) < 2:
            continue
        matrix = np.array(vectors, dtype=np.float64)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix = matrix / np.where(norms == 0, 1, norms)
        similarity = matrix @ matrix.T
        n = len(vectors)
        per_list.append(1.0 - (similarity.sum() - np.trace(similarity)) / (n * (n - 1)))
    return float(np.mean(per_list)) if per_list else 0.0
