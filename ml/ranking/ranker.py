"""The published ranker as the service holds it: item table, co-buys and network, in process."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.ranking.features import HISTORY_ANCHORS, ItemTable, RankCandidate, Shopper, candidate_features
from ml.ranking.serving import ServingRanker, load_serving

TOP_FEATURES = 3
# Only the best items are explained: no slate is longer (the gateway's largest count).
EXPLAINED = 100


@dataclass(frozen=True)
class Ranked:
    item_id: str
    score: float
    anchor_item_id: str
    contributions: list[tuple[str, float]]


class RankerModel:
    def __init__(self, serving: ServingRanker, table: ItemTable, meta: dict) -> None:
        self.serving = serving
        self.table = table
        self.meta = meta

    @classmethod
    def load(cls, folder: Path) -> RankerModel:
        serving, meta = load_serving(folder)
        return cls(serving, ItemTable.load(folder), meta)

    def rank(self, shopper: Shopper, candidates: Sequence[RankCandidate]) -> list[Ranked]:
        """Every candidate scored, best first (ties keep retrieval's order); the EXPLAINED best
        carry their top contributions."""
        computed = candidate_features(self.table, shopper, candidates)
        history = self.table.positions(shopper.history[:HISTORY_ANCHORS])
        explained = self.serving.explain(
            computed.matrix, computed.rows + 1, history[history >= 0] + 1, TOP_FEATURES, EXPLAINED
        )
        order = np.argsort(-explained.scores, kind="stable")
        return [
            Ranked(
                candidates[i].item_id,
                float(explained.scores[i]),
                computed.anchors[i],
                explained.contributions.get(i, []),
            )
            for i in order.tolist()
        ]
