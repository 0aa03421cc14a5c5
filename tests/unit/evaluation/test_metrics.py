"""Metric functions against cases computed by hand."""

import math

import numpy as np
import pytest

from ml.metrics import (
    coverage,
    intra_list_diversity,
    mean_metrics,
    ndcg_of_hits,
    novelty,
    recall_of_hits,
    top_k,
    user_metrics,
)


def test_one_list_by_hand() -> None:
    # Relevant {b, d, x}; list a b c d e; hits at ranks 2 and 4.
    found = user_metrics(["a", "b", "c", "d", "e"], {"b", "d", "x"}, k=5)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert found["precision"] == pytest.approx(2 / 5)
    assert found["recall"] == pytest.approx(2 / 3)
    assert found["ndcg"] == pytest.approx(dcg / ideal)
    assert found["mrr"] == pytest.approx(1 / 2)
    assert found["hitrate"] == 1.0


def test_ideal_dcg_counts_at_most_k_hits() -> None:
    # Five relevant items, K = 2, both shown items relevant: a perfect list.
    assert user_metrics(["a", "b", "c"], {"a", "b", "c", "d", "e"}, k=2)["ndcg"] == pytest.approx(1.0)
    assert user_metrics(["z", "a"], {"a"}, k=2)["ndcg"] == pytest.approx(1 / math.log2(3))


def test_a_miss_scores_zero_and_users_without_a_ranking_count() -> None:
    assert user_metrics(["a", "b"], {"c"}, k=2) == {
        "precision": 0.0,
        "recall": 0.0,
        "ndcg": 0.0,
        "mrr": 0.0,
        "hitrate": 0.0,
    }
    averaged = mean_metrics({"u1": ["a"]}, {"u1": {"a"}, "u2": {"b"}}, k=1)
    assert averaged["hitrate"] == pytest.approx(0.5)
    assert averaged["precision"] == pytest.approx(0.5)


def test_coverage_novelty_and_diversity_by_hand() -> None:
    rankings = {"u1": ["a", "b"], "u2": ["a", "c"]}
    assert coverage(rankings, 2, catalog_size=10) == pytest.approx(0.3)
    # a bought by 4 of 8 users, b by 2, c by 1: self-information 1, 2 and 3 bits.
    assert novelty(rankings, 2, {"a": 4, "b": 2, "c": 1}, users=8) == pytest.approx((1 + 2 + 1 + 3) / 4)
    vectors = {"a": np.array([1.0, 0.0]), "b": np.array([1.0, 0.0]), "c": np.array([0.0, 1.0])}
    # u1: identical items (distance 0); u2: orthogonal items (distance 1).
    assert intra_list_diversity(rankings, 2, vectors) == pytest.approx(0.5)


def test_the_matrix_forms_agree_with_the_per_list_metrics() -> None:
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(40, 30))
    relevant_sets = [set(rng.choice(30, size=rng.integers(0, 6), replace=False).tolist()) for _ in range(40)]
    labels = np.array([[item in relevant for item in range(30)] for relevant in relevant_sets], dtype=float)
    order = top_k(scores, 10)
    hits = np.take_along_axis(labels, order, axis=1)
    counts = np.array([len(relevant) for relevant in relevant_sets])
    for row, relevant in enumerate(relevant_sets):
        expected = user_metrics(order[row].tolist(), relevant, k=10)
        assert ndcg_of_hits(hits, counts)[row] == pytest.approx(expected["ndcg"])
        assert recall_of_hits(hits, counts)[row] == pytest.approx(expected["recall"])


def test_top_k_never_takes_an_excluded_column_and_capped_recall_reaches_one() -> None:
    scores = np.array([[0.9, 0.8, 0.1, 0.5]])
    assert top_k(scores, 2, exclude=np.array([[True, False, False, False]])).tolist() == [[1, 3]]
    hits = np.array([[1.0, 1.0]])
    assert recall_of_hits(hits, np.array([5]))[0] == pytest.approx(0.4)
    assert recall_of_hits(hits, np.array([5]), capped=True)[0] == pytest.approx(1.0)
    assert recall_of_hits(np.zeros((1, 2)), np.array([0]))[0] == 0.0


def test_top_k_keeps_column_order_among_items_tied_at_the_cut() -> None:
    scores = np.array([[0.5, 0.1, 0.3, 0.3, 0.3, 0.3, 0.9, 0.3]])
    for k in range(1, 8):
        expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        assert top_k(scores, k).tolist() == expected.tolist(), k
