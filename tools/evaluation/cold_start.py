"""Cold-start retrieval on retail-temporal: can items nobody bought before the cutoff be found?

Cold items are catalog items with no purchase before the cutoff. For every
shopper who bought before the cutoff and bought a cold item after it, each
method retrieves 50 items from the whole catalog (less the shopper's earlier
purchases); Recall@50 is the share of the shopper's cold purchases among them,
averaged over shoppers. The methods, in the same run:

- text encoder: trained on the co-purchases before the cutoff, applied to every
  catalog text; the query is the mean vector of the shopper's last 50 distinct
  items (weight 0.9 per step back), searched in the served faiss index;
- random: 50 items drawn uniformly (seeded);
- most popular: the 50 items with the most buyers before the cutoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ml.metrics import recall_of
from ml.similar import ItemIndex
from ml.text_encoder import item_text
from ml.text_train import TextEncoderConfig, fit_text_encoder
from recsys.common.v1 import common_pb2
from tools.evaluation.protocols import RETAIL_CUTOFF, Interactions

K = 50
QUERY_ITEMS = 50
RECENCY = 0.9


@dataclass(frozen=True)
class ColdStartResult:
    method: str
    recall: float
    seconds: float


@dataclass(frozen=True)
class ColdStartReport:
    cold_items: int
    catalog_items: int
    shoppers: int
    pairs: int
    results: list[ColdStartResult]


def evaluate_cold_start(
    data: Interactions,
    catalog: list[common_pb2.Item],
    config: TextEncoderConfig | None = None,
    say: Callable[[str], None] = lambda _: None,
    seed: int = 0,
) -> ColdStartReport:
    before = data.times < RETAIL_CUTOFF
    item_ids = [item.item_id for item in catalog]
    histories: dict[str, dict[str, None]] = {}
    for user, item in zip(data.users[before].tolist(), data.items[before].tolist(), strict=True):
        histories.setdefault(user, {})[item] = None
    warm = {item for history in histories.values() for item in history}
    cold = set(item_ids) - warm
    relevant: dict[str, set[str]] = {}
    for user, item in zip(data.users[~before].tolist(), data.items[~before].tolist(), strict=True):
        if item in cold and user in histories:
            relevant.setdefault(user, set()).add(item)
    say(
        f"cold start: {len(cold)} of {len(item_ids)} catalog items unsold before {RETAIL_CUTOFF}; "
        f"{len(relevant)} earlier shoppers bought them after"
    )

    started = time.perf_counter()
    embeddings = fit_text_encoder(
        np.array(item_ids),
        [item_text(item) for item in catalog],
        data.users[before],
        data.items[before],
        config or TextEncoderConfig(),
        on_epoch=lambda epoch, loss: say(f"text encoder epoch {epoch}: co-purchase loss {loss:.3f}"),
    )
    index = ItemIndex.build(embeddings, [catalog])
    text_recall = []
    for user, bought in relevant.items():
        recent = list(histories[user])[::-1][:QUERY_ITEMS]
        found = index.vectors_of(recent)
        seeds = [item for item in recent if item in found]
        weights = RECENCY ** np.arange(len(seeds))
        chosen = index.similar(np.stack([found[i] for i in seeds]), weights, K, set(histories[user]))
        text_recall.append(recall_of([item for item, _, _ in chosen], bought))
    text_seconds = time.perf_counter() - started

    rng = np.random.default_rng(seed)
    random_recall = []
    for user, bought in relevant.items():
        pool = [item for item in item_ids if item not in histories[user]]
        random_recall.append(recall_of(rng.choice(pool, size=K, replace=False).tolist(), bought))
    buyers: dict[str, int] = {}
    for history in histories.values():
        for item in history:
            buyers[item] = buyers.get(item, 0) + 1
    ranked = sorted(buyers, key=lambda item: (-buyers[item], item))
    popular_recall = [
        recall_of([item for item in ranked if item not in histories[user]][:K], bought)
        for user, bought in relevant.items()
    ]
    return ColdStartReport(
        cold_items=len(cold),
        catalog_items=len(item_ids),
        shoppers=len(relevant),
        pairs=sum(len(items) for items in relevant.values()),
        results=[
            ColdStartResult("text encoder + faiss index", float(np.mean(text_recall)), text_seconds),
            ColdStartResult("random (baseline)", float(np.mean(random_recall)), 0.0),
            ColdStartResult("most popular (baseline)", float(np.mean(popular_recall)), 0.0),
        ],
    )
