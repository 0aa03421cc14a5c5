"""The learned ranker on simulated shoppers: better than retrieval's order on held-out purchases."""

import dataclasses
import time
from datetime import UTC, datetime

import grpc
import numpy as np
import pytest

from ml.artifacts import RANKER
from ml.candidates_offline import SourcesConfig, fit_sources, merged, source_lists
from ml.cooccurrence import fit_cooccurrence
from ml.ranking.config import RankerConfig
from ml.ranking.features import (
    COLUMN,
    FEATURES,
    GROUPS,
    RankCandidate,
    Shopper,
    candidate_features,
    item_table,
)
from ml.ranking.gate import PublishGate, RankerRefused, gain_interval
from ml.ranking.ranker import RankerModel
from ml.ranking.train import (
    CANDIDATES,
    _scores,
    build_lists,
    candidate_order,
    fit_ranker,
    harmful_groups,
    later_split,
    ndcg,
    nested_lists,
    shopper_of,
    training_lists,
)
from ml.validation import TIME, carve
from recsys.ranking.v1 import ranking_pb2, ranking_pb2_grpc
from services.ranking.app import build as build_ranking
from shared import sources
from shared.models import publish
from shared.sources import Placement
from tests.support import ServerThread, make_settings, purchases_snapshot
from tests.unit.ranking.conftest import ANY, TINY
from tests.unit.ranking.simulated_shop import simulated_snapshot


def test_the_ranker_puts_held_out_purchases_above_the_other_candidates(simulated_ranker) -> None:
    settings = SourcesConfig()
    fitted = fit_sources(simulated_ranker.earlier, settings, None)
    users = sorted(simulated_ranker.held_out)
    found = source_lists(fitted, {u: simulated_ranker.held_out[u].history for u in users}, CANDIDATES)
    candidates = [
        [RankCandidate(c.item_id, c.fusion_score, c.found_by) for c in merged(found[u], settings, CANDIDATES)]
        for u in users
    ]
    lists = build_lists(
        simulated_ranker.trained.table, [simulated_ranker.held_out[u] for u in users], candidates
    )
    assert len(lists) > 50 and lists.labels.sum() > 50
    learned = ndcg(_scores(simulated_ranker.trained.net, lists), lists)
    retrieval = ndcg(candidate_order(lists), lists)
    assert learned > retrieval * 1.1, (learned, retrieval)


def test_serving_orders_by_score_and_names_what_raised_each_item(simulated_ranker) -> None:
    model = RankerModel(
        simulated_ranker.trained.net.serving(),
        simulated_ranker.trained.table,
        {},
    )
    labelled = shopper_of(next(iter(simulated_ranker.held_out.values())))
    catalog = model.table.item_ids.tolist()
    candidates = [RankCandidate(item) for item in catalog if item not in set(labelled.history)][:40]
    ranked = model.rank(labelled, candidates)
    assert sorted(r.item_id for r in ranked) == sorted(c.item_id for c in candidates)
    scores = [r.score for r in ranked]
    assert scores == sorted(scores, reverse=True)
    named = [name for r in ranked for name, _ in r.contributions]
    assert named and set(named) <= {*FEATURES, "latent_factors", "item_bias"}
    assert all(value > 0 for r in ranked for _, value in r.contributions)


def test_the_same_list_scores_the_same_in_training_and_serving(simulated_ranker) -> None:
    trained = simulated_ranker.trained
    shopper = shopper_of(next(iter(simulated_ranker.held_out.values())))
    candidates = [RankCandidate(item) for item in trained.table.item_ids.tolist()[:30]]
    served = RankerModel(trained.net.serving(), trained.table, {}).rank(shopper, candidates)
    computed = candidate_features(trained.table, shopper, candidates)
    history = trained.table.positions(list(shopper.history)[:50]) + 1
    direct = trained.net.scores(computed.matrix[None], computed.rows[None] + 1, history[None]).numpy()[0]
    by_item = {c.item_id: float(s) for c, s in zip(candidates, direct, strict=True)}
    assert all(abs(r.score - by_item[r.item_id]) < 1e-4 for r in served)


