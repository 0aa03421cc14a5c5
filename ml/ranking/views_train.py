"""Fitting the ranker's learned views (ml/ranking/views.py) on one snapshot."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from ml.graph_train import TransEConfig, fit_transe, graph_triples
from ml.ranking.views import LearnedViews
from ml.snapshot import Snapshot
from ml.text_train import TextEncoderConfig, fit_text_encoder
from ml.vae_train import VaeConfig, fit_vae

log = logging.getLogger(__name__)
Fitted = TypeVar("Fitted")


@dataclass(frozen=True)
class ViewsConfig:
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    vae: VaeConfig = field(default_factory=lambda: VaeConfig(hidden=200, epochs=15))
    graph: TransEConfig = field(default_factory=TransEConfig)


def _attempt(name: str, fit: Callable[[], Fitted], progress: Callable[[str], None]) -> Fitted | None:
    """A view that cannot be fitted on this data is left out, with the reason said once."""
    try:
        return fit()
    except ValueError as error:
        progress(f"{name} left out of the ranker: {error}")
        return None


def fit_views(
    snapshot: Snapshot,
    item_ids: np.ndarray,
    config: ViewsConfig,
    progress: Callable[[str], None] = log.info,
) -> LearnedViews:
    """The text encoder, the user VAE and TransE fitted on `snapshot`, aligned with `item_ids`."""
    users, items = snapshot.interactions()
    text = _attempt(
        "the item text encoder",
        lambda: fit_text_encoder(snapshot.catalog_item_ids, snapshot.item_texts, users, items, config.text),
        progress,
    )
    vae = _attempt("the user VAE", lambda: fit_vae(users, items, config.vae).encoder, progress)
    triples = graph_triples(snapshot.catalog_item_ids.tolist(), snapshot.item_facts, users, items)
    graph = _attempt("the graph embeddings", lambda: fit_transe(triples, config.graph), progress)
    ids = item_ids.tolist()
    return LearnedViews.aligned(
        item_ids,
        None if text is None else (text.item_ids.tolist(), text.vectors),
        None if graph is None else (ids, graph.vectors_of([f"item:{item}" for item in ids])),
        vae,
    )
