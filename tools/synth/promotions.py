"""Ground truth for promotions: how a coupon or an activity invitation moves a simulated shopper.

Whether a shopper buys in an offer's category during its window follows the same utility as the
rest of the simulator: taste match with the category, minus the price pain of the category's
typical price (scaled by the shopper's price sensitivity), plus how active they are. A coupon
lowers the price the shopper feels; an activity raises interest in proportion to taste. So some
shoppers buy anyway (strong taste, low sensitivity), some only with the coupon (price-sensitive,
middling taste) and some never: uplift is real and differs from the chance of buying.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from ml.promotions.offers import COUPON, Offer
from tools.synth.shop import TASTE_DIM, Shop
from tools.synth.shoppers import Shopper

BASE_UTILITY = -1.2
# How strongly the felt price cut moves a shopper: the change in price pain, in utility units.
COUPON_FEEL = 8
# How much an activity invitation adds per unit of (positive) taste match with its category.
ACTIVITY_PULL = 0.8
MARGIN_RATE = 0.5  # the shop's margin on a sale, as a share of its price


@dataclass(frozen=True)
class Category:
    """A category as offers see it: its products' taste centre and median price (the basket)."""

    centre: np.ndarray
    price: float


def categories(shop: Shop) -> dict[tuple[str, str], Category]:
    found: dict[tuple[str, str], Category] = {}
    for path in sorted(set(shop.category_paths)):
        members = [n for n in range(len(shop)) if shop.category_paths[n] == path]
        priced = [shop.prices[n] for n in members if shop.prices[n] > 0]
        found[path] = Category(
            centre=shop.vectors[members].mean(axis=0) if members else np.zeros(TASTE_DIM),
            price=float(np.median(priced)) if priced else 10.0,
        )
    return found


def _sigmoid(value: float) -> float:
    return float(1.0 / (1.0 + np.exp(-value)))


def buy_chances(person: Shopper, shop: Shop, offer: Offer, category: Category) -> tuple[float, float]:
    """(without the offer, with it): the chance the shopper buys in the category in the window."""
    match = float(category.centre @ person.taste / np.sqrt(TASTE_DIM))
    price = category.price
    utility = (
        BASE_UTILITY
        + shop.regime.taste_weight * match
        - person.price_sensitivity * np.log1p(price)
        + 0.3 * np.log(person.activity + 0.1)
    )
    if offer.kind == COUPON:
        paid = price - offer.discount(price)
        lift = COUPON_FEEL * person.price_sensitivity * (np.log1p(price) - np.log1p(paid))
    else:
        lift = ACTIVITY_PULL * max(match, 0.0)
    return _sigmoid(utility), _sigmoid(utility + lift)


def outcome(seed: int, person: Shopper, offer: Offer, chances: tuple[float, float], sent: bool) -> bool:
    """Whether the shopper bought in the window, drawn from the chance that applies."""
    rng = np.random.default_rng([seed, 9, person.number, zlib.crc32(offer.offer_id.encode())])
    return bool(rng.random() < chances[1 if sent else 0])