def test_features_come_from_retrieval_the_history_and_the_catalog() -> None:
    snapshot = purchases_snapshot({"u1": ["tea", "mug"], "u2": ["tea", "mug", "cake"], "u3": ["cake"]})
    table = item_table(snapshot, fit_cooccurrence(snapshot), 0.0)
    candidates = [
        RankCandidate("mug", 0.02, (Placement(sources.ITEM_KNN, 0, 1.0), Placement(sources.POPULAR, 3, 2.0))),
        RankCandidate("unknown", 0.01, (Placement(sources.GENERATOR, 1, 0.7),)),
    ]
    computed = candidate_features(table, Shopper(["tea"], purchases=4, surface="cart"), candidates)
    row = dict(zip(FEATURES, computed.matrix[0].tolist(), strict=True))
    assert row["knn_rank"] == 1.0 and row["popular_rank"] == 0.25 and row["source_count"] == 2
    assert row["cooccurrence_max"] > 0 and computed.anchors == ["tea", ""]
    assert row["category_affinity"] == 1.0  # every item of this shop is in category "shop"
    assert row["buyers"] == np.float32(np.log1p(2)) and row["surface_cart"] == 1.0
    unknown = dict(zip(FEATURES, computed.matrix[1].tolist(), strict=True))
    assert unknown["gan_rank"] == 0.5 and unknown["gan_score"] == np.float32(0.7)
    assert unknown["buyers"] == 0 and computed.rows[1] == -1


def test_a_removed_group_cannot_move_the_score(simulated_ranker) -> None:
    config = RankerConfig(removed=("profile",))
    mask = config.feature_mask()
    assert all(mask[FEATURES.index(name)] == 0 for name in GROUPS["profile"])
    assert mask.sum() == len(FEATURES) - len(GROUPS["profile"])
    assert RankerConfig(removed=("collaborative",)).latent is False


def test_the_time_cut_labels_only_items_new_to_the_shopper() -> None:
    snapshot = purchases_snapshot({"u1": ["a", "b", "a", "c"], "u2": ["a", "b"]})
    carved = carve(snapshot, TIME, share=0.5)
    assert carved.fit.event_count == 3  # u1: a, b, a (time order)
    assert set(carved.held) == {"u1"} and carved.held["u1"].items == {"c"}
    assert carved.held["u1"].history == ["a", "b"] and carved.held["u1"].purchases == 3


def test_the_learned_views_feed_their_groups_and_survive_a_save(simulated_ranker, tmp_path) -> None:
    trained = simulated_ranker.trained
    views = trained.table.views
    assert views.text.shape[1] > 0 and views.graph.shape[1] > 0 and views.vae is not None
    held_out = list(simulated_ranker.held_out.values())
    gaps = {name: [] for name in ("vae_score", "text_similarity_mean", "graph_similarity_mean")}
    for labelled in held_out:
        seen = set(labelled.history)
        candidates = [RankCandidate(item) for item in trained.table.item_ids.tolist() if item not in seen]
        matrix = candidate_features(trained.table, shopper_of(labelled), candidates).matrix
        bought = np.array([c.item_id in labelled.items for c in candidates])
        for name, values in gaps.items():
            column = matrix[:, COLUMN[name]]
            assert np.std(column) > 0, name
            values.append(column[bought].mean() - column[~bought].mean())
    # each view scores the items the shoppers went on to buy above the others, on average
    for name, values in gaps.items():
        assert np.mean(values) > 0, (name, np.mean(values))
    shopper = shopper_of(held_out[0])
    candidates = [RankCandidate(item) for item in trained.table.item_ids.tolist()[:40]]
    in_memory = RankerModel(trained.net.serving(), trained.table, {}).rank(shopper, candidates)
    trained.save(tmp_path)
    loaded = RankerModel.load(tmp_path).rank(shopper, candidates)
    assert [(r.item_id, round(r.score, 4)) for r in loaded] == [
        (r.item_id, round(r.score, 4)) for r in in_memory
    ]


