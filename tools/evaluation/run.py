"""Runs an evaluation: tune baselines on a validation split, score them and any other rankings."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ml import metrics
from ml.baselines import EASE, ItemKNN, MostPopular, Recommender
from tools.evaluation.offline import rank
from tools.evaluation.protocols import Split, validation
from tools.evaluation.report import ModelResult

CURVE_KS = (1, 2, 5, 10, 15, 20, 30, 40, 50)
# The depth of a candidate list: Recall@200 says how much a ranker could still find.
DEEP_K = 200
TUNING_K = 20
GRIDS: dict[str, tuple[Callable[[float], Recommender], Sequence[float]]] = {
    "item-kNN": (lambda k: ItemKNN(int(k)), (10, 25, 50, 100, 200)),
    "EASE": (lambda l2: EASE(l2), (25, 50, 100, 200, 400, 800)),
}


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


def tune(family: str, split: Split, progress: Callable[[str], None]) -> tuple[float, dict[float, float]]:
    """The grid value with the best NDCG@20 on a validation split carved from training only."""
    make, grid = GRIDS[family]
    inner = validation(split)
    found = {}
    for value in grid:
        model = make(value).fit(inner.train)
        found[value] = metrics.mean_metrics(rank(model, inner, TUNING_K), inner.test, TUNING_K)["ndcg"]
        progress(f"{family} {value:g}: validation NDCG@20 {found[value]:.4f}")
    return max(found, key=found.__getitem__), found


def baselines(split: Split, progress: Callable[[str], None] = lambda _: None) -> list[ModelResult]:
    results = []
    started = time.perf_counter()
    popular = MostPopular().fit(split.train)
    results.append(
        score(popular.name, rank(popular, split, DEEP_K), split, {}, time.perf_counter() - started)
    )
    for family, (make, _) in GRIDS.items():
        best, _ = tune(family, split, progress)
        started = time.perf_counter()
        model = make(best).fit(split.train)
        rankings = rank(model, split, DEEP_K)
        results.append(score(model.name, rankings, split, {"value": best}, time.perf_counter() - started))
    return results
