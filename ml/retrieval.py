"""Retrieval sources computed in process, and the fusion of every source's list into one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from ml.artifacts import CooccurrenceModel
from shared import sources
from shared.config import EnvReader
from shared.sources import Placement

T = TypeVar("T")

# The most history items (latest first) the neighbour sources read: the profile service's recent list.
HISTORY_ANCHORS = 200
# Each step back in a shopper's history, an anchor's neighbours weigh this much less (1.0: all the
# same). Training chooses a decay per neighbour source on validation (pipelines/validation.py): the
# latest item predicts the next purchase best on some shops, the whole history on others.
RECENCY_DECAYS = (1.0, 0.98, 0.95, 0.9, 0.8, 0.7, 0.5)
# Anchors whose recency weight falls below this are not read.
MIN_ANCHOR_WEIGHT = 1e-3
# Rank offset of reciprocal-rank fusion: the usual 60 keeps one list's top item from drowning the rest.
FUSION_K = 60
# Weight of each retrieval source in the reciprocal-rank fusion of their lists, until training has
# chosen them on the shop's own validation split (pipelines/validation.py) and the search's start.
DEFAULT_WEIGHTS: dict[str, float] = {
    sources.GENERATOR: 1.0,
    sources.ITEM_KNN: 0.5,
    sources.EASE: 1.0,
    sources.POPULAR: 0.75,
    sources.ITEM_TEXT: 0.25,
    sources.KNOWLEDGE_GRAPH: 0.25,
}
# Share of the candidate list each source is guaranteed, whatever the fusion says.
DEFAULT_QUOTAS: dict[str, float] = {
    sources.GENERATOR: 0.1,
    sources.ITEM_KNN: 0.1,
    sources.EASE: 0.1,
    sources.POPULAR: 0.1,
    sources.ITEM_TEXT: 0.05,
    sources.KNOWLEDGE_GRAPH: 0.05,
}


# The sources the candidates service computes itself, from models it loads.
IN_PROCESS = frozenset({sources.POPULAR, sources.ITEM_KNN, sources.EASE})


@dataclass(frozen=True)
class Fusion:
    """How the sources' lists are fused (`merge`): the candidates service and training use the same."""

    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    quotas: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_QUOTAS))

    def uses(self, source: str) -> bool:
        """Whether `source`'s list can reach the fused list: it has a weight or a quota (a source
        training dropped has neither, and is not asked)."""
        return self.weights.get(source, 0.0) > 0 or self.quotas.get(source, 0.0) > 0

    def serves(self, source: str) -> bool:
        """Whether serving computes `source`'s list: the in-process sources always (popular is all a
        shopper without a history has; item-kNN's and EASE's placements are ranking features even
        when the fused order gives them no weight, and they cost little), the others (a call to
        another service each) when they can reach the fused list."""
        return source in IN_PROCESS or self.uses(source)

    def served(self, lists: Mapping[str, T]) -> dict[str, T]:
        """The lists of the sources serving computes: what the ranker learns from must be what it
        will see (a dropped source's placements would be features that never come)."""
        return {source: found for source, found in lists.items() if self.serves(source)}


def read_fusion(read: EnvReader) -> Fusion:
    """RECSYS_CANDIDATES_WEIGHTS and RECSYS_CANDIDATES_QUOTAS."""
    return Fusion(
        weights=read.shares(
            "RECSYS_CANDIDATES_WEIGHTS", DEFAULT_WEIGHTS, tuple(DEFAULT_WEIGHTS), most=len(DEFAULT_WEIGHTS)
        ),
        quotas=read.shares("RECSYS_CANDIDATES_QUOTAS", DEFAULT_QUOTAS, tuple(DEFAULT_QUOTAS)),
    )


@dataclass(frozen=True, slots=True)  # millions of them in training: no __dict__ each
class Retrieved:
    item_id: str
    source: str
    score: float
    anchor_item_id: str = ""
    graph_path: tuple[tuple[str, str], ...] = ()  # (relation, value) facts linking it to the anchor
    realism: float = 0.0
    fusion_score: float = 0.0
    found_by: tuple[Placement, ...] = ()
    buyers: int = 0  # popular: the item's distinct buyers (in the segment asked for, when known)


@dataclass(frozen=True)
class _Contributions:
    """What each read history item (anchor) adds to its neighbours, before recency weighting."""

    anchors: np.ndarray  # model rows of the anchors, latest first
    steps: np.ndarray  # each contribution's anchor's place in the history (0: the latest item)
    targets: np.ndarray  # the neighbour's model row
    weights: np.ndarray  # the neighbour's weight from its anchor
    anchor_of: np.ndarray  # index into `anchors`


