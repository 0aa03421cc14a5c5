"""Popularity's half-life is chosen on the shop's own latest purchases, not fixed."""

import dataclasses

import numpy as np

from ml.popularity import choose_half_life
from tests.support import purchases_snapshot

DAY = 86_400.0


def _shop(trend_days: float, seed: int = 0):
    """200 shoppers over 100 days: 'classic' items sell steadily all along; for the last
    `trend_days` days a different set of items sells instead (0: no trend)."""
    rng = np.random.default_rng(seed)
    classic, trending = [f"classic{i}" for i in range(10)], [f"trend{i}" for i in range(10)]
    baskets, times = {}, []
    for user in range(200):
        day = rng.uniform(0, 100)
        pool = trending if trend_days and day > 100 - trend_days else classic
        baskets[f"u{user}"] = rng.choice(pool, size=3, replace=False).tolist()
        times.extend([day * DAY] * 3)
    return dataclasses.replace(purchases_snapshot(baskets), timestamps=np.array(times))


def test_a_recent_trend_chooses_a_short_half_life() -> None:
    chosen, scores = choose_half_life(_shop(trend_days=30))
    assert chosen in (1.0, 3.0, 7.0, 14.0)
    assert scores[chosen] > scores[0.0]  # better than all-time popularity on the latest purchases


def test_steady_sales_gain_next_to_nothing_from_recency() -> None:
    chosen, scores = choose_half_life(_shop(trend_days=0))
    trend_chosen, trend_scores = choose_half_life(_shop(trend_days=30))
    steady_gain = scores[chosen] - scores[0.0]
    assert steady_gain < 0.03  # noise: every half-life ranks the same ten items
    assert trend_scores[trend_chosen] - trend_scores[0.0] > 5 * max(steady_gain, 0.01)


def test_too_little_data_keeps_all_time_popularity() -> None:
    assert choose_half_life(purchases_snapshot({"a": ["x"]})) == (0.0, {})
