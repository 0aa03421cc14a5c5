"""Human-readable reasons, each built from a fact the pipeline really used."""

from __future__ import annotations

from shared import sources


def reason(source: str, anchor_title: str) -> str:
    """Why an item is shown: its co-bought anchor, or the source that found it."""
    if anchor_title:
        return f"Often bought together with {anchor_title}"
    if source == sources.POPULAR:
        return "Popular in the shop lately"
    if source == sources.ITEM_KNN:
        return "Often bought together with items you bought"
    if source == sources.GENERATOR:
        return "Bought by shoppers whose purchases look like yours"
    return "Popular in the shop"
