"""Ranking metrics at K, the one implementation every evaluation and every trainer uses.

Relevance is binary. NDCG uses the log2 discount and an ideal DCG over
min(|relevant|, K) hits, as the retail-temporal protocol specifies. The
`*_of_hits` functions take many lists at once (a row each, hits in ranked order)
for trainers that score whole matrices; `user_metrics` and `mean_metrics` take
ranked ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

ACCURACY = ("precision", "recall", "ndcg", "mrr", "hitrate")


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def ndcg_of_hits(hits: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """NDCG of each row: `hits` (lists x k, 1 where the item at that rank is relevant) against
    `relevant` (how many relevant items each list's user has; 0 scores 0)."""
    hits = np.asarray(hits, dtype=np.float64)
    k = hits.shape[1]
    cumulative = np.concatenate([[0.0], np.cumsum(_discounts(k))])
    ideal = cumulative[np.minimum(np.asarray(relevant, dtype=np.int64), k)]
    dcg = hits @ _discounts(k)
    return np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)


def recall_of_hits(hits: np.ndarray, relevant: np.ndarray, capped: bool = False) -> np.ndarray:
    """Recall of each row (0 where the user has nothing relevant). `capped` divides by
    min(k, relevant) instead of relevant, as Mult-VAE's Recall@K does, so 1 is reachable."""
    hits = np.asarray(hits, dtype=np.float64)
    found = hits.sum(axis=1)
    relevant = np.asarray(relevant, dtype=np.float64)
    denominator = np.minimum(relevant, hits.shape[1]) if capped else relevant
    return np.divide(found, denominator, out=np.zeros_like(found), where=denominator > 0)


def top_k(scores: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """Column indices of each row's `k` best scores, best first (equal scores in column order);
    where `exclude` is true a column is never among them unless a row has too few others."""
    if exclude is not None:
        scores = np.where(exclude, -np.inf, scores)
    k = min(k, scores.shape[1])
    if k < scores.shape[1]:
        # A partial sort first: rows of many thousand items need only their best k ordered. It picks
        # any of the items tied at the k-th score; rows with such a tie are sorted in full instead.
        chosen = np.argpartition(-scores, k - 1, axis=1)[:, :k].copy()
        picked = np.take_along_axis(scores, chosen, axis=1)
        threshold = picked.min(axis=1, keepdims=True)
        tied = (scores == threshold).sum(axis=1) > (picked == threshold).sum(axis=1)
        rows = np.flatnonzero(tied)
        if len(rows):
            chosen[rows] = np.argsort(-scores[rows], axis=1, kind="stable")[:, :k]
    else:
        chosen = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    values = np.take_along_axis(scores, chosen, axis=1)
    order = np.lexsort((chosen, -values), axis=1)
    return np.take_along_axis(chosen, order, axis=1)


def held_out_recall(scores: np.ndarray, known: np.ndarray, held_out: np.ndarray, k: int) -> np.ndarray:
    """Recall@k of each user's held-out items (dense rows, 1 where held out), the user's known
    items excluded; users with nothing held out are left out of the result."""
    hits = np.take_along_axis(held_out, top_k(scores, k, exclude=known > 0), axis=1)
    relevant = held_out.sum(axis=1)
    users = relevant > 0
    return recall_of_hits(hits[users], relevant[users])


def user_metrics(ranked: Sequence[str] | np.ndarray, relevant: set, k: int) -> dict[str, float]:
    """Accuracy metrics of one ranked list against one user's relevant items."""
    top = list(ranked[:k])
    hits = np.array([[1.0 if item in relevant else 0.0 for item in top] + [0.0] * (k - len(top))])
    hit_count = float(hits.sum())
    first = next((rank for rank, hit in enumerate(hits[0]) if hit), None)
    return {
        "precision": hit_count / k,
        "recall": float(recall_of_hits(hits, np.array([len(relevant)]))[0]),
        "ndcg": float(ndcg_of_hits(hits, np.array([len(relevant)]))[0]),
        "mrr": 1.0 / (first + 1) if first is not None else 0.0,
        "hitrate": 1.0 if hit_count else 0.0,
    }


def recall_of(found: Sequence[str], relevant: set) -> float:
    """Share of `relevant` among `found`, however long the list."""
    return user_metrics(found, relevant, max(len(found), 1))["recall"]


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


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: the chance a random positive scores above a random negative (ties
    count half); NaN without both kinds."""
    from scipy.stats import rankdata

    positive = positive.astype(bool)
    found, missing = int(positive.sum()), int((~positive).sum())
    if not found or not missing:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - found * (found + 1) / 2) / (found * missing))


def paired_gain_interval(
    learned: np.ndarray, baseline: np.ndarray, confidence: float, samples: int, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): the mean paired gain of `learned` over `baseline` (one value per list or
    shopper), with its percentile bootstrap interval at `confidence`."""
    gains = learned - baseline
    rng = np.random.default_rng(seed)
    means = gains[rng.integers(0, len(gains), (samples, len(gains)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(gains.mean()), float(low), float(high)
