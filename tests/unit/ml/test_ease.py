"""EASE as a source: the same weights as the closed form, kept as neighbour lists; over the head of a
catalog too large for it."""

import numpy as np
import pytest

from ml.baselines import EASE as DenseEase
from ml.ease import binary_matrix, fit_ease, l2_grid, spd_inverse
from ml.retrieval import neighbour_candidates
from shared import sources
from tests.support import purchases_snapshot

BASKETS = {
    "u1": ["mug", "tea", "cake"],
    "u2": ["mug", "tea"],
    "u3": ["mug", "cake", "milk"],
    "u4": ["beer", "crisps"],
    "u5": ["beer", "crisps", "milk"],
    "u6": ["tea", "cake", "milk"],
}


def test_the_neighbour_lists_score_a_history_as_the_closed_form_does() -> None:
    snapshot = purchases_snapshot(BASKETS)
    model = fit_ease(snapshot, l2=0.5)
    users, items = snapshot.interactions()
    item_ids, matrix = binary_matrix(users, items)
    dense = DenseEase(l2=0.5).fit(matrix)
    history = ["mug", "tea"]
    row = np.zeros((1, len(item_ids)), np.float32)
    row[0, [item_ids.tolist().index(i) for i in history]] = 1.0
    expected = (row @ dense.weights).ravel()
    found = neighbour_candidates(model, history, set(history), sources.EASE)
    assert found and all(c.source == sources.EASE for c in found)
    # every weight fits in the lists here, negative ones included: the sums are the closed form's
    for candidate in found:
        assert candidate.score == pytest.approx(
            expected[item_ids.tolist().index(candidate.item_id)], abs=1e-4
        )
    positive = {i for i in item_ids.tolist() if i not in history and expected[item_ids.tolist().index(i)] > 0}
    assert {c.item_id for c in found} == positive and len(positive) < len(item_ids) - len(history)
    best = max(
        (i for i in item_ids.tolist() if i not in history), key=lambda i: expected[item_ids.tolist().index(i)]
    )
    assert found[0].item_id == best == "cake"
    assert model.info["variant"] == "exact" and model.info["l2"] == 0.5


def test_a_catalog_above_the_bound_is_fitted_over_its_most_bought_items() -> None:
    model = fit_ease(purchases_snapshot(BASKETS), l2=1.0, max_items=3)
    # cake, milk, mug and tea tie at 3 buyers: the first three in id order are the head
    assert sorted(model.item_ids.tolist()) == ["cake", "milk", "mug"]
    assert model.info["variant"] == "head of 3 most-bought items"
    assert model.similar("beer") == []  # a tail item gets nothing from this source


def test_the_lists_keep_the_weights_of_largest_magnitude_with_their_sign() -> None:
    snapshot = purchases_snapshot(BASKETS)
    users, items = snapshot.interactions()
    item_ids, matrix = binary_matrix(users, items)
    dense = DenseEase(l2=0.5).fit(matrix).weights
    model = fit_ease(snapshot, l2=0.5, k=4)
    for row, item in enumerate(item_ids.tolist()):
        strongest = sorted(np.abs(dense[row]), reverse=True)[:4]
        kept = dict(model.similar(item))
        assert sorted(np.abs(list(kept.values())), reverse=True) == pytest.approx(strongest, abs=1e-4)
        for other, weight in kept.items():
            assert weight == pytest.approx(dense[row, item_ids.tolist().index(other)], abs=1e-4)
    assert any(weight < 0 for item in item_ids.tolist() for _, weight in model.similar(item))


def test_the_regularization_grid_follows_the_data_scale() -> None:
    _, small = binary_matrix(*purchases_snapshot(BASKETS).interactions())
    doubled = {f"{user}-{n}": items for user, items in BASKETS.items() for n in range(2)}
    _, large = binary_matrix(*purchases_snapshot(doubled).interactions())
    assert [2 * value for value in l2_grid(small)] == pytest.approx(l2_grid(large), rel=0.02)


def test_a_saved_model_loads_with_its_description(tmp_path) -> None:
    model = fit_ease(purchases_snapshot(BASKETS), l2=2.0)
    model.save(tmp_path)
    loaded = type(model).load(tmp_path)
    assert loaded.similar("mug") == model.similar("mug") and loaded.info == model.info


def test_recency_weights_keep_each_pairs_latest_purchase() -> None:
    users = np.array(["u1", "u1", "u1", "u2"])
    items = np.array(["a", "b", "a", "a"])
    days = np.array([0.0, 10.0, 20.0, 10.0]) * 86_400
    item_ids, matrix = binary_matrix(users, items, days, half_life_days=10.0)
    assert item_ids.tolist() == ["a", "b"]
    assert matrix.toarray().tolist() == [[1.0, 0.5], [0.5, 0.0]]
    assert binary_matrix(users, items, days)[1].toarray().tolist() == [[1.0, 1.0], [1.0, 0.0]]


@pytest.mark.parametrize("block", [3, 1024])
def test_the_in_place_inverse_equals_the_general_one(block: int) -> None:
    rng = np.random.default_rng(0)
    buys = (rng.random((400, 40)) < 0.1).astype(np.float32)
    gram = buys.T @ buys + 2.0 * np.eye(40, dtype=np.float32)
    expected = np.linalg.inv(gram.astype(np.float64))
    found = spd_inverse(gram.copy(), block)
    assert np.allclose(found, expected, rtol=1e-4, atol=1e-6)
    assert np.array_equal(found, found.T)


def test_the_in_place_inverse_refuses_a_matrix_that_is_not_positive_definite() -> None:
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        spd_inverse(np.array([[1.0, 2.0], [2.0, 1.0]], np.float32))
