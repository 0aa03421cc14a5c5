"""The simulator's regimes differ in the way they are designed to: popularity skew, personal
taste, and bunched sessions (the simulated protocols of `recsys eval` rest on it)."""

from collections import Counter, defaultdict

import numpy as np

from tools.synth.sessions import DAY, PURCHASE, shopper_events
from tools.synth.shop import REGIMES, make_shop
from tools.synth.shoppers import shopper
from tools.synth.writer import START

SEED = 4
SHOPPERS = 150
ITEMS = 400


def purchases(regime: str) -> list[tuple[str, str, float]]:
    shop = make_shop(ITEMS, SEED, REGIMES[regime])
    return [
        (event.user_id, event.item_id, event.timestamp)
        for number in range(SHOPPERS)
        for event in shopper_events(SEED, shopper(SEED, number), shop, START, 60)
        if event.type == PURCHASE
    ]


def top_share(bought: list[tuple[str, str, float]], top: int = 20) -> float:
    counts = sorted(Counter(item for _, item, _ in bought).values(), reverse=True)
    return sum(counts[:top]) / sum(counts)


def test_the_default_regime_is_the_usual_shop() -> None:
    usual = make_shop(ITEMS, SEED)
    assert np.array_equal(usual.popularity, make_shop(ITEMS, SEED, REGIMES["default"]).popularity)
    person = shopper(SEED, 0)
    assert list(shopper_events(SEED, person, usual, START, 60)) == list(
        shopper_events(SEED, person, make_shop(ITEMS, SEED, REGIMES["default"]), START, 60)
    )


def test_bestsellers_dominate_the_popular_regime_and_not_the_taste_regime() -> None:
    popular, default, taste = (top_share(purchases(r)) for r in ("popular", "default", "taste"))
    assert popular > 2 * default
    assert taste < default


def test_bunched_shoppers_buy_within_hours_and_the_others_over_weeks() -> None:
    def spans(regime: str) -> list[float]:
        moments: dict[str, list[float]] = defaultdict(list)
        for user, _, moment in purchases(regime):
            moments[user].append(moment)
        return [max(m) - min(m) for m in moments.values() if len(m) > 1]

    assert max(spans("bunched")) < REGIMES["bunched"].burst_days * DAY + DAY  # sessions last hours
    assert np.median(spans("default")) > 7 * DAY
