"""Seeded shoppers and their ground truth.

Shopper n is generated from (seed, n) alone, so any shopper can be rebuilt on
demand and a million of them never sit in memory. The same model that writes
their history answers, for any shown slate, which items they click and buy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tools.synth.shop import TASTE_DIM, Shop

BROWSE_POOL = 300
# Each earlier impression of the same item multiplies the chance of clicking it again
# (impression fatigue: shoppers stop noticing what they are shown over and over).
FATIGUE = 0.8
TIME_ZONES = (-8, -5, 0, 1, 8, 9)


@dataclass(frozen=True)
class Shopper:
    number: int
    user_id: str
    taste: np.ndarray
    price_sensitivity: float
    utc_offset_hours: int
    active_hour: int
    activity: float


def shopper(seed: int, number: int) -> Shopper:
    rng = np.random.default_rng([seed, 2, number])
    return Shopper(
        number=number,
        user_id=f"U{number:07d}",
        taste=rng.normal(size=TASTE_DIM),
        price_sensitivity=float(rng.uniform(0.1, 1.0)),
        utc_offset_hours=int(TIME_ZONES[rng.integers(len(TIME_ZONES))]),
        active_hour=int(rng.choice([8, 12, 19, 21])),
        activity=float(rng.gamma(2.0, 1.0)),
    )


def affinity(person: Shopper, shop: Shop, items: np.ndarray) -> np.ndarray:
    """How much the shopper likes each item: taste match, minus price pain, plus popularity, in the
    shop regime's proportions."""
    match = shop.vectors[items] @ person.taste / np.sqrt(TASTE_DIM)
    price = person.price_sensitivity * np.log1p(shop.prices[items])
    regime = shop.regime
    return regime.taste_weight * match - price + regime.popularity_weight * np.log(shop.popularity[items])


def click_probability(person: Shopper, shop: Shop, items: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(affinity(person, shop, items) * 1.5 - 2.5)))


def purchase_probability(person: Shopper, shop: Shop, items: np.ndarray) -> np.ndarray:
    """Probability of buying once clicked; content and promotions are never bought."""
    chance = 1.0 / (1.0 + np.exp(-(affinity(person, shop, items) * 1.2 - 1.5)))
    return np.where(shop.prices[items] > 0, chance, 0.0)


def respond(
    seed: int,
    person: Shopper,
    shop: Shop,
    slate: list[int],
    round_number: int,
    shown_before: list[int] | None = None,
) -> list[tuple[int, bool, bool]]:
    """Ground truth for a shown slate: (item, clicked, bought) per item, with a position bias and,
    given how often the shopper was shown each item before, impression fatigue."""
    rng = np.random.default_rng([seed, 3, person.number, round_number])
    items = np.array(slate, dtype=np.int64)
    position = 1.0 / np.log2(np.arange(len(items)) + 2)
    fatigue = FATIGUE ** np.array(shown_before if shown_before is not None else [0] * len(items))
    clicked = rng.random(len(items)) < click_probability(person, shop, items) * position * fatigue
    bought = clicked & (rng.random(len(items)) < purchase_probability(person, shop, items))
    return list(zip(items.tolist(), clicked.tolist(), bought.tolist(), strict=True))
