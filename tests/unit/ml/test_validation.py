"""The validation carve: a time cut when shoppers come back, a per-user holdout when they do not."""

import numpy as np
import pytest

from ml.snapshot import PURCHASE, Snapshot
from ml.validation import LAST, RANDOM, TIME, carve
from tests.support import purchases_snapshot


def returning_shop(users: int = 80, rounds: int = 5, items: int = 30) -> Snapshot:
    """Every shopper buys one item per round; rounds follow each other in time."""
    rng = np.random.default_rng(0)
    user_ids = [f"u{u}" for _ in range(rounds) for u in range(users)]
    item_ids = [f"i{rng.integers(items)}" for _ in user_ids]
    catalog = sorted(set(item_ids))
    return Snapshot(
        folder=None,
        user_ids=np.array(user_ids),
        item_ids=np.array(item_ids),
        types=np.full(len(user_ids), PURCHASE, dtype=np.int8),
        timestamps=np.arange(len(user_ids), dtype=np.float64),
        quantities=np.ones(len(user_ids), dtype=np.int32),
        catalog_item_ids=np.array(catalog),
        catalog_titles=np.array(catalog),
        catalog_categories=np.array([""] * len(catalog)),
        catalog_prices=np.ones(len(catalog)),
        catalog_price_scaled=np.zeros(len(catalog)),
    )


def test_shoppers_who_come_back_are_validated_on_what_they_buy_after_a_time_cut() -> None:
    snapshot = returning_shop()
    carved = carve(snapshot)
    assert carved.protocol == TIME and "come back" in carved.reason
    cutoff = carved.fit.timestamps.max()
    assert carved.fit.event_count == int(0.8 * snapshot.event_count)
    for user, held in carved.held.items():
        later = snapshot.item_ids[(snapshot.user_ids == user) & (snapshot.timestamps > cutoff)]
        assert held.items <= set(later.tolist()) and not held.items & set(held.history)


def test_shoppers_seen_in_one_session_each_get_a_random_holdout_of_their_own_items() -> None:
    rng = np.random.default_rng(1)
    baskets = {f"u{u}": [f"i{i}" for i in rng.choice(40, size=6, replace=False)] for u in range(100)}
    snapshot = purchases_snapshot(baskets)  # each shopper's purchases come one after another
    carved = carve(snapshot)
    assert carved.protocol == RANDOM and "bought before" in carved.reason
    assert len(carved.held) == 100
    fit_pairs = set(zip(carved.fit.user_ids.tolist(), carved.fit.item_ids.tolist(), strict=True))
    for user, held in carved.held.items():
        assert len(held.items) == round(0.2 * 6)
        assert held.items <= set(baskets[user]) and not held.items & set(held.history)
        assert not {(user, item) for item in held.items} & fit_pairs  # every event of a held pair is out
    assert carve(snapshot, RANDOM).held.keys() == carved.held.keys()  # seeded: the same carve again


def test_the_mode_can_be_forced_and_must_be_known() -> None:
    assert carve(purchases_snapshot({"u1": ["a", "b", "c"], "u2": ["a", "c"]}), TIME).protocol == TIME
    assert carve(returning_shop(), RANDOM).protocol == RANDOM
    with pytest.raises(ValueError, match="auto, time, random, last"):
        carve(returning_shop(), "sometimes")


def test_the_last_mode_holds_out_each_shoppers_latest_new_item() -> None:
    snapshot = purchases_snapshot({"u1": ["a", "b", "a", "c"], "u2": ["b", "b"], "u3": ["c", "a"]})
    carved = carve(snapshot, LAST)
    assert carved.protocol == LAST
    assert {user: held.items for user, held in carved.held.items()} == {"u1": {"c"}, "u3": {"a"}}
    assert carved.held["u1"].history == ["a", "b"] and carved.fit.event_count == 6
