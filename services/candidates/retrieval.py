"""Retrieval sources computed in process, and the quota merge of every source's list."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    realism: float = 0.0


def item_knn_candidates(
    model: CooccurrenceModel | None, history: Sequence[str], exclude: set[str]
) -> list[Retrieved]:
    """Items co-bought with the shopper's recent items (cosine item-kNN), scored by summed similarity.

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
    return [Retrieved(item_id, sources.ITEM_KNN, score, best[item_id][1]) for item_id, score in ranked]


def merge(
    lists: Mapping[str, Sequence[Retrieved]], quotas: Mapping[str, float], count: int
) -> list[Retrieved]:
    """De-duplicated candidates: each source first fills its quota (a share of `count`), in the
    order of `lists`; the slots left over go to the sources' remaining items in the same order.

    An item found by several sources keeps the first source that placed it. A source
    with fewer items than its quota leaves its slots to the others.
    """
    merged: dict[str, Retrieved] = {}
    remaining: dict[str, list[Retrieved]] = {}
    for source, found in lists.items():
        quota = round(quotas.get(source, 0.0) * count)
        taken = 0
        rest = []
        for candidate in found:
            if candidate.item_id in merged:
                continue
            if taken < quota and len(merged) < count:
                merged[candidate.item_id] = candidate
                taken += 1
            else:
                rest.append(candidate)
        remaining[source] = rest
    for rest in remaining.values():
        for candidate in rest:
            if len(merged) >= count:
                return list(merged.values())
            merged.setdefault(candidate.item_id, candidate)
    return list(merged.values())
