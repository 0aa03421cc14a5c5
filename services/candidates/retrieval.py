"""Retrieval sources and their merge (baseline: item co-occurrence, then popular items)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared import sources
from shared.artifacts import CooccurrenceModel

HISTORY_ANCHORS = 50


@dataclass(frozen=True)
class Retrieved:
    item_id: str
    source: str
    score: float
    anchor_item_id: str = ""


def cooccurrence_candidates(
    model: CooccurrenceModel | None, history: Sequence[str], exclude: set[str]
) -> list[Retrieved]:
    """Items co-bought with the shopper's recent items, scored by summed similarity.

    The anchor is the history item that contributed the most, so the gateway
    can say "often bought with <anchor>".
    """
    if model is None:
        return []
    totals: dict[str, float] = {}
    best: dict[str, tuple[float, str]] = {}
    for anchor in history[:HISTORY_ANCHORS]:
        for item_id, similarity in model.similar(anchor):
            if item_id in exclude:
                continue
            totals[item_id] = totals.get(item_id, 0.0) + similarity
            if similarity > best.get(item_id, (0.0, ""))[0]:
                best[item_id] = (similarity, anchor)
    ranked = sorted(totals.items(), key=lambda pair: (-pair[1], pair[0]))
    return [Retrieved(item_id, sources.COOCCURRENCE, score, best[item_id][1]) for item_id, score in ranked]


def merge(sources: Sequence[Sequence[Retrieved]], count: int) -> list[Retrieved]:
    """Concatenates sources in priority order, keeping each item's first occurrence."""
    merged: dict[str, Retrieved] = {}
    for source in sources:
        for candidate in source:
            if len(merged) == count:
                return list(merged.values())
            merged.setdefault(candidate.item_id, candidate)
    return list(merged.values())
