"""Runs an evaluation: tune baselines on a validation split, score them and any other rankings."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ml import metrics
from ml.baselines import EASE, ItemKNN, MostPopular, RecencyWeighted, Recommender
from tools.evaluation.offline import rank
from tools.evaluation.protocols import Split, recency_weighted, validation
from tools.evaluation.report import BASELINE_MARK, ModelResult

CURVE_KS = (1, 2, 5, 10, 15, 20, 30, 40, 50)
# The depth of a candidate list: Recall@200 says how much a ranker could still find.
DEEP_K = 200
TUNING_K = 20
GRIDS: dict[str, tuple[Callable[[float], Recommender], Sequence[float]]] = {
    "item-kNN": (lambda k: ItemKNN(int(k)), (10, 25, 50, 100, 200)),
    "EASE": (lambda l2: EASE(l2), (25, 50, 100, 200, 400, 800)),
}
# Time-aware baselines: a half-life (days) tuned on validation, with the family's own best value.
HALF_LIVES = (1.0, 3.0, 7.0, 14.0, 30.0, 90.0)


def score(
    name: str, rankings: Mapping[int, Sequence[int]], split: Split, params: dict[str, float], seconds: float
) -> ModelResult:
    """All metrics of `rankings` (item indices of `split`) at every K of the curves, and Recall@200
    when the rankings are that deep."""
    popularity = dict(enumerate(np.asarray(split.train.sum(axis=0)).ravel().tolist()))
    vectors = split.train.T.tocsr()
    shown = {i for ranked in rankings.values() for i in list(ranked[:TUNING_K])}
    item_vectors = {i: vectors[i].toarray().ravel() for i in shown}
    return ModelResult(
        name=name,
        params=params,
        at_k={k: metrics.mean_metrics(rankings, split.test, k) for k in CURVE_KS},
        beyond={
            "coverage": metrics.coverage(rankings, TUNING_K, len(split.item_ids)),
            "ild": metrics.intra_list_diversity(rankings, TUNING_K, item_vectors),
            "novelty": metrics.novelty(rankings, TUNING_K, popularity, len(split.user_ids)),
        },
        seconds=seconds,
        recall_deep=(
            metrics.mean_metrics(rankings, split.test, DEEP_K)["recall"]
            if any(len(ranked) > max(CURVE_KS) for ranked in rankings.values())
            else None
        ),
    )


def tune(family: str, inner: Split, progress: Callable[[str], None]) -> tuple[float, dict[float, float]]:
    """The grid value with the best NDCG@20 on `inner`, a validation split carved from training only."""
    make, grid = GRIDS[family]
    found = {}
    for value in grid:
        model = make(value).fit(inner.train)
        found[value] = metrics.mean_metrics(rank(model, inner, TUNING_K), inner.test, TUNING_K)["ndcg"]
        progress(f"{family} {value:g}: validation NDCG@20 {found[value]:.4f}")
    return max(found, key=found.__getitem__), found


def tune_half_life(
    make: Callable[[], Recommender], inner: Split, label: str, progress: Callable[[str], None]
) -> float:
    """The half-life with the best NDCG@20 on the validation split `inner` for `make()` fitted on
    recency-weighted rows."""
    found = {}
    for half_life in HALF_LIVES:
        model = RecencyWeighted(make(), recency_weighted(inner, half_life), half_life).fit(inner.train)
        found[half_life] = metrics.mean_metrics(rank(model, inner, TUNING_K), inner.test, TUNING_K)["ndcg"]
        progress(f"{label}, half-life {half_life:g} d: validation NDCG@20 {found[half_life]:.4f}")
    return max(found, key=found.__getitem__)


def _timed(model: Recommender, split: Split, params: dict[str, float]) -> ModelResult:
    started = time.perf_counter()
    model.fit(split.train)
    name = f"{model.name}, {BASELINE_MARK}"
    return score(name, rank(model, split, DEEP_K), split, params, time.perf_counter() - started)


def baselines(split: Split, progress: Callable[[str], None] = lambda _: None) -> list[ModelResult]:
    """Most popular, item-kNN and EASE tuned on validation, and the time-aware ones: popular lately
    and EASE with recency-weighted rows (its λ the plain EASE's, its half-life tuned)."""
    results = [_timed(MostPopular(), split, {})]
    inner = validation(split)
    best = {}
    for family, (make, _) in GRIDS.items():
        best[family], _ = tune(family, inner, progress)
        results.append(_timed(make(best[family]), split, {"value": best[family]}))
    for label, make in (
        ("popular lately", MostPopular),
        ("EASE, recency-weighted", lambda: EASE(best["EASE"])),
    ):
        half_life = tune_half_life(make, inner, label, progress)
        model = RecencyWeighted(make(), recency_weighted(split, half_life), half_life)
        results.append(_timed(model, split, {"half_life_days": half_life}))
    return results
