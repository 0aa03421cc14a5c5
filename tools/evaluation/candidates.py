"""Candidate sources on a split, computed by the candidates service's own code.

Each test user's history is their training purchases, most recent first, as the
profile service would hand it over (see ml/candidates_offline.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from ml.candidates_offline import SourcesConfig, fit_sources, histories, merged, source_lists
from ml.retrieval import Retrieved
from ml.snapshot import PURCHASE, Snapshot
from recsys.common.v1 import common_pb2
from shared import sources
from tools.evaluation.protocols import Interactions, Split

CANDIDATES = 200
MERGED = "merged candidates"


@dataclass(frozen=True)
class SourceRankings:
    """Item indices of the split per test user, for each source and the merge; seconds per source."""

    rankings: dict[str, dict[int, list[int]]]
    seconds: dict[str, float]


def training_snapshot(split: Split, catalog: Sequence[common_pb2.Item] = ()) -> Snapshot:
    """The training purchases (and the catalog, when given) as the snapshot a training run would export."""
    return purchases_snapshot(split.train_interactions, catalog)


def purchases_snapshot(data: Interactions, catalog: Sequence[common_pb2.Item] = ()) -> Snapshot:
    """Purchase lines (and the catalog, when given) as the snapshot a training run would export."""
    stamps = np.array([datetime.fromisoformat(t).timestamp() for t in data.times.tolist()], dtype=np.float64)
    writer_items = {item.item_id: item for item in catalog}
    items = np.unique(np.concatenate([data.items.astype(str), np.array(list(writer_items), dtype=str)]))
    known = [writer_items.get(item) for item in items.tolist()]
    return Snapshot(
        folder=None,  # type: ignore[arg-type]
        user_ids=data.users.astype(str),
        item_ids=data.items.astype(str),
        types=np.full(len(data.users), PURCHASE, dtype=np.int8),
        timestamps=stamps,
        quantities=(
            data.quantities.astype(np.int32)
            if data.quantities is not None
            else np.ones(len(data.users), dtype=np.int32)
        ),
        catalog_item_ids=items,
        catalog_titles=np.array([item.title if item else "" for item in known], dtype=str),
        catalog_categories=np.array(
            [">".join(item.category_path) if item else "" for item in known], dtype=str
        ),
        catalog_prices=np.array([item.price if item else 0.0 for item in known], dtype=np.float64),
        catalog_price_scaled=np.zeros(len(items)),
        segments=None if data.segments is None else data.segments.astype(str),
    )


def recent_histories(split: Split) -> dict[int, list[str]]:
    """Each test user's distinct training items, most recent first, by user index."""
    data = split.train_interactions
    positions = {user: index for index, user in enumerate(split.user_ids.tolist())}
    found = histories(data.users, data.items, data.times.astype("datetime64[s]").astype(np.int64))
    return {positions[user]: items for user, items in found.items() if positions[user] in split.test}


def test_candidates(
    snapshot: Snapshot,
    split: Split,
    config: SourcesConfig,
    fit_generator: Callable[[Snapshot], object] | None,
) -> tuple[dict[int, dict[str, list[Retrieved]]], dict[str, float]]:
    """Every source's and the merged list for each test user (fitted on the training part's
    `snapshot`), with the seconds the sources took to fit and to answer."""
    shoppers = recent_histories(split)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    fitted = fit_sources(snapshot, config, fit_generator)
    seconds["fit"] = time.perf_counter() - started
    started = time.perf_counter()
    lists = source_lists(fitted, shoppers, CANDIDATES, config.recency_decays)
    for found in lists.values():
        found[MERGED] = merged(found, config, CANDIDATES)
    seconds["answer"] = time.perf_counter() - started
    return lists, seconds


def source_rankings(
    split: Split,
    config: SourcesConfig,
    fit_generator: Callable[[Snapshot], object],
    progress: Callable[[str], None] = lambda _: None,
) -> SourceRankings:
    """Fits every source on the training part and lists CANDIDATES items per test user."""
    lists, seconds = test_candidates(training_snapshot(split), split, config, fit_generator)
    progress(f"candidate sources fitted in {seconds['fit']:.0f}s, asked in {seconds['answer']:.0f}s")
    positions = {item: index for index, item in enumerate(split.item_ids.tolist())}
    rankings: dict[str, dict[int, list[int]]] = {
        name: {} for name in (sources.GENERATOR, sources.ITEM_KNN, sources.EASE, sources.POPULAR, MERGED)
    }
    for user, found in lists.items():
        for name, candidates in found.items():
            rankings[name][user] = [positions[c.item_id] for c in candidates if c.item_id in positions]
    total = sum(seconds.values())
    return SourceRankings(rankings, {name: total for name in rankings})
