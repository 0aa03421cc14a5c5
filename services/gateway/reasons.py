"""Human-readable reasons, each built from a fact the pipeline really used."""

from __future__ import annotations

from shared import sources


def reason(source: str, anchor_title: str, source_score: float) -> str:
    """Why an item is shown: its co-bought anchor, how many shoppers bought it, or its source."""
    if anchor_title:
        return f"Often bought together with {anchor_title}"
    if source == sources.POPULAR and source_score >= 1:
        buyers = int(source_score)
        return f"Popular: bought by {buyers:,} shopper{'s' if buyers != 1 else ''}"
    if source == sources.ITEM_KNN:
        return "Often bought together with items you bought"
    if source == sources.GENERATOR:
        return "Bought by shoppers whose purchases look like yours"
    return "Popular in the shop"
