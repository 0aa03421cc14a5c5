"""Candidate sources on a split, computed by the candidates service's own code.

Each test user's history is their training purchases, most recent first, as the
profile service would hand it over. The GAN is asked through its serving graph
(the function TF Serving runs), item-kNN and popular through the service's
retrieval functions, and the merged list through the service's fusion.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from services.candidates.retrieval import Retrieved, item_knn_candidates, merge
from services.candidates.train import fit_cooccurrence
from services.items.train import fit_popularity
from shared import sources
from shared.config import Settings
from shared.evaluation.protocols import Split
from shared.snapshot import PURCHASE, Snapshot

CANDIDATES = 200
GAN_BATCH = 256
MERGED = "merged candidates"


@dataclass(frozen=True)
class SourceRankings:
    """Item indices of the split per test user, for each source and the merge; seconds per source."""

    rankings: dict[str, dict[int, list[int]]]
    seconds: dict[str, float]


def training_snapshot(split: Split) -> Snapshot:
    """The training purchases as the snapshot a training run would export."""
    data = split.train_interactions
    stamps = np.array([datetime.fromisoformat(t).timestamp() for t in data.times.tolist()], dtype=np.float64)
    items = np.unique(data.items)
    return Snapshot(
        folder=None,  # type: ignore[arg-type]
        user_ids=data.users.astype(str),
        item_ids=data.items.astype(str),
        types=np.full(len(data.users), PURCHASE, dtype=np.int8),
        timestamps=stamps,
        quantities=np.ones(len(data.users), dtype=np.int32),
        catalog_item_ids=items,
        catalog_titles=np.full(len(items), "", dtype=str),
        catalog_categories=np.full(len(items), "", dtype=str),
        catalog_prices=np.zeros(len(items)),
        catalog_price_scaled=np.zeros(len(items)),
    )


def recent_histories(split: Split) -> dict[int, list[str]]:
    """Each test user's distinct training items, most recent first."""
    positions = {user: index for index, user in enumerate(split.user_ids.tolist())}
    wanted = set(split.test)
    histories: dict[int, dict[str, None]] = {}
    data = split.train_interactions
    for user, item in zip(data.users[::-1].tolist(), data.items[::-1].tolist(), strict=True):
        index = positions[user]
        if index in wanted:
            histories.setdefault(index, {}).setdefault(item, None)
    return {user: list(items) for user, items in histories.items()}


def _generated(serve: Callable, histories: dict[int, list[str]]) -> dict[int, list[Retrieved]]:
    import tensorflow as tf

    from services.candidates.gan_source import HISTORY_LIMIT

    users = sorted(histories)
    recent = {user: histories[user][:HISTORY_LIMIT] for user in users}  # what the service sends
    found: dict[int, list[Retrieved]] = {}
    for start in range(0, len(users), GAN_BATCH):
        batch = users[start : start + GAN_BATCH]
        width = max(len(recent[u]) for u in batch)
        padded = np.array([recent[u] + [""] * (width - len(recent[u])) for u in batch], dtype=object)
        outputs = serve(tf.constant(padded))
        ids = outputs["item_ids"].numpy()
        scores = outputs["scores"].numpy()
        for row, user in enumerate(batch):
            found[user] = [
                Retrieved(item.decode(), sources.GENERATOR, float(score))
                for item, score in zip(ids[row].tolist(), scores[row].tolist(), strict=True)
            ]
    return found


def source_rankings(
    split: Split,
    settings: Settings,
    fit_generator: Callable[[Snapshot], object],
    progress: Callable[[str], None] = lambda _: None,
) -> SourceRankings:
    """Fits every source on the training part and lists CANDIDATES items per test user."""
    from services.candidates.gan_export import ServingModule

    snapshot = training_snapshot(split)
    histories = recent_histories(split)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    trained = fit_generator(snapshot)
    module = ServingModule(trained)  # type: ignore[arg-type]
    generated = _generated(module.serve, histories)
    seconds[sources.GENERATOR] = time.perf_counter() - started
    progress(f"{sources.GENERATOR}: fitted and asked in {seconds[sources.GENERATOR]:.0f}s")
    started = time.perf_counter()
    knn = fit_cooccurrence(snapshot)
    seconds[sources.ITEM_KNN] = time.perf_counter() - started
    started = time.perf_counter()
    popular = fit_popularity(snapshot, settings.popularity_half_life_days)
    seconds[sources.POPULAR] = time.perf_counter() - started
    positions = {item: index for index, item in enumerate(split.item_ids.tolist())}
    rankings: dict[str, dict[int, list[int]]] = {
        name: {} for name in (sources.GENERATOR, sources.ITEM_KNN, sources.POPULAR, MERGED)
    }
    for user, history in histories.items():
        bought = set(history)
        lists = {
            sources.GENERATOR: [c for c in generated[user] if c.item_id not in bought][:CANDIDATES],
            sources.ITEM_KNN: item_knn_candidates(knn, history, bought)[:CANDIDATES],
            sources.POPULAR: [
                Retrieved(item, sources.POPULAR, score) for item, score, _ in popular.top(CANDIDATES, bought)
            ],
        }
        lists[MERGED] = merge(lists, settings.candidate_weights, settings.candidate_quotas, CANDIDATES)
        for name, found in lists.items():
            rankings[name][user] = [positions[c.item_id] for c in found if c.item_id in positions]
    return SourceRankings(rankings, seconds)
