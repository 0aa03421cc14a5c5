"""The candidate pipeline run in process over many shoppers at once, for training and evaluation.

The same fitting functions and fusion as the service: item-kNN, EASE and popular by
the service's retrieval code, the generator through its serving graph (the function
TF Serving runs), merged by `merge` with the configured weights and quotas.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from ml.artifacts import CooccurrenceModel, PopularityModel
from ml.cooccurrence import fit_cooccurrence
from ml.ease import DEFAULT_MAX_ITEMS, EaseModel, fit_ease
from ml.gan import HISTORY_LIMIT
from ml.popularity import fit_popularity
from ml.retrieval import Fusion, Retrieved, merge, neighbour_candidates
from ml.snapshot import Snapshot
from shared import sources

GAN_BATCH = 256
Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class SourcesConfig:
    """How the sources are fitted and fused offline, as the running suite does."""

    fusion: Fusion = field(default_factory=Fusion)
    popularity_half_life_days: float = 3.0
    ease_l2: float | None = None  # None: from the data's scale (training chooses it on validation)
    ease_max_items: int = DEFAULT_MAX_ITEMS
    ease_half_life_days: float = 0.0  # rows' recency weights (0: none); chosen on validation in training
    # Each neighbour source's recency decay over the shopper's history (ml/retrieval.py; absent: 1.0,
    # every anchor the same); chosen on validation in training.
    recency_decays: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FittedSources:
    """Every source fitted on one snapshot; `generator` is the GAN's serving module, if used."""

    knn: CooccurrenceModel
    ease: EaseModel
    popular: PopularityModel
    generator: Any | None

    def neighbour_models(self) -> dict[str, CooccurrenceModel]:
        """The neighbour sources (ml/retrieval.py: neighbour_candidates) by source name."""
        return {sources.ITEM_KNN: self.knn, sources.EASE: self.ease}


def fit_sources(
    snapshot: Snapshot,
    config: SourcesConfig,
    fit_generator: Callable[[Snapshot], object] | None,
    ease: EaseModel | None = None,
) -> FittedSources:
    """Fits item-kNN, EASE (unless `ease` is given, already fitted on `snapshot`), popular and (when
    `fit_generator` is given) the generator on `snapshot`."""
    generator = None
    if fit_generator is not None:
        from ml.gan.export import ServingModule  # TensorFlow loads only when needed

        fitted = fit_generator(snapshot)
        generator = ServingModule(fitted) if fitted is not None else None  # type: ignore[arg-type]
    return FittedSources(
        knn=fit_cooccurrence(snapshot),
        ease=ease or fit_ease(snapshot, config.ease_l2, config.ease_max_items, config.ease_half_life_days),
        popular=fit_popularity(snapshot, config.popularity_half_life_days),
        generator=generator,
    )


def histories(users: np.ndarray, items: np.ndarray, times: np.ndarray) -> dict[str, list[str]]:
    """Each user's distinct items as the profile service hands them over: latest purchase first,
    items bought at the same moment by item id (an order within one basket is not data serving has)."""
    pairs, inverse = np.unique(np.stack([users.astype(str), items.astype(str)]), axis=1, return_inverse=True)
    latest = np.full(pairs.shape[1], -np.inf)
    np.maximum.at(latest, inverse.ravel(), np.asarray(times, np.float64))
    order = np.lexsort((pairs[1], -latest, pairs[0]))
    found: dict[str, list[str]] = {}
    for user, item in zip(pairs[0][order].tolist(), pairs[1][order].tolist(), strict=True):
        found.setdefault(user, []).append(item)
    return found


def _generated(generator: Any, shoppers: Mapping[Key, Sequence[str]]) -> dict[Key, list[Retrieved]]:
    import tensorflow as tf

    keys = list(shoppers)
    recent = {key: list(shoppers[key][:HISTORY_LIMIT]) for key in keys}  # what the service sends
    found: dict[Key, list[Retrieved]] = {}
    for start in range(0, len(keys), GAN_BATCH):
        batch = keys[start : start + GAN_BATCH]
        width = max(1, max(len(recent[key]) for key in batch))
        padded = np.array([recent[key] + [""] * (width - len(recent[key])) for key in batch], dtype=object)
        outputs = generator.serve(tf.constant(padded))
        ids = outputs["item_ids"].numpy()
        scores = outputs["scores"].numpy()
        for row, key in enumerate(batch):
            found[key] = [
                Retrieved(item.decode(), sources.GENERATOR, float(score))
                for item, score in zip(ids[row].tolist(), scores[row].tolist(), strict=True)
            ]
    return found


def source_lists(
    fitted: FittedSources,
    shoppers: Mapping[Key, Sequence[str]],
    count: int,
    decays: Mapping[str, float] | None = None,
) -> dict[Key, dict[str, list[Retrieved]]]:
    """Each source's `count` best items per shopper (history most recent first), bought items left
    out; `decays`: the neighbour sources' recency decays (SourcesConfig.recency_decays)."""
    decays = decays or {}
    generated = _generated(fitted.generator, shoppers) if fitted.generator is not None else {}
    lists: dict[Key, dict[str, list[Retrieved]]] = {}
    for key, history in shoppers.items():
        bought = set(history)
        found = {}
        if key in generated:
            found[sources.GENERATOR] = [c for c in generated[key] if c.item_id not in bought][:count]
        for source, model in fitted.neighbour_models().items():
            decay = decays.get(source, 1.0)
            found[source] = neighbour_candidates(model, history, bought, source, count, decay)
        found[sources.POPULAR] = [
            Retrieved(item, sources.POPULAR, score) for item, score, _ in fitted.popular.top(count, bought)
        ]
        lists[key] = found
    return lists


def merged(lists: Mapping[str, Sequence[Retrieved]], config: SourcesConfig, count: int) -> list[Retrieved]:
    """The service's fusion of one shopper's source lists."""
    return merge(lists, config.fusion.weights, config.fusion.quotas, count)
