"""Human-readable reasons, each built from a fact the pipeline really used.

The ranker names the features that raised an item most; the first one that has a
sentence (and whose fact is at hand, such as the co-bought item's title) becomes
the reason. Otherwise the retrieval source that found the item speaks.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared import sources

CO_BOUGHT = ("cooccurrence_max", "cooccurrence_sum", "cooccurrence_anchors", "knn_rank")
SIMILAR_SHOPPERS = ("gan_score", "gan_rank")
POPULAR = ("recent_popularity", "buyers", "popular_rank", "item_bias")
FEATURE_REASONS = {
    **dict.fromkeys(SIMILAR_SHOPPERS, "Bought by shoppers whose purchases look like yours"),
    **dict.fromkeys(POPULAR, "Popular in the shop lately"),
    "latent_factors": "Close to the items you usually buy",
    "price_vs_usual": "In your usual price range",
}


def _source_reason(source: str) -> str:
    if source == sources.POPULAR:
        return "Popular in the shop lately"
    if source == sources.ITEM_KNN:
        return "Often bought together with items you bought"
    if source == sources.GENERATOR:
        return "Bought by shoppers whose purchases look like yours"
    return "Popular in the shop"


def reason(
    source: str,
    anchor_title: str,
    top_features: Sequence[str] = (),
    category: str = "",
    related_title: str = "",
    graph_path: Sequence[tuple[str, str]] = (),
) -> str:
    """Why an item is shown: its strongest ranking feature with a fact behind it, else its source.
    `anchor_title` names the shopper's item it is co-bought with; `related_title` the shopper's
    recent item it was found from by the item-text source (then `graph_path` is empty) or the
    knowledge graph (then `graph_path` holds the (relation, value) facts linking them)."""
    for feature in top_features:
        if feature in CO_BOUGHT and anchor_title:
            return f"Often bought together with {anchor_title}"
        if feature == "category_affinity" and category:
            return f"From {category}, a category you often buy"
        if feature in FEATURE_REASONS:
            return FEATURE_REASONS[feature]
    if anchor_title:
        return f"Often bought together with {anchor_title}"
    if related_title and graph_path:
        return _graph_reason(related_title, *graph_path[0])
    if related_title:
        return f"Described much like {related_title}, from your recent items"
    return _source_reason(source)


def _graph_reason(title: str, relation: str, value: str) -> str:
    if relation == "brand":
        return f"Same brand ({value}) as {title}, from your recent items"
    if relation == "category":
        return f"Also in {value.split('>')[-1]}, like {title} from your recent items"
    return f"Also {value.replace('=', ': ')}, like {title} from your recent items"
