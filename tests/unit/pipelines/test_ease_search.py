"""EASE's settings are searched on a narrower head than it serves, then fitted once on the whole head."""

import re

import numpy as np

from ml.candidates_offline import SourcesConfig
from ml.ease import L2_PER_BUYER, binary_matrix, ease_weights
from ml.validation import carve
from pipelines import validation
from tests.unit.ml.test_validation import returning_shop


def test_the_settings_are_searched_on_the_search_head_and_the_chosen_ones_fitted_on_the_whole_head(
    monkeypatch,
) -> None:
    monkeypatch.setattr(validation, "SEARCH_MAX_ITEMS", 12)
    carved = carve(returning_shop(users=120, items=40))
    held = {user: carved.held[user] for user in sorted(carved.held)}
    relevant = {user: shopper.items for user, shopper in held.items()}
    histories = {user: shopper.history for user, shopper in held.items()}
    said: list[str] = []

    chosen, found = validation._choose_ease(
        carved.fit, histories, relevant, SourcesConfig(ease_max_items=30), said.append
    )

    searched = [key for key in found if key.endswith(" 12 items")]
    assert len(searched) == len(found) - 1 >= 3  # every setting tried on the search head, one more
    assert chosen.info["items"] == 30 and chosen.info["variant"] == "head of 30 most-bought items"
    best = max(searched, key=found.__getitem__)
    setting = (
        f"λ={chosen.info['l2']:g}, per buyer {chosen.info['l2_per_buyer']:g}, "
        f"half-life {chosen.info['half_life_days']:g} d"
    )
    assert best.startswith(f"{setting},") and f"{setting}, 30 items" in found


def test_a_catalog_within_the_search_head_is_fitted_once_per_setting(monkeypatch) -> None:
    monkeypatch.setattr(validation, "SEARCH_MAX_ITEMS", 100)
    carved = carve(returning_shop(users=120, items=40))
    relevant = {user: shopper.items for user, shopper in carved.held.items()}
    histories = {user: shopper.history for user, shopper in carved.held.items()}

    chosen, found = validation._choose_ease(carved.fit, histories, relevant, SourcesConfig(), lambda _: None)

    assert chosen.info["variant"] == "exact" and all(
        key.endswith(f" {chosen.info['items']} items") for key in found
    )


def test_a_per_buyer_regularization_is_tried_at_the_best_lambda_and_a_winner_at_smaller_ones(
    monkeypatch,
) -> None:
    monkeypatch.setattr(validation, "SEARCH_MAX_ITEMS", 100)
    carved = carve(returning_shop(users=120, items=40))
    relevant = {user: shopper.items for user, shopper in carved.held.items()}
    histories = {user: shopper.history for user, shopper in carved.held.items()}

    chosen, found = validation._choose_ease(carved.fit, histories, relevant, SourcesConfig(), lambda _: None)

    pattern = re.compile(r"λ=([\d.]+), per buyer ([\d.]+), half-life ([\d.]+) d, \d+ items")
    tried = {tuple(float(x) for x in pattern.fullmatch(key).groups()): ndcg for key, ndcg in found.items()}
    plain = {l2: ndcg for (l2, per_buyer, half), ndcg in tried.items() if per_buyer == 0 and half == 0}
    best_plain = max(plain, key=plain.__getitem__)
    assert len(plain) >= 3
    assert {per_buyer for l2, per_buyer, _ in tried if l2 == best_plain and per_buyer > 0} == set(
        L2_PER_BUYER
    )
    best = max(tried, key=tried.__getitem__)
    assert best == (chosen.info["l2"], chosen.info["l2_per_buyer"], chosen.info["half_life_days"])
    if chosen.info["l2_per_buyer"] > 0:  # a winning share was also tried with a quarter of its λ
        assert (round(best_plain / 4, 1), chosen.info["l2_per_buyer"], 0.0) in tried


def test_the_per_buyer_regularization_is_edlaes_closed_form() -> None:
    users = np.array(["u1", "u1", "u2", "u2", "u2", "u3", "u3", "u4"])
    items = np.array(["a", "b", "a", "b", "c", "a", "c", "c"])
    matrix = binary_matrix(users, items)[1]
    gram = (matrix.T @ matrix).toarray().astype(np.float64)
    regularized = gram + np.diag(0.5 + 2.0 * np.diag(gram))
    inverse = np.linalg.inv(regularized)
    expected = inverse / -np.diag(inverse)
    np.fill_diagonal(expected, 0.0)
    assert np.allclose(ease_weights(matrix, 0.5, 2.0), expected, atol=1e-5)
    assert not np.allclose(ease_weights(matrix, 0.5, 0.0), expected, atol=1e-3)
