"""The baseline ranker: a candidate's score is its summed co-occurrence with the shopper's items."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ml.artifacts import CooccurrenceModel

RANKER_NAME = "baseline"
HISTORY_LIMIT = 50


@dataclass(frozen=True)
class Scored:
    item_id: str
    score: float
    top_contributor_item_id: str


def score_candidates(
    model: CooccurrenceModel | None, history: Sequence[str], candidates: Sequence[str]
) -> list[Scored]:
    """Scores every candidate; ties (for example all zeros) keep the candidates' order."""
    similar = {anchor: dict(model.similar(anchor)) for anchor in history[:HISTORY_LIMIT]} if model else {}
    scored = []
    for item_id in candidates:
        contributions = [(row.get(item_id, 0.0), anchor) for anchor, row in similar.items()]
        total = sum(value for value, _ in contributions)
        best_value, best_anchor = max(contributions, default=(0.0, ""))
        scored.append(Scored(item_id, total, best_anchor if best_value > 0 else ""))
    return sorted(scored, key=lambda s: -s.score)