def test_the_served_ranker_scores_the_same_whatever_the_time_of_the_request(
    simulated_ranker, tmp_path
) -> None:
    """No feature reads a clock: a night request and a Monday-morning one get the same scores."""
    settings = make_settings(str(tmp_path))
    publish(settings.model_dir, RANKER, simulated_ranker.trained.save)
    shopper = shopper_of(next(iter(simulated_ranker.held_out.values())))
    catalog = simulated_ranker.trained.table.item_ids.tolist()
    candidates = [ranking_pb2.RankCandidate(item_id=i) for i in catalog if i not in shopper.history][:30]
    server = ServerThread(build_ranking, settings)
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = ranking_pb2_grpc.RankingServiceStub(channel)
            answers = []
            for moment in (datetime(2024, 3, 2, 3, 0, tzinfo=UTC), datetime(2024, 3, 4, 9, 30, tzinfo=UTC)):
                request = ranking_pb2.RankRequest(
                    user_id="u", history_item_ids=shopper.history, candidates=candidates, surface="home"
                )
                request.request_time.FromDatetime(moment)
                answers.append(stub.Rank(request, timeout=10))
    finally:
        server.stop()
    night, morning = ([(item.item_id, item.score) for item in answer.items] for answer in answers)
    assert night == morning
    assert answers[0].model_version.version > 0  # the learned ranker answered, not the baseline
    assert not {name for name in FEATURES if "hour" in name or "weekday" in name}


@pytest.fixture(scope="module")
def simulated_lists():
    earlier = carve(simulated_snapshot(500, 150, 60), TIME, share=0.25).fit
    lists, vocabulary = training_lists(earlier, SourcesConfig(), None, validation=carve(earlier, TIME))
    return earlier, lists, vocabulary


def test_a_ranker_from_too_few_lists_is_refused_with_the_counts(simulated_lists) -> None:
    earlier, lists, vocabulary = simulated_lists
    gate = PublishGate(min_training_lists=len(lists), min_validation_lists=1)
    with pytest.raises(RankerRefused, match=r"\d+ to learn from and \d+ to validate on, fewer than"):
        fit_ranker(earlier, SourcesConfig(), lists, vocabulary, TINY, gate=gate)


def test_a_ranker_that_learned_nothing_is_refused_for_its_gain(simulated_lists) -> None:
    """Untrained weights score candidates at random: no surer gain over the candidate order."""
    earlier, lists, vocabulary = simulated_lists
    untrained = RankerConfig(dim=8, hidden=(16,), max_epochs=0)
    gate = PublishGate(min_training_lists=1, min_validation_lists=1)
    with pytest.raises(RankerRefused, match=r"95% interval \[[-+]\d\.\d{4}, [-+]\d\.\d{4}\] over \d+ lists"):
        fit_ranker(earlier, SourcesConfig(), lists, vocabulary, untrained, gate=gate)


def test_a_feature_group_that_misleads_on_validation_is_left_out(simulated_lists) -> None:
    """The item group's price column tells the bought items apart in half the lists the ranker
    learns from (the other half teaches the real features) and points the wrong way in the lists
    it is validated on: the group gate finds it, the ranker is retrained without it, and the
    figures say so."""
    earlier, shared_lists, vocabulary = simulated_lists
    lists = shared_lists.take(np.arange(len(shared_lists)))  # a copy: the fixture is shared
    validation_rows = np.flatnonzero(lists.later)  # after a time carve: the later purchases
    assert len(validation_rows) > 0
    marked = lists.later | (np.arange(len(lists)) % 2 == 0)
    signal = np.where(lists.later[:, None], 1.0 - lists.labels, lists.labels) * lists.valid * marked[:, None]
    lists.features[..., COLUMN["price"]] = 100.0 * signal
    gate = PublishGate(min_training_lists=1, min_validation_lists=1, require_gain=False)
    # Fast enough to lean on the false signal within its first epochs.
    trusting = dataclasses.replace(TINY, learning_rate=0.05)
    ungated = dataclasses.replace(gate, drop_harmful_groups=False)
    misled = fit_ranker(earlier, SourcesConfig(), lists, vocabulary, trusting, gate=ungated)
    assert "item" in harmful_groups(misled.net, lists.take(validation_rows), gate)
    gated = fit_ranker(earlier, SourcesConfig(), lists, vocabulary, trusting, gate=gate)
    assert "item" in gated.dropped and "item" in gated.net.config.removed
    assert gated.validation_ndcg > misled.validation_ndcg