def _contributions(model: CooccurrenceModel, history: Sequence[str], read: int) -> _Contributions | None:
    """The neighbours of the `read` latest history items the model knows (None: it knows none)."""
    known = [(model.index.get(item), step) for step, item in enumerate(history[:read])]
    anchors = np.array([row for row, _ in known if row is not None], np.int64)
    if not len(anchors):
        return None
    steps = np.array([step for row, step in known if row is not None], np.int64)
    neighbours = model.neighbours[anchors]
    present = neighbours >= 0
    anchor_of = np.broadcast_to(np.arange(len(anchors))[:, None], neighbours.shape)[present]
    return _Contributions(
        anchors, steps[anchor_of], neighbours[present], model.scores[anchors][present], anchor_of
    )


def _totals(
    model: CooccurrenceModel, found: _Contributions, decay: float, exclude: set[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Each item's summed weight under `decay` (excluded items 0) and each contribution's weight."""
    if decay == 1.0:  # every anchor read weighs fully: no power of each contribution's step
        weights = found.weights.astype(np.float64)
    else:
        weights = found.weights * decay ** found.steps.astype(np.float64)
        weights[found.steps >= _anchors_read(decay)] = 0.0
    totals = np.bincount(found.targets, weights=weights, minlength=len(model.item_ids))
    for item in exclude:
        row = model.index.get(item)
        if row is not None:
            totals[row] = 0.0
    return totals, weights


def neighbour_candidates(
    model: CooccurrenceModel | None,
    history: Sequence[str],
    exclude: set[str],
    source: str = sources.ITEM_KNN,
    count: int | None = None,
    decay: float = 1.0,
) -> list[Retrieved]:
    """The `count` (default: all) best items among the neighbours of the shopper's recent items,
    scored by summed weight (co-buy cosines for item-kNN, EASE's signed weights for the EASE
    source: same layout), the k-th latest item's neighbours weighted by decay^k; items whose sum
    is not positive are left out. Ties go by item id.

    The anchor is the history item that contributed the most, so the gateway
    can say "often bought with <anchor>".
    """
    if model is None:
        return []
    found = _contributions(model, history, _anchors_read(decay))
    if found is None:
        return []
    totals, weights = _totals(model, found, decay, exclude)
    positive = np.flatnonzero(totals > 0)
    if not len(positive):
        return []
    ranked = _best(positive, totals, model.item_ids, count)
    strongest = _strongest_anchors(found, weights, ranked, len(model.item_ids))
    # whole columns at once: one Python object per value, not a NumPy scalar per lookup
    ids = model.item_ids[ranked].astype(str).tolist()
    anchors = model.item_ids[found.anchors[strongest]].astype(str).tolist()
    return [
        Retrieved(item_id, source, score, anchor)
        for item_id, score, anchor in zip(ids, totals[ranked].tolist(), anchors, strict=True)
    ]


def _strongest_anchors(
    found: _Contributions, weights: np.ndarray, ranked: np.ndarray, items: int
) -> np.ndarray:
    """For each ranked row, the index (into `found.anchors`) of the anchor whose single contribution
    to it weighs the most; of equal ones, the last read. One dense [anchors x ranked] table, filled
    from the contributions (an anchor reaches a neighbour at most once), then a column-wise argmax:
    no sort of every contribution."""
    column = np.full(items, -1, np.int64)
    column[ranked] = np.arange(len(ranked))
    mine = column[found.targets]
    reached = mine >= 0
    table = np.full((len(found.anchors), len(ranked)), -np.inf)
    table[found.anchor_of[reached], mine[reached]] = weights[reached]
    return len(found.anchors) - 1 - np.argmax(table[::-1], axis=0)


def neighbour_tops(
    model: CooccurrenceModel,
    history: Sequence[str],
    exclude: set[str],
    count: int,
    decays: Sequence[float],
) -> dict[float, list[str]]:
    """The ids `neighbour_candidates` ranks first under each of `decays`, from one read of the
    history: what validation scores each decay by (no anchors or candidates built)."""
    found = _contributions(model, history, max(_anchors_read(decay) for decay in decays))
    if found is None:
        return {decay: [] for decay in decays}
    tops: dict[float, list[str]] = {}
    for decay in decays:
        totals, _ = _totals(model, found, decay, exclude)
        positive = np.flatnonzero(totals > 0)
        tops[decay] = [str(item) for item in model.item_ids[_best(positive, totals, model.item_ids, count)]]
    return tops


def _anchors_read(decay: float) -> int:
    """How many of the latest history items weigh at least MIN_ANCHOR_WEIGHT under `decay`."""
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"a recency decay is in (0, 1], got {decay}")
    if decay == 1.0:
        return HISTORY_ANCHORS
    return min(HISTORY_ANCHORS, int(np.log(MIN_ANCHOR_WEIGHT) / np.log(decay)) + 1)


def _best(rows: np.ndarray, totals: np.ndarray, ids: np.ndarray, count: int | None) -> np.ndarray:
    """`rows` by total, highest first, ties by item id, cut to `count`. Only the rows at or above
    the count-th highest total are sorted (sorting by id strings is the slow part)."""
    if count is not None and len(rows) > count:
        values = totals[rows]
        threshold = np.partition(values, len(values) - count)[len(values) - count]
        rows = rows[values >= threshold]
    return rows[np.lexsort((ids[rows], -totals[rows]))][:count]


def fused_order(
    lists: Mapping[str, Sequence[Retrieved]],
    weights: Mapping[str, float],
    quotas: Mapping[str, float],
    count: int,
) -> tuple[list[str], dict[str, float]]:
    """The ids `merge` returns, in its order, and every found item's fused score; without building
    the candidates (the availability check needs only the ids)."""
    fused: dict[str, float] = {}
    for source, found in lists.items():
        weight = weights.get(source, 0.0)
        for rank, candidate in enumerate(found):
            fused[candidate.item_id] = fused.get(candidate.item_id, 0.0) + weight / (FUSION_K + rank + 1)
    chosen: dict[str, None] = {}
    for source, found in lists.items():
        quota = round(quotas.get(source, 0.0) * count)
        for candidate in found:
            if quota <= 0 or len(chosen) >= count:
                break
            if candidate.item_id not in chosen:
                chosen[candidate.item_id] = None
                quota -= 1
    if len(chosen) < count:
        for item_id in sorted(fused, key=lambda item: (-fused[item], item)):
            if len(chosen) >= count:
                break
            chosen.setdefault(item_id, None)
    return sorted(chosen, key=lambda item: (-fused[item], item)), fused


def merge(
    lists: Mapping[str, Sequence[Retrieved]],
    weights: Mapping[str, float],
    quotas: Mapping[str, float],
    count: int,
) -> list[Retrieved]:
    """Weighted reciprocal-rank fusion of the sources' lists, with a guaranteed share per source.

    An item's fused score sums, over the sources that found it, weight / (FUSION_K + rank);
    items that several sources agree on rise, and each source's best items stay near the
    top. First every source places its own best `quota x count` items not yet placed (in
    the order of `lists`), then the highest fused scores fill the remaining slots. The
    result is ordered by fused score; each candidate keeps the source that contributed most
    to it, its score and anchor from that source (else the item-kNN anchor whenever item-kNN
    found it), its buyers when the popular source found it, and where every source placed it.
    """
    order, fused = fused_order(lists, weights, quotas, count)
    wanted = set(order)
    leading: dict[str, tuple[float, Retrieved]] = {}
    anchors: dict[str, str] = {}
    buyers: dict[str, int] = {}
    placements: dict[str, list[Placement]] = {item_id: [] for item_id in order}
    for source, found in lists.items():
        weight = weights.get(source, 0.0)
        for rank, candidate in enumerate(found):
            item_id = candidate.item_id
            if item_id not in wanted:
                continue
            placements[item_id].append(Placement(source, rank, candidate.score))
            share = weight / (FUSION_K + rank + 1)
            if item_id not in leading or share > leading[item_id][0]:
                leading[item_id] = (share, candidate)
            if source == sources.ITEM_KNN and candidate.anchor_item_id:
                anchors.setdefault(item_id, candidate.anchor_item_id)
            if candidate.buyers:
                buyers.setdefault(item_id, candidate.buyers)
    merged = []
    for item_id in order:
        lead = leading[item_id][1]
        merged.append(
            Retrieved(
                item_id,
                lead.source,
                lead.score,
                anchor_item_id=lead.anchor_item_id or anchors.get(item_id, ""),
                graph_path=lead.graph_path,
                realism=lead.realism,
                fusion_score=fused[item_id],
                found_by=tuple(placements[item_id]),
                buyers=buyers.get(item_id, 0),
            )
        )
    return merged
