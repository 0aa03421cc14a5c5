"""Cold start for new shoppers on retail-temporal: what to show someone with no history?

New shoppers are those whose first purchase comes after the cutoff. Each is
known by two things a platform has on a first visit: their segment (the
country, Event.segment) and what they are looking at, taken to be the first item
they bought. The items to find are their other distinct purchases after that
first one. Every method is fitted on the purchases before the cutoff, with the
serving code, and ranks K items (never the context item); the score is
Recall@K averaged over shoppers:

- context: item-kNN from the context item (the candidates service's item-kNN);
- popular in segment: the popularity model's ranking among the segment's buyers
  (everyone's when the segment has too few), as the items service serves it;
- most popular (baseline): everyone's ranking;
- random (baseline): K items drawn uniformly from the items sold before (seeded).

The report also gives each popularity ranking for the shoppers outside the
largest segment, where a segment's taste differs most from everyone's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ml.cooccurrence import fit_cooccurrence
from ml.metrics import recall_of
from ml.popularity import fit_popularity
from ml.retrieval import neighbour_candidates
from tools.evaluation.candidates import purchases_snapshot
from tools.evaluation.protocols import RETAIL_CUTOFF, Interactions

K = 20


@dataclass(frozen=True)
class NewShopperResult:
    method: str
    recall: float
    recall_outside_largest: float | None  # None for methods that do not depend on the segment


@dataclass(frozen=True)
class NewShopperReport:
    shoppers: int
    largest_segment: str
    outside_largest: int
    segments_known: int  # segments with their own popularity ranking
    results: list[NewShopperResult]


def evaluate_new_shoppers(
    data: Interactions,
    half_life_days: float,
    say: Callable[[str], None] = lambda _: None,
    seed: int = 0,
) -> NewShopperReport:
    if data.segments is None:
        raise ValueError("the new-shopper evaluation needs each purchase's segment (the country)")
    before = data.times < RETAIL_CUTOFF
    earlier = data.subset(before)
    known_users = set(earlier.users.tolist())
    first: dict[str, tuple[str, str]] = {}  # new shopper -> (context item, segment)
    relevant: dict[str, set[str]] = {}
    later = data.subset(~before)
    for user, item, segment in zip(
        later.users.tolist(), later.items.tolist(), later.segments.tolist(), strict=True
    ):
        if user in known_users:
            continue
        if user not in first:
            first[user] = (item, segment)
        elif item != first[user][0]:
            relevant.setdefault(user, set()).add(item)
    snapshot = purchases_snapshot(earlier)
    popularity = fit_popularity(snapshot, half_life_days)
    cooccurrence = fit_cooccurrence(snapshot)
    segments = [first[user][1] for user in relevant]
    largest = max(set(segments), key=segments.count) if segments else ""
    say(
        f"new shoppers: {len(relevant)} first bought after {RETAIL_CUTOFF} and bought more than one item; "
        f"{len(popularity.segments)} segments have their own ranking; largest segment {largest!r}"
    )
    sold = np.unique(earlier.items.astype(str))
    rng = np.random.default_rng(seed)
    found: dict[str, dict[str, list[str]]] = {}
    for user in relevant:
        context, segment = first[user]
        left_out = {context}
        in_segment, _ = popularity.in_segment(segment)
        pool = sold[sold != context]
        found[user] = {
            "context: item-kNN of the item they look at": [
                c.item_id for c in neighbour_candidates(cooccurrence, [context], left_out)[:K]
            ],
            "popular in their segment": [item for item, _, _ in in_segment.top(K, left_out)],
            "most popular (baseline)": [item for item, _, _ in popularity.top(K, left_out)],
            "random (baseline)": rng.choice(pool, size=min(K, len(pool)), replace=False).tolist(),
        }
    outside = [user for user in relevant if first[user][1] != largest]
    results = []
    for method in next(iter(found.values()), {}):
        overall = float(np.mean([recall_of(found[user][method], relevant[user]) for user in relevant]))
        by_segment = "popular" in method and "random" not in method
        away = (
            float(np.mean([recall_of(found[user][method], relevant[user]) for user in outside]))
            if by_segment and outside
            else None
        )
        results.append(NewShopperResult(method, overall, away))
    return NewShopperReport(len(relevant), largest, len(outside), len(popularity.segments), results)