def test_after_a_time_carve_the_ranker_is_validated_on_later_purchases(simulated_lists) -> None:
    """Each shopper's held items split in time: the later lists hold only the latest purchases and
    never the earlier ones, as candidates or as positives; the ranker is judged on them."""
    earlier, lists, vocabulary = simulated_lists
    carved = carve(earlier, TIME)
    split = later_split(list(carved.held.values()))
    assert split is not None
    first, last, boundary = split
    assert boundary <= min(t for held in last for item, t in held.first_bought.items() if item in held.items)
    for before, after in zip(first, last, strict=True):
        assert before.items.isdisjoint(after.items)
        assert before.items | after.items == after.first_bought.keys()
        assert all(after.first_bought[item] < boundary for item in before.items)
    assert 0 < lists.later.sum() < len(lists)
    trained = fit_ranker(earlier, SourcesConfig(), lists, vocabulary, TINY, gate=ANY)
    assert trained.validation_lists == lists.later.sum()
    assert later_split([dataclasses.replace(h, first_bought={}) for h in carved.held.values()]) is None


def test_the_gain_interval_is_paired_and_tightens_with_more_lists() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(400)
    better = base + 0.05 + rng.normal(0, 0.05, 400)
    mean, low, high = gain_interval(better, base, PublishGate())
    assert low > 0 and low < mean < high
    few = gain_interval(better[:20], base[:20], PublishGate())
    assert few[2] - few[1] > high - low


def test_nested_carves_add_lists_to_learn_from_inside_the_fitting_part(simulated_lists) -> None:
    """The nested carve holds out only purchases of the outer carve's fitting part (never one the
    gate judges on), and its lists are all for learning."""
    earlier, lists, vocabulary = simulated_lists
    outer = carve(earlier, TIME)
    seen: list = []
    more = nested_lists(outer, SourcesConfig(), vocabulary, 1, on_carve=lambda _, inner: seen.append(inner))
    assert more is not None and len(more) > 0 and not more.later.any()
    (inner,) = seen
    fitted_pairs = set(zip(outer.fit.user_ids.tolist(), outer.fit.item_ids.tolist(), strict=True))
    held_outside = {(user, item) for user, shopper in outer.held.items() for item in shopper.items}
    for user, shopper in inner.held.items():
        for item in shopper.items:
            assert (user, item) in fitted_pairs and (user, item) not in held_outside
    assert more.features.shape[1:] == lists.features.shape[1:]
    trained = fit_ranker(earlier, SourcesConfig(), lists, vocabulary, TINY, gate=ANY, more=more)
    assert trained.lists == len(lists) + len(more)
    assert trained.validation_lists == lists.later.sum()  # the gate's lists are the outer carve's alone


def test_the_ranker_learns_only_from_the_sources_serving_computes() -> None:
    from ml.ranking.train import _candidates
    from ml.retrieval import Fusion, Retrieved
    from ml.validation import Held

    def listed(source: str, *items: str) -> list[Retrieved]:
        return [Retrieved(item, source, 1.0 / (rank + 1)) for rank, item in enumerate(items)]

    found = {
        sources.GENERATOR: listed(sources.GENERATOR, "a", "b"),
        sources.ITEM_KNN: listed(sources.ITEM_KNN, "a", "e"),
        sources.EASE: listed(sources.EASE, "b", "c"),
        sources.POPULAR: listed(sources.POPULAR, "c", "d"),
    }
    held = Held(history=["x"], purchases=1, last_active=0.0, items={"b"})
    # the generator dropped in training (no weight, no quota): serving never asks the model server
    dropped = SourcesConfig(fusion=Fusion({sources.EASE: 1.0}, {sources.EASE: 0.5}))
    seen = {p.source for c in _candidates(found, held, dropped) for p in c.found_by}
    # the in-process sources stay, weight or not: serving computes them and the ranker reads them
    assert seen == {sources.ITEM_KNN, sources.EASE, sources.POPULAR}
    kept = SourcesConfig(fusion=Fusion({sources.EASE: 1.0, sources.GENERATOR: 0.5}, {}))
    assert sources.GENERATOR in {p.source for c in _candidates(found, held, kept) for p in c.found_by}


def test_past_its_deadline_the_ranker_trains_one_network_for_its_minimum_epochs(simulated_lists) -> None:
    earlier, lists, vocabulary = simulated_lists
    in_time = fit_ranker(earlier, SourcesConfig(), lists, vocabulary, TINY, gate=ANY)
    late = fit_ranker(
        earlier, SourcesConfig(), lists, vocabulary, TINY, gate=ANY, deadline=time.monotonic() - 1
    )
    assert len(in_time.epochs) == TINY.members and in_time.cut == ()
    assert len(late.epochs) == 1 and late.epochs[0] <= TINY.min_epochs
    assert late.cut == (f"1 of {TINY.members} networks",)
