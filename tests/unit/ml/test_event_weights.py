"""The portrait's event weights: learned from which categories shoppers bought next, judged on
held-out shoppers beside the defaults, and kept as defaults where the shop cannot teach them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.event_weights import (
    DEFAULT_WEIGHTS,
    TYPES,
    CategoryPairs,
    EventWeights,
    TooFewEvents,
    fit_event_weights,
    learn_weights,
    ndcg_per_shopper,
)
from recsys.common.v1 import common_pb2
from tests.support import purchases_snapshot
from tools.evaluation.event_weights import simulated_snapshot

LIKE, VIEW, PURCHASE = common_pb2.EVENT_TYPE_LIKE, common_pb2.EVENT_TYPE_VIEW, common_pb2.EVENT_TYPE_PURCHASE


def _counts(**per_type: float) -> list[float]:
    names = {
        common_pb2.EventType.Value(f"EVENT_TYPE_{name.upper()}"): value for name, value in per_type.items()
    }
    return [names.get(kind, 0.0) for kind in TYPES]


def test_ndcg_orders_each_shoppers_categories_and_ties_count_against() -> None:
    pairs = CategoryPairs(
        counts=np.array([_counts(purchase=2), _counts(purchase=1), _counts(view=3), _counts(view=1)]),
        bought_later=np.array([False, True, True, False]),
        shopper=np.array([0, 0, 1, 1]),
    )
    found = ndcg_per_shopper(pairs, DEFAULT_WEIGHTS)
    assert found[0] == pytest.approx(1 / np.log2(3))  # the bought category second of two
    assert found[1] == pytest.approx(1.0)
    tied = {kind: 0.0 for kind in TYPES}
    assert ndcg_per_shopper(pairs, tied).tolist() == pytest.approx(
        [1 / np.log2(3)] * 2
    )  # guessing earns nothing


def test_where_likes_tell_what_is_bought_next_they_are_weighed_up() -> None:
    rng = np.random.default_rng(0)
    rows, labels, shoppers = [], [], []
    for shopper in range(400):
        liked = rng.integers(4)
        for category in range(4):
            rows.append(
                _counts(
                    purchase=float(rng.integers(3)),
                    view=float(rng.integers(5)),
                    like=float(category == liked) * 2,
                )
            )
            labels.append(category == liked)
            shoppers.append(shopper)
    pairs = CategoryPairs(np.array(rows), np.array(labels), np.array(shoppers))
    weights, learned = learn_weights(pairs)
    assert (
        LIKE in learned
        and weights[LIKE] > DEFAULT_WEIGHTS[LIKE]
        and weights[PURCHASE] == DEFAULT_WEIGHTS[PURCHASE]
    )
    assert ndcg_per_shopper(pairs, weights).mean() > ndcg_per_shopper(pairs, DEFAULT_WEIGHTS).mean()
    assert all(weights[kind] == DEFAULT_WEIGHTS[kind] for kind in TYPES if kind not in learned)


def test_on_a_simulated_shop_the_learned_weights_do_no_worse_than_the_defaults_on_held_out_shoppers(
    tmp_path: Path,
) -> None:
    found = fit_event_weights(simulated_snapshot(0, 2000, tmp_path / "s"))
    figures = found.figures
    assert figures["held_out_shoppers"] >= 50
    assert figures["learned_ndcg"] >= figures["default_ndcg"] - 0.005
    assert figures["published"] == float(figures["gain_low"] > 0)
    assert (
        found.weights[LIKE] > 0 and found.weights[common_pb2.EVENT_TYPE_SHARE] >= 0
    )  # signals keep their sign
    found.save(tmp_path / "w")
    assert EventWeights.load(tmp_path / "w") == found


def test_a_shop_without_later_purchases_to_learn_from_keeps_the_defaults() -> None:
    with pytest.raises(TooFewEvents):
        fit_event_weights(purchases_snapshot({"u1": ["a", "b"], "u2": ["a"]}))
