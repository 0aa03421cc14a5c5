"""Offers come from the promotion catalog with terms everyone shares; the model sees behaviour only."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ml.promotions.features import FEATURES, ShopperFacts, features
from ml.promotions.offers import COUPON, OfferError, offer_from_item
from recsys.common.v1 import common_pb2

PROTECTED = ("age", "gender", "sex", "ethnic", "race", "religion", "health", "segment", "country", "language")


def _coupon(**attributes: str) -> common_pb2.Item:
    return common_pb2.Item(
        item_id="C1",
        title="20% off Kitchen",
        category_path=["Home", "Kitchen"],
        domain=common_pb2.DOMAIN_PROMOTION,
        kind="coupon",
        attributes=attributes,
    )


def test_a_coupon_item_becomes_an_offer_with_its_terms() -> None:
    offer = offer_from_item(_coupon(percent_off="0.2", max_discount="5"))
    assert (offer.kind, offer.category, offer.percent_off, offer.max_discount) == (
        COUPON,
        "Home>Kitchen",
        0.2,
        5.0,
    )
    assert offer.committed_cost == 5.0
    assert offer.discount(10.0) == pytest.approx(2.0) and offer.discount(100.0) == 5.0


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"percent_off": "20%", "max_discount": "5"}, "not a number"),
        ({"percent_off": "1.5", "max_discount": "5"}, "0 < percent_off < 1"),
        ({"percent_off": "0.2", "max_discount": "-1"}, ">= 0"),
        ({"percent_off": "0.2"}, "max_discount"),
    ],
)
def test_bad_terms_are_named(attributes: dict[str, str], message: str) -> None:
    with pytest.raises(OfferError, match=message):
        offer_from_item(_coupon(**attributes))


def test_a_product_is_not_an_offer() -> None:
    with pytest.raises(OfferError, match="not a coupon or an activity"):
        offer_from_item(
            common_pb2.Item(item_id="P1", domain=common_pb2.DOMAIN_PRODUCT, category_path=["Home"])
        )


def test_no_protected_attribute_is_an_input() -> None:
    names = [*FEATURES, *(f.name for f in dataclasses.fields(ShopperFacts))]
    assert not [name for name in names if any(word in name for word in PROTECTED)]


def test_the_features_are_the_listed_ones_and_move_with_behaviour() -> None:
    offer = offer_from_item(_coupon(percent_off="0.2", max_discount="5"))
    keen = ShopperFacts("U1", {"Home>Kitchen": 0.6}, typical_price=4.0, purchase_count=9)
    stranger = ShopperFacts("U2")
    row = features(keen, offer, basket_price=8.0)
    assert row.shape == (len(FEATURES),)
    assert row[FEATURES.index("category_affinity")] == 0.6
    assert not np.array_equal(row, features(stranger, offer, basket_price=8.0))
    renamed = dataclasses.replace(keen, user_id="U9")
    assert np.array_equal(row, features(renamed, offer, basket_price=8.0))
