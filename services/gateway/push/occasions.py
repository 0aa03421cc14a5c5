"""Which occasion a pushed item offers, read from facts the pipeline really holds.

An item can be news (its price dropped, it is back in stock after the shopper
looked at it, it is new in a category they often buy), complete an earlier
purchase, be a promotion or article linked to their recent items in the
knowledge graph, or simply be a top pick with the reason the gateway gives on
Recommend. Each occasion lists the slots its templates need and the facts
(ReasonFact kind, value) behind them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from recsys.common.v1 import common_pb2
from services.gateway.reasons import Evidence, explain

LINKS = ("brand", "category", "attribute")
TOP_PICK = "top_pick"  # the occasion of an item with nothing but Recommend's reason
DOMAIN_KINDS = {common_pb2.DOMAIN_CONTENT: "article", common_pb2.DOMAIN_PROMOTION: "promotion"}


@dataclass(frozen=True)
class Occasion:
    name: str  # the template
    slots: dict[str, str]
    facts: tuple[tuple[str, str], ...]
    reason_key: str  # templates.REASONS entry for the push's reason sentence


@dataclass(frozen=True)
class PushFacts:
    evidence: Evidence  # what the pipeline knows about the item (evidence.item is set)
    purchased: frozenset[str]
    recent: frozenset[str]  # the shopper's recent items (viewed, clicked, carted, bought)
    now: datetime
    fresh: timedelta  # how recent news must be
    money: Callable[[float], str]


def _when(stamp: Timestamp) -> datetime | None:
    return stamp.ToDatetime().replace(tzinfo=None) if stamp.seconds or stamp.nanos else None


def _fresh(stamp: Timestamp, facts: PushFacts) -> str:
    """The date of the stamp when it is recent news, else ""."""
    moment = _when(stamp)
    now = facts.now.replace(tzinfo=None)
    if moment is None or not now - facts.fresh <= moment <= now:
        return ""
    return moment.date().isoformat()


def link_text(relation: str, value: str) -> str:
    """How a knowledge-graph fact reads in a sentence: the brand, the leaf category, "color: red"."""
    if relation == "category":
        return value.split(">")[-1]
    return value.replace("=", ": ") if relation == "attribute" else value


def _reason_slots(facts: tuple[tuple[str, str], ...], evidence: Evidence) -> dict[str, str]:
    """The slots a reason sentence needs, from its facts."""
    slots: dict[str, str] = {}
    for kind, value in facts:
        if kind in ("bought_with", "recent_item", "context_item"):
            anchor = evidence.anchor if kind == "bought_with" else evidence.related
            slots["anchor"] = anchor.title if anchor is not None and anchor.item_id == value else ""
        elif kind in LINKS:
            slots["link"] = link_text(kind, value)
        elif kind == "favourite_category":
            slots["category"] = value.split(">")[-1]
        elif kind == "price_band":
            slots["band"] = value
        else:  # segment, buyers, purchases
            slots[kind] = value
    return slots


def _top_pick(evidence: Evidence, base: dict[str, str]) -> Occasion | None:
    explained = explain(evidence)
    if explained is None:
        return None
    kinds = [kind for kind, _ in explained.facts]
    key = kinds[0] + ("+link" if len(kinds) > 1 and kinds[1] in LINKS else "")
    return Occasion(TOP_PICK, {**base, **_reason_slots(explained.facts, evidence)}, explained.facts, key)


def occasions(facts: PushFacts) -> list[Occasion]:
    """Every occasion the item offers, the most specific first."""
    evidence = facts.evidence
    item = evidence.item
    if item is None:
        return []
    base = {"item": item.title, "price": facts.money(item.price) if item.price > 0 else ""}
    found = []
    if item.previous_price > item.price > 0 and _fresh(item.price_changed_time, facts):
        slots = {**base, "previous_price": facts.money(item.previous_price)}
        found.append(
            Occasion("price_drop", slots, (("price_drop", f"{item.previous_price:.2f}"),), "price_drop")
        )
    restocked = _fresh(item.restocked_time, facts)
    if restocked and item.item_id in facts.recent:
        found.append(
            Occasion(
                "back_in_stock",
                base,
                (("back_in_stock", restocked), ("recent_item", item.item_id)),
                "back_in_stock",
            )
        )
    anchor = evidence.anchor
    if anchor is not None and anchor.item_id in facts.purchased:
        found.append(
            Occasion(
                "completes_purchase",
                {**base, "anchor": anchor.title},
                (("bought_with", anchor.item_id),),
                "bought_with",
            )
        )
    path = ">".join(item.category_path)
    listed = _fresh(item.listed_time, facts)
    if listed and path in {affinity.name for affinity in evidence.portrait.categories}:
        slots = {**base, "category": item.category_path[-1]}
        found.append(
            Occasion(
                "new_arrival", slots, (("new_arrival", listed), ("favourite_category", path)), "new_arrival"
            )
        )
    related = evidence.related
    if item.domain in DOMAIN_KINDS and related is not None and evidence.graph_path:
        relation, value = evidence.graph_path[0]
        kind = "context_item" if related.item_id in evidence.context else "recent_item"
        slots = {
            **base,
            "kind": item.kind or DOMAIN_KINDS[item.domain],
            "anchor": related.title,
            "link": link_text(relation, value),
        }
        found.append(
            Occasion("cross_domain", slots, ((kind, related.item_id), (relation, value)), f"{kind}+link")
        )
    top = _top_pick(evidence, base)
    if top is not None:
        found.append(top)
    return found
