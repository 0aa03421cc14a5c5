"""Human-readable reasons, each built from facts the pipeline really holds, and returned with them.

The ranker names the features that raised an item most; the first one whose fact
is at hand (the co-bought item, a category of the shopper's portrait, their usual
prices, the item's buyers) becomes the reason. Otherwise the retrieval source that
found the item speaks, through its own fact: the shopper's item it was found from
and the knowledge-graph facts linking them, or the buyers who made it popular.
Every reason carries its facts as (kind, value) pairs (gateway.v1.ReasonFact), so
that a client, or a test, can check each against the profile, the catalog and the
graph. An item with no fact at hand gets no reason rather than an empty template.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from recsys.common.v1 import common_pb2
from recsys.profile.v1 import profile_pb2
from shared import sources

CO_BOUGHT = ("cooccurrence_max", "cooccurrence_sum", "cooccurrence_anchors", "knn_rank")
SIMILAR_SHOPPERS = ("gan_score", "gan_rank", "vae_score", "vae_score_vs_best", "latent_factors")
POPULAR = ("recent_popularity", "buyers", "popular_rank", "item_bias")


@dataclass(frozen=True)
class Reason:
    text: str
    facts: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Evidence:
    """What the gateway knows about one recommended item and its shopper."""

    source: str
    item: common_pb2.Item | None = None
    top_features: Sequence[str] = ()
    anchor: common_pb2.Item | None = None  # the shopper's item it is often bought with
    related: common_pb2.Item | None = None  # the shopper's item item-text or the graph found it from
    graph_path: Sequence[tuple[str, str]] = ()  # (relation, value) facts linking it to `related`
    context: frozenset[str] = frozenset()  # the items the shopper is looking at now
    buyers: int = 0  # its distinct buyers in the popularity model (0 when not known)
    segment: str = ""  # the segment whose buyers those are ("" for everyone)
    purchases: int = 0  # the shopper's purchases
    portrait: profile_pb2.Portrait = field(default_factory=profile_pb2.Portrait)


def _where(evidence: Evidence, item: common_pb2.Item) -> str:
    return "which you are looking at" if item.item_id in evidence.context else "from your recent items"


def _co_bought(evidence: Evidence) -> Reason | None:
    anchor = evidence.anchor
    if anchor is None:
        return None
    text = f"Often bought together with {anchor.title}"
    if anchor.item_id in evidence.context:
        text += ", which you are looking at"
    return Reason(text, (("bought_with", anchor.item_id),))


def _favourite_category(evidence: Evidence) -> Reason | None:
    item = evidence.item
    if item is None or not item.category_path:
        return None
    path = ">".join(item.category_path)
    if path not in {affinity.name for affinity in evidence.portrait.categories}:
        return None
    return Reason(f"From {item.category_path[-1]}, a category you often buy", (("favourite_category", path),))


def _usual_price(evidence: Evidence) -> Reason | None:
    item, portrait = evidence.item, evidence.portrait
    if (
        item is None
        or portrait.price_high <= 0
        or not portrait.price_low <= item.price <= portrait.price_high
    ):
        return None
    band = f"{portrait.price_low:.2f}-{portrait.price_high:.2f}"
    return Reason(f"In your usual price range ({band})", (("price_band", band),))


def _similar_shoppers(evidence: Evidence) -> Reason | None:
    if evidence.purchases <= 0:
        return None
    n = evidence.purchases
    text = f"Bought by shoppers whose purchases look like your {n} purchase{'s' if n > 1 else ''}"
    return Reason(text, (("purchases", str(n)),))


def _popular(evidence: Evidence) -> Reason | None:
    if evidence.buyers <= 0:
        return None
    n = evidence.buyers
    shoppers = f"{n} shopper{'s' if n > 1 else ''}"
    if evidence.segment:
        text = f"Popular in {evidence.segment}: bought by {shoppers} there"
        return Reason(text, (("segment", evidence.segment), ("buyers", str(n))))
    return Reason(f"Popular lately: bought by {shoppers}", (("buyers", str(n)),))


def _related(evidence: Evidence) -> Reason | None:
    related = evidence.related
    if related is None:
        return None
    kind = "context_item" if related.item_id in evidence.context else "recent_item"
    where = _where(evidence, related)
    if not evidence.graph_path:
        return Reason(f"Described much like {related.title}, {where}", ((kind, related.item_id),))
    relation, value = evidence.graph_path[0]
    if relation == "brand":
        text = f"Same brand ({value}) as {related.title}, {where}"
    elif relation == "category":
        text = f"Also in {value.split('>')[-1]}, like {related.title} {where}"
    else:
        text = f"Also {value.replace('=', ': ')}, like {related.title} {where}"
    return Reason(text, ((kind, related.item_id), (relation, value)))


def _by_feature(feature: str, evidence: Evidence) -> Reason | None:
    if feature in CO_BOUGHT:
        return _co_bought(evidence)
    if feature == "category_affinity":
        return _favourite_category(evidence)
    if feature == "price_vs_usual":
        return _usual_price(evidence)
    if feature in SIMILAR_SHOPPERS:
        return _similar_shoppers(evidence)
    if feature in POPULAR:
        return _popular(evidence)
    return None


def _by_source(evidence: Evidence) -> Reason | None:
    generated = _similar_shoppers(evidence) if evidence.source == sources.GENERATOR else None
    return _co_bought(evidence) or _related(evidence) or generated or _popular(evidence)


def explain(evidence: Evidence) -> Reason | None:
    """Why an item is shown: its strongest ranking feature with a fact behind it, else its source's
    fact; None when no fact is at hand."""
    for feature in evidence.top_features:
        found = _by_feature(feature, evidence)
        if found is not None:
            return found
    return _by_source(evidence)
