"""Candidate sources evaluated offline with the candidates service's own code."""

import numpy as np

from ml.candidates_offline import SourcesConfig
from ml.gan.model import GanConfig
from ml.gan.train import fit_gan
from shared import sources
from tools.evaluation.candidates import MERGED, recent_histories, source_rankings, training_snapshot
from tools.evaluation.protocols import Interactions, retail_temporal


def shop_log() -> Interactions:
    """30 shoppers over 12 items in October; after the cutoff each buys one item new to them."""
    rng = np.random.default_rng(3)
    rows = []
    for user in range(30):
        bought = rng.choice(12, size=4, replace=False)
        for day, item in enumerate(bought[:3], start=1):
            rows.append((f"u{user}", f"i{item}", f"2011-10-{day:02d} 10:00:00"))
        rows.append((f"u{user}", f"i{bought[3]}", "2011-11-05 10:00:00"))
    users, items, times = (np.array(column) for column in zip(*rows, strict=True))
    order = np.argsort(times, kind="stable")
    return Interactions(users[order], items[order], times[order])


def test_histories_are_training_items_most_recent_first() -> None:
    split = retail_temporal(shop_log())
    histories = recent_histories(split)
    assert set(histories) == set(split.test)
    data = split.train_interactions
    user = next(iter(histories))
    mine = [
        i for u, i in zip(data.users.tolist(), data.items.tolist(), strict=True) if u == split.user_ids[user]
    ]
    assert histories[user] == list(dict.fromkeys(reversed(mine)))
    assert training_snapshot(split).event_count == len(data.users)


def test_every_source_and_the_merge_rank_only_new_items() -> None:
    split = retail_temporal(shop_log())
    found = source_rankings(
        split,
        SourcesConfig(),
        lambda snapshot: fit_gan(snapshot, GanConfig(max_epochs=2, min_epochs=1, hidden=16)),
    )
    assert set(found.rankings) == {sources.GENERATOR, sources.ITEM_KNN, sources.EASE, sources.POPULAR, MERGED}
    for name, rankings in found.rankings.items():
        assert set(rankings) == set(split.test), name
        for user, ranked in rankings.items():
            assert len(ranked) == len(set(ranked)), name
            assert not set(ranked) & set(split.train[user].indices), name  # never a training item
    merged = found.rankings[MERGED]
    for user in split.test:
        pooled = {
            i
            for name in (sources.GENERATOR, sources.ITEM_KNN, sources.POPULAR)
            for i in found.rankings[name][user]
        }
        assert set(merged[user]) == pooled  # 12 items: every source's items fit in the merge
