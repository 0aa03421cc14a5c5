"""Why a shopper receives an offer, from facts the profile and the catalog hold, with its terms."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from ml.promotions.features import ShopperFacts
from ml.promotions.offers import COUPON, Offer


def terms(offer: Offer, window_end: datetime, money: Callable[[float], str]) -> str:
    """The offer's own terms, the same for everyone who receives it."""
    leaf = offer.category.split(">")[-1]
    until = f"{window_end.day} {window_end:%b}"
    if offer.kind == COUPON:
        return f"{offer.percent_off * 100:g}% off {leaf}, up to {money(offer.max_discount)}, until {until}"
    return f"{offer.title}, until {until}"


def reason(shopper: ShopperFacts, offer: Offer, window_end: datetime, money: Callable[[float], str]) -> str:
    """ "You often shop Kitchen: 20% off Kitchen, up to £5.00, until 14 Dec" when the portrait says so;
    the terms alone when it holds nothing about the category."""
    leaf = offer.category.split(">")[-1]
    top = offer.category.split(">")[0]
    ranked = sorted(
        (name for name, score in shopper.categories.items() if score > 0),
        key=lambda n: -shopper.categories[n],
    )
    if offer.category in ranked[:3]:
        fact = f"You often shop {leaf}"
    elif offer.category in ranked:
        fact = f"You have shopped {leaf}"
    elif any(name.split(">")[0] == top for name in ranked):
        fact = f"You like {top}"
    else:
        return terms(offer, window_end, money)
    return f"{fact}: {terms(offer, window_end, money)}"
