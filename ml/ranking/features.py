"""The ranker's features for one shopper's candidate list, computed the same way in training and serving.

Every feature belongs to one group; the ablation removes a group at a time. The
learned parts of the model add two more: latent factors (a user vector, the mean of
the history's item vectors, dotted with the candidate's vector; "collaborative")
and a per-item bias ("item"). The "vae", "embedding" and "graph" groups read the
learned views of ml/ranking/views.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml.artifacts import CooccurrenceModel
from ml.popularity import fit_popularity
from ml.ranking.views import LearnedViews, similarities, vae_scores
from ml.snapshot import Snapshot
from shared import sources
from shared.sources import Placement
from shared.surfaces import SURFACES

DAY_S = 86_400.0
HISTORY_ANCHORS = 50
# The sources whose placements the ranker reads; the training lists come from these (see
# ml/candidates_offline.py). What the item-text and knowledge-graph sources know reaches the
# ranker through the learned views instead, for every candidate whichever source found it.
RANK_COLUMN = {
    sources.GENERATOR: "gan_rank",
    sources.ITEM_KNN: "knn_rank",
    sources.EASE: "ease_rank",
    sources.POPULAR: "popular_rank",
}

GROUPS: dict[str, tuple[str, ...]] = {
    "retrieval": (
        "fused_rank",
        "fusion_score",
        "gan_rank",
        "knn_rank",
        "ease_rank",
        "popular_rank",
        "source_count",
    ),
    "collaborative": (
        "gan_score",
        "ease_score",
        "cooccurrence_sum",
        "cooccurrence_max",
        "cooccurrence_anchors",
    ),
    "profile": ("category_affinity", "price_vs_usual", "purchases", "history_length", "days_since_active"),
    "item": ("price", "buyers", "recent_popularity", "days_on_sale"),
    "vae": ("vae_score", "vae_score_vs_best"),
    "embedding": ("text_similarity_max", "text_similarity_mean"),
    "graph": ("graph_similarity_max", "graph_similarity_mean"),
    # What the item's reviews say (ml/sentiment.py: scored_reviews): their mean sentiment, shrunk
    # towards neutral by one review's weight, and how many there are.
    "sentiment": ("review_sentiment", "reviews"),
    # No time of day or weekday: training would learn them from when purchases happened and
    # serving would read them from when the request came, two different things (the same
    # trained suite scored 0.080 and 0.094 at two hours of the day). They come back once
    # impressions are logged with their request time to learn from.
    "context": tuple(f"surface_{s}" for s in SURFACES),
}
FEATURES: tuple[str, ...] = tuple(name for names in GROUPS.values() for name in names)
COLUMN = {name: i for i, name in enumerate(FEATURES)}


@dataclass(frozen=True, slots=True)  # millions of them in training: no __dict__ each
class RankCandidate:
    """A candidate as retrieval handed it over."""

    item_id: str
    fusion_score: float = 0.0
    found_by: tuple[Placement, ...] = ()


@dataclass(frozen=True)
class Shopper:
    """What the ranker knows of the shopper and the moment: history most recent first."""

    history: Sequence[str]
    purchases: int = 0
    last_active: float | None = None
    surface: str = "home"


@dataclass(frozen=True)
class ItemTable:
    """Per-item facts as of `reference_time` (the newest event the model saw), and the co-buy model."""

    item_ids: np.ndarray
    prices: np.ndarray
    categories: np.ndarray
    buyers: np.ndarray
    recent_popularity: np.ndarray
    first_sold: np.ndarray
    reference_time: float
    review_sentiment: np.ndarray  # the sum of the item's review sentiments
    reviews: np.ndarray  # the number of its reviews that say something
    cooccurrence: CooccurrenceModel
    views: LearnedViews | None = field(default=None, compare=False)
    index: dict[str, int] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.index.update({item_id: i for i, item_id in enumerate(self.item_ids.tolist())})

    def save(self, folder: Path) -> None:
        np.savez(
            folder / "items.npz",
            item_ids=self.item_ids,
            prices=self.prices,
            categories=self.categories,
            buyers=self.buyers,
            recent_popularity=self.recent_popularity,
            first_sold=self.first_sold,
            reference_time=np.array(self.reference_time),
            review_sentiment=self.review_sentiment,
            reviews=self.reviews,
        )
        self.cooccurrence.save(folder)
        if self.views is not None:
            self.views.save(folder)

    @classmethod
    def load(cls, folder: Path) -> ItemTable:
        with np.load(folder / "items.npz") as data:
            arrays = {name: data[name] for name in data.files}
        for name in ("review_sentiment", "reviews"):  # tables saved before reviews were read
            arrays.setdefault(name, np.zeros(len(arrays["item_ids"])))
        return cls(
            **{name: value for name, value in arrays.items() if name != "reference_time"},
            reference_time=float(arrays["reference_time"]),
            cooccurrence=CooccurrenceModel.load(folder),
            views=LearnedViews.load(folder) if (folder / "views.npz").exists() else None,
        )

    def positions(self, item_ids: Sequence[str]) -> np.ndarray:
        """Row of each item, -1 for items the table does not know."""
        return np.array([self.index.get(item_id, -1) for item_id in item_ids], dtype=np.int64)


def vocabulary_of(snapshot: Snapshot) -> np.ndarray:
    """Every catalog or bought item of `snapshot`, sorted."""
    _, items = snapshot.interactions()
    return np.unique(np.concatenate([snapshot.catalog_item_ids.astype(str), items.astype(str)]))


def item_table(
    snapshot: Snapshot,
    cooccurrence: CooccurrenceModel,
    half_life_days: float,
    vocabulary: np.ndarray | None = None,
) -> ItemTable:
    """The facts of every item of `vocabulary` (by default `vocabulary_of(snapshot)`), in its order,
    as of the snapshot's newest purchase."""
    _, items = snapshot.interactions()
    times = snapshot.interaction_times()
    item_ids = vocabulary_of(snapshot) if vocabulary is None else vocabulary
    index = {item_id: i for i, item_id in enumerate(item_ids.tolist())}

    def rows_of(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the ids the vocabulary knows, and which of the ids those are."""
        found = np.array([index.get(i, -1) for i in ids.tolist()], dtype=np.int64)
        return found[found >= 0], found >= 0

    prices = np.zeros(len(item_ids))
    categories = np.full(len(item_ids), "", dtype=object)
    rows, known = rows_of(snapshot.catalog_item_ids)
    prices[rows] = snapshot.catalog_prices[known]
    categories[rows] = snapshot.catalog_categories[known]
    popularity = fit_popularity(snapshot, half_life_days)
    buyers = np.zeros(len(item_ids))
    recent = np.zeros(len(item_ids))
    rows, known = rows_of(popularity.item_ids)
    buyers[rows] = popularity.buyers[known]
    recent[rows] = popularity.scores[known]
    first_sold = np.full(len(item_ids), np.inf)
    rows, known = rows_of(items)
    np.minimum.at(first_sold, rows, times[known])
    first_sold[np.isinf(first_sold)] = np.nan
    review_sentiment, reviews = np.zeros(len(item_ids)), np.zeros(len(item_ids))
    if snapshot.sentiments is not None:
        said = ~np.isnan(snapshot.sentiments)
        rows, known = rows_of(snapshot.item_ids[said])
        np.add.at(review_sentiment, rows, snapshot.sentiments[said][known])
        np.add.at(reviews, rows, 1.0)
    return ItemTable(
        item_ids=item_ids,
        prices=prices,
        categories=categories.astype(str),
        buyers=buyers,
        recent_popularity=recent,
        first_sold=first_sold,
        reference_time=float(times.max()) if len(times) else 0.0,
        review_sentiment=review_sentiment,
        reviews=reviews,
        cooccurrence=cooccurrence,
    )


def _placements(candidates: Sequence[RankCandidate], matrix: np.ndarray) -> None:
    for row, candidate in enumerate(candidates):
        matrix[row, COLUMN["fused_rank"]] = math.log1p(row)
        matrix[row, COLUMN["fusion_score"]] = candidate.fusion_score * 100.0
        matrix[row, COLUMN["source_count"]] = sum(p.source in RANK_COLUMN for p in candidate.found_by)
        for placement in candidate.found_by:
            column = RANK_COLUMN.get(placement.source)
            if column is not None:
                matrix[row, COLUMN[column]] = 1.0 / (1.0 + placement.rank)
            if placement.source == sources.GENERATOR:
                matrix[row, COLUMN["gan_score"]] = placement.score
            elif placement.source == sources.EASE:
                matrix[row, COLUMN["ease_score"]] = placement.score


def _cooccurrence(
    table: ItemTable, history: Sequence[str], candidates: Sequence[RankCandidate], matrix: np.ndarray
) -> list[str]:
    """Co-buy features; returns each candidate's strongest co-bought history item ('' if none)."""
    model = table.cooccurrence
    slot = np.full(len(model.item_ids), -1, dtype=np.int64)  # co-buy row -> candidate row
    for row, candidate in enumerate(candidates):
        known = model.index.get(candidate.item_id)
        if known is not None:
            slot[known] = row
    total = np.zeros(len(candidates))
    anchors = np.zeros(len(candidates))
    best = np.zeros(len(candidates))
    best_anchor = np.full(len(candidates), -1, dtype=np.int64)
    recent = list(history[:HISTORY_ANCHORS])
    for number, anchor in enumerate(recent):
        known = model.index.get(anchor)
        if known is None:
            continue
        neighbours = model.neighbours[known]
        present = neighbours >= 0
        rows = slot[neighbours[present]]
        similarity = model.scores[known][present]
        hit = rows >= 0
        rows, similarity = rows[hit], similarity[hit]  # distinct: an item is one anchor's neighbour once
        total[rows] += similarity
        anchors[rows] += 1
        better = similarity > best[rows]
        best[rows[better]] = similarity[better]
        best_anchor[rows[better]] = number
    matrix[:, COLUMN["cooccurrence_sum"]] = total
    matrix[:, COLUMN["cooccurrence_max"]] = best
    matrix[:, COLUMN["cooccurrence_anchors"]] = np.log1p(anchors)
    return [recent[a] if a >= 0 else "" for a in best_anchor.tolist()]


def _items(table: ItemTable, rows: np.ndarray, matrix: np.ndarray) -> None:
    known = rows >= 0
    safe = np.where(known, rows, 0)
    matrix[:, COLUMN["price"]] = np.where(known, np.log1p(table.prices[safe]), 0.0)
    matrix[:, COLUMN["buyers"]] = np.where(known, np.log1p(table.buyers[safe]), 0.0)
    matrix[:, COLUMN["recent_popularity"]] = np.where(known, np.log1p(table.recent_popularity[safe]), 0.0)
    age = (table.reference_time - table.first_sold[safe]) / DAY_S
    matrix[:, COLUMN["days_on_sale"]] = np.where(known & np.isfinite(age), np.log1p(np.maximum(age, 0)), 0.0)
    reviews = np.where(known, table.reviews[safe], 0.0)
    matrix[:, COLUMN["review_sentiment"]] = np.where(known, table.review_sentiment[safe], 0.0) / (
        reviews + 1.0
    )
    matrix[:, COLUMN["reviews"]] = np.log1p(reviews)


def _profile(table: ItemTable, shopper: Shopper, rows: np.ndarray, matrix: np.ndarray) -> None:
    own = table.positions(shopper.history[:HISTORY_ANCHORS])
    own = own[own >= 0]
    matrix[:, COLUMN["purchases"]] = math.log1p(shopper.purchases)
    matrix[:, COLUMN["history_length"]] = math.log1p(len(shopper.history))
    if shopper.last_active is not None:
        idle = max(0.0, table.reference_time - shopper.last_active) / DAY_S
        matrix[:, COLUMN["days_since_active"]] = math.log1p(idle)
    known = rows >= 0
    safe = np.where(known, rows, 0)
    if len(own):
        categories, counts = np.unique(table.categories[own], return_counts=True)
        share = dict(zip(categories.tolist(), (counts / len(own)).tolist(), strict=True))
        share.pop("", None)
        candidate_categories = table.categories[safe].tolist()
        matrix[:, COLUMN["category_affinity"]] = [
            share.get(c, 0.0) if k else 0.0 for c, k in zip(candidate_categories, known, strict=True)
        ]
        priced = table.prices[own][table.prices[own] > 0]
        if len(priced):
            usual = float(np.median(np.log1p(priced)))
            candidate_prices = table.prices[safe]
            matrix[:, COLUMN["price_vs_usual"]] = np.where(
                known & (candidate_prices > 0), np.log1p(candidate_prices) - usual, 0.0
            )


def _learned(table: ItemTable, shopper: Shopper, rows: np.ndarray, matrix: np.ndarray) -> None:
    views = table.views
    if views is None:
        return
    own = table.positions(shopper.history[:HISTORY_ANCHORS])
    own = own[own >= 0]
    text = similarities(views.text, own, rows)
    matrix[:, COLUMN["text_similarity_max"]], matrix[:, COLUMN["text_similarity_mean"]] = text
    graph = similarities(views.graph, own, rows)
    matrix[:, COLUMN["graph_similarity_max"]], matrix[:, COLUMN["graph_similarity_mean"]] = graph
    scored = vae_scores(views, shopper.history, rows)
    if scored is not None:
        matrix[:, COLUMN["vae_score"]], matrix[:, COLUMN["vae_score_vs_best"]] = scored


def _context(shopper: Shopper, matrix: np.ndarray) -> None:
    if shopper.surface in SURFACES:
        matrix[:, COLUMN[f"surface_{shopper.surface}"]] = 1.0


@dataclass(frozen=True)
class CandidateFeatures:
    """The feature matrix [candidates x FEATURES], each candidate's table row and co-bought anchor."""

    matrix: np.ndarray
    rows: np.ndarray
    anchors: list[str]


def candidate_features(
    table: ItemTable, shopper: Shopper, candidates: Sequence[RankCandidate]
) -> CandidateFeatures:
    matrix = np.zeros((len(candidates), len(FEATURES)), dtype=np.float32)
    rows = table.positions([c.item_id for c in candidates])
    _placements(candidates, matrix)
    anchors = _cooccurrence(table, shopper.history, candidates, matrix)
    _items(table, rows, matrix)
    _profile(table, shopper, rows, matrix)
    _learned(table, shopper, rows, matrix)
    _context(shopper, matrix)
    return CandidateFeatures(matrix, rows, anchors)
