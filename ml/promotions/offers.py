"""Offers as the catalog holds them: items of the promotion domain with their terms as attributes.

A coupon ("kind": "coupon") takes `percent_off` (a share, 0.1 is 10 %) off a purchase in its
category, at most `max_discount`; an activity ("kind": "activity") is an invitation costing `cost`
per recipient, at most `capacity` recipients. The terms belong to the offer: everyone who receives
it gets the same ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from recsys.common.v1 import common_pb2

COUPON = "coupon"
ACTIVITY = "activity"
KINDS = (COUPON, ACTIVITY)


class OfferError(ValueError):
    """An offer whose terms cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Offer:
    offer_id: str
    kind: str
    category: str  # the category path joined with ">", as portraits name categories
    title: str
    percent_off: float = 0.0
    max_discount: float = 0.0
    cost: float = 0.0
    capacity: int = 0  # activities: most recipients; 0 means no limit

    @property
    def committed_cost(self) -> float:
        """What sending the offer to one shopper can cost at most: the budget counts this, so a plan
        stays within its budget even if every coupon is redeemed."""
        return self.max_discount if self.kind == COUPON else self.cost

    def discount(self, price: float) -> float:
        """What one redemption on a basket of `price` takes off."""
        return min(self.percent_off * price, self.max_discount) if self.kind == COUPON else 0.0


def _number(item: common_pb2.Item, name: str) -> float:
    text = item.attributes.get(name, "")
    try:
        value = float(text)
    except ValueError:
        raise OfferError(f"offer {item.item_id}: attribute {name}={text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise OfferError(f"offer {item.item_id}: attribute {name}={text!r} must be a finite number >= 0")
    return value


def offer_from_item(item: common_pb2.Item) -> Offer:
    """The offer an item of the promotion domain describes; OfferError when it is not one."""
    if item.domain != common_pb2.DOMAIN_PROMOTION or item.kind not in KINDS:
        raise OfferError(f"item {item.item_id} is not a coupon or an activity of the promotion domain")
    if not item.category_path:
        raise OfferError(f"offer {item.item_id} names no category (category_path)")
    category = ">".join(item.category_path)
    if item.kind == COUPON:
        percent_off, max_discount = _number(item, "percent_off"), _number(item, "max_discount")
        if not 0 < percent_off < 1 or max_discount <= 0:
            raise OfferError(
                f"offer {item.item_id}: a coupon needs 0 < percent_off < 1 and max_discount > 0 "
                f"(got {percent_off}, {max_discount})"
            )
        return Offer(
            item.item_id, COUPON, category, item.title, percent_off=percent_off, max_discount=max_discount
        )
    cost = _number(item, "cost")
    if cost <= 0:
        raise OfferError(f"offer {item.item_id}: an activity needs cost > 0 per invitation")
    capacity = int(_number(item, "capacity")) if "capacity" in item.attributes else 0
    return Offer(item.item_id, ACTIVITY, category, item.title, cost=cost, capacity=capacity)
