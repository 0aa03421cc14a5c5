"""The ranker's ablation on a split: candidates alone, the ranker, and the ranker without each group.

Everything is fitted on the training part only. The test users' candidate lists
come from the sources fitted on all of it (what the served suite would retrieve);
each ranker variant learns from the lists of a validation split carved inside it (see
ml/validation.py and ml/ranking/train.py) and reorders the same test lists through the serving code.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np

from ml.ranking.config import RankerConfig
from ml.ranking.features import GROUPS, RankCandidate, Shopper
from ml.ranking.gate import PublishGate
from ml.ranking.ranker import RankerModel
from ml.ranking.train import TrainedRanker, fit_ranker, published_table, training_lists
from ml.sentiment import scored_reviews
from ml.snapshot import REVIEW, Snapshot
from pipelines.settings import TrainingSettings
from recsys.common.v1 import common_pb2
from tools.evaluation.candidates import MERGED, recent_histories, test_candidates, training_snapshot
from tools.evaluation.datasets import Reviews
from tools.evaluation.protocols import Split
from tools.evaluation.report import ModelResult, mean_of_seeds
from tools.evaluation.run import score

# The ablation measures every variant, whether or not it would be published.
MEASURE_EVERY_RANKER = PublishGate(
    min_training_lists=1, min_validation_lists=1, require_gain=False, drop_harmful_groups=False
)

CANDIDATES_ALONE = "candidates alone (fused order)"
RANKER = "ranker"


def reviewed_snapshot(split: Split, catalog: Sequence[common_pb2.Item], reviews: Reviews | None) -> Snapshot:
    """The training snapshot with the reviews a shop would hold at its end, scored
    (ml/sentiment.py): those of pairs bought in the training part, written by its last purchase."""
    snapshot = training_snapshot(split, catalog)
    if reviews is None:
        return snapshot
    bought = set(zip(snapshot.user_ids.tolist(), snapshot.item_ids.tolist(), strict=True))
    known = np.array(
        [(u, i) in bought for u, i in zip(reviews.users.tolist(), reviews.items.tolist(), strict=True)],
        dtype=bool,
    )
    keep = known & (reviews.timestamps <= snapshot.timestamps.max())
    count, added = snapshot.event_count, int(keep.sum())
    texts = reviews.texts[keep]
    with_text = np.flatnonzero(texts != "")
    joined = dataclasses.replace(
        snapshot,
        user_ids=np.concatenate([snapshot.user_ids, reviews.users[keep]]),
        item_ids=np.concatenate([snapshot.item_ids, reviews.items[keep]]),
        types=np.concatenate([snapshot.types, np.full(added, REVIEW, dtype=snapshot.types.dtype)]),
        timestamps=np.concatenate([snapshot.timestamps, reviews.timestamps[keep]]),
        quantities=np.concatenate([snapshot.quantities, np.zeros(added, dtype=snapshot.quantities.dtype)]),
        ratings=np.concatenate([np.zeros(count, dtype=np.int32), reviews.ratings[keep]]),
        review_rows=count + with_text,
        review_texts=texts[with_text],
    )
    return scored_reviews(joined, None)


def _shoppers(split: Split, snapshot: Snapshot) -> dict[int, Shopper]:
    """Each test user as the gateway would describe them: history, purchases, last purchase."""
    users = snapshot.interactions()[0]
    purchases = dict(zip(*np.unique(users, return_counts=True), strict=True))
    last_active = dict(zip(users.tolist(), snapshot.interaction_times().tolist(), strict=True))
    return {
        user: Shopper(history, int(purchases[split.user_ids[user]]), last_active[split.user_ids[user]])
        for user, history in recent_histories(split).items()
    }


def _reordered(
    trained: TrainedRanker, lists: dict[int, list[RankCandidate]], shoppers: dict[int, Shopper], split: Split
) -> dict[int, list[int]]:
    model = RankerModel(trained.net.serving(), trained.table, {})
    positions = {item: index for index, item in enumerate(split.item_ids.tolist())}
    return {
        user: [positions[r.item_id] for r in model.rank(shoppers[user], found) if r.item_id in positions]
        for user, found in lists.items()
    }


def ablation(
    split: Split,
    catalog: Sequence[common_pb2.Item],
    settings: TrainingSettings,
    fit_generator: Callable[[Snapshot], object] | None,
    progress: Callable[[str], None] = lambda _: None,
    seeds: int = 1,
    groups: Sequence[str] = tuple(GROUPS),
    reviews: Reviews | None = None,
) -> list[ModelResult]:
    """The ranker, and the ranker without each of `groups`. Each variant is trained `seeds` times
    (seeds 0..seeds-1: initialization, batch order and the early-stopping share differ) and
    reported by its mean. The shop's `reviews`, when given, reach the ranker's review features."""
    snapshot = reviewed_snapshot(split, catalog, reviews)
    started = time.perf_counter()
    found, _ = test_candidates(snapshot, split, settings.sources, fit_generator)
    lists = {
        user: [RankCandidate(c.item_id, c.fusion_score, c.found_by) for c in sources[MERGED]]
        for user, sources in found.items()
    }
    positions = {item: index for index, item in enumerate(split.item_ids.tolist())}
    alone = {user: [positions[c.item_id] for c in found_list] for user, found_list in lists.items()}
    results = [score(CANDIDATES_ALONE, alone, split, {}, time.perf_counter() - started)]
    progress(f"test candidates ready in {time.perf_counter() - started:.0f}s; training lists next")
    training, vocabulary = training_lists(snapshot, settings.sources, fit_generator)
    table = published_table(snapshot, settings.sources, vocabulary)
    shoppers = _shoppers(split, snapshot)
    for removed in [None, *groups]:
        name = RANKER if removed is None else f"ranker without {removed}"
        per_seed = []
        for seed in range(seeds):
            started = time.perf_counter()
            config = RankerConfig(removed=(removed,) if removed else (), seed=seed)
            trained = fit_ranker(
                snapshot,
                settings.sources,
                training,
                vocabulary,
                config,
                table=table,
                gate=MEASURE_EVERY_RANKER,
            )
            result = score(
                name, _reordered(trained, lists, shoppers, split), split, {}, time.perf_counter() - started
            )
            progress(
                f"{name} (seed {seed}): best epoch {trained.epochs}, NDCG@20 {result.at_k[20]['ndcg']:.4f}, "
                f"R@20 {result.at_k[20]['recall']:.4f}"
            )
            per_seed.append(result)
        results.append(mean_of_seeds(per_seed))
    return results
