"""Scoring fusions on validation: the fast scorer's top K is the service's fusion's top K."""

import numpy as np

from ml.retrieval import Retrieved, merge
from ml.selection import FusionScorer, search_weights
from shared import sources

SOURCES = (sources.ITEM_KNN, sources.EASE, sources.POPULAR)


def random_lists(seed: int, users: int = 60, items: int = 80) -> dict[str, dict[str, list[Retrieved]]]:
    rng = np.random.default_rng(seed)
    return {
        f"u{u}": {
            source: [
                Retrieved(f"i{i}", source, 1.0)
                for i in rng.choice(items, size=rng.integers(5, 40), replace=False)
            ]
            for source in SOURCES
        }
        for u in range(users)
    }


def test_the_scorer_ranks_as_the_services_merge_does() -> None:
    lists = random_lists(0)
    relevant = {user: {found[sources.EASE][0].item_id, "i3"} for user, found in lists.items()}
    scorer = FusionScorer(lists, relevant, SOURCES, k=10)
    rng = np.random.default_rng(1)
    for _ in range(5):
        weights = dict(zip(SOURCES, rng.choice([0.0, 0.25, 1.0, 2.0], size=3).tolist(), strict=True))
        if not any(weights.values()):
            continue
        scored = scorer.score("w", weights)
        expected = []
        for user in sorted(lists):
            top = [c.item_id for c in merge(lists[user], weights, {}, 200) if c.fusion_score > 0][:10]
            hits = np.array([[item in relevant[user] for item in top] + [False] * (10 - len(top))], float)
            discounts = 1 / np.log2(np.arange(2, 12))
            ideal = discounts[: min(len(relevant[user]), 10)].sum()
            expected.append(float((hits @ discounts)[0]) / ideal)
        assert np.allclose(scored.per_user, expected), weights


def test_the_search_finds_the_source_that_knows_the_answers() -> None:
    lists = random_lists(2)
    relevant = {user: {found[sources.EASE][0].item_id} for user, found in lists.items()}
    scorer = FusionScorer(lists, relevant, SOURCES)
    best, tried = search_weights(scorer, SOURCES, {s: 1.0 for s in SOURCES})
    assert best.ndcg == 1.0 and best.weights[sources.EASE] > 0
    assert {row.name for row in tried} >= {"ease alone", "item-knn alone", "popular alone", "default fusion"}
    assert best.ndcg >= max(row.ndcg for row in tried)
