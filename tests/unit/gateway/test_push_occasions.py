"""Which occasion an item offers a push, from the facts at hand."""

from datetime import UTC, datetime, timedelta

from recsys.common.v1 import common_pb2
from recsys.profile.v1 import profile_pb2
from services.gateway.push.occasions import PushFacts, occasions
from services.gateway.reasons import Evidence
from shared import sources

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _item(item_id="mug", price=3.0, **fields) -> common_pb2.Item:
    return common_pb2.Item(item_id=item_id, title=f"{item_id.title()} Title", price=price, **fields)


def _stamp(item: common_pb2.Item, field: str, days_ago: float) -> None:
    getattr(item, field).FromDatetime(NOW - timedelta(days=days_ago))


def _names(item, purchased=(), recent=(), **evidence) -> list[str]:
    facts = PushFacts(
        evidence=Evidence(source=sources.POPULAR, item=item, **evidence),
        purchased=frozenset(purchased),
        recent=frozenset(recent),
        now=NOW,
        fresh=timedelta(days=14),
        money=lambda amount: f"£{amount:.2f}",
    )
    return [(o.name, o.facts) for o in occasions(facts)]


def test_a_fresh_price_drop_is_news_and_a_stale_one_is_not() -> None:
    fresh = _item(previous_price=4.0)
    _stamp(fresh, "price_changed_time", 2)
    assert _names(fresh)[0] == ("price_drop", (("price_drop", "4.00"),))
    stale = _item(previous_price=4.0)
    _stamp(stale, "price_changed_time", 30)
    raised = _item(previous_price=2.0)
    _stamp(raised, "price_changed_time", 2)
    assert _names(stale) == [] and _names(raised) == []  # no other fact either: no occasion at all


def test_back_in_stock_only_for_an_item_the_shopper_looked_at() -> None:
    item = _item()
    _stamp(item, "restocked_time", 1)
    assert _names(item, recent=["mug"])[0][0] == "back_in_stock"
    assert _names(item, recent=["other"]) == []


def test_completes_a_purchase_only_when_the_anchor_was_bought() -> None:
    anchor = _item("teapot")
    assert _names(_item(), purchased=["teapot"], anchor=anchor)[0] == (
        "completes_purchase",
        (("bought_with", "teapot"),),
    )
    # an anchor the shopper only viewed is a top pick's "often bought together", not a completed purchase
    assert [name for name, _ in _names(_item(), anchor=anchor)] == ["top_pick"]


def test_a_new_arrival_needs_a_favourite_category() -> None:
    item = _item(category_path=["Home", "Kitchen"])
    _stamp(item, "listed_time", 3)
    portrait = profile_pb2.Portrait(categories=[profile_pb2.Affinity(name="Home>Kitchen", score=0.5)])
    assert _names(item, portrait=portrait)[0][0] == "new_arrival"
    assert _names(item) == []


def test_a_promotion_linked_in_the_graph_is_a_cross_domain_push() -> None:
    coupon = _item("coupon", price=0.0, domain=common_pb2.DOMAIN_PROMOTION, kind="coupon")
    related = _item("lamp")
    found = _names(coupon, recent=["lamp"], related=related, graph_path=[("brand", "Acme")])
    assert found[0] == ("cross_domain", (("recent_item", "lamp"), ("brand", "Acme")))
    assert [name for name, _ in found] == ["cross_domain", "top_pick"]
