import dataclasses
from pathlib import Path

import numpy as np
import pytest

from ml.artifacts import CooccurrenceModel, PopularityModel
from ml.cooccurrence import fit_cooccurrence
from ml.popularity import fit_popularity
from ml.retrieval import Retrieved, merge, neighbour_candidates
from shared import sources
from tests.support import purchases_snapshot

BASKETS = {
    "u1": ["tea", "mug", "milk"],
    "u2": ["tea", "mug"],
    "u3": ["tea", "mug", "cake"],
    "u4": ["beer", "crisps"],
    "u5": ["beer", "crisps", "tea", "tea"],
}


def test_popularity_counts_distinct_buyers() -> None:
    model = fit_popularity(purchases_snapshot(BASKETS))
    ranked = dict(zip(model.item_ids.tolist(), model.scores.tolist(), strict=True))
    assert ranked["tea"] == 4  # u5 bought tea twice: one buyer
    assert ranked["mug"] == 3
    assert model.item_ids[0] == "tea"
    assert model.top(2, exclude={"tea"}) == [("mug", 3.0, 3), ("beer", 2.0, 2)]


def test_cooccurrence_is_cosine_over_buyers(tmp_path: Path) -> None:
    model = fit_cooccurrence(purchases_snapshot(BASKETS), k=3)
    similar = dict(model.similar("mug"))
    assert similar["tea"] == pytest.approx(3 / np.sqrt(3 * 4), rel=1e-6)
    assert "beer" not in similar
    assert next(iter(dict(model.similar("beer")))) == "crisps"
    assert "mug" not in similar
    model.save(tmp_path)
    loaded = CooccurrenceModel.load(tmp_path)
    assert loaded.similar("mug") == model.similar("mug")
    assert loaded.similar("unknown") == []


def test_cooccurrence_retrieval_names_its_anchor_and_skips_excluded() -> None:
    model = fit_cooccurrence(purchases_snapshot(BASKETS), k=5)
    found = neighbour_candidates(model, ["mug", "beer"], exclude={"tea"})
    ids = [c.item_id for c in found]
    assert "tea" not in ids
    assert set(ids) == {"milk", "cake", "crisps"}
    assert {c.item_id: c.anchor_item_id for c in found}["crisps"] == "beer"
    assert all(c.source == sources.ITEM_KNN for c in found)
    assert neighbour_candidates(None, ["mug"], set()) == []


def test_recency_decay_lets_the_latest_item_lead() -> None:
    """Flat, the older items' neighbours outvote the latest's; with a steep decay the latest leads."""
    model = fit_cooccurrence(purchases_snapshot(BASKETS), k=5)
    history = ["beer", "milk", "mug"]  # beer is the latest
    flat = neighbour_candidates(model, history, set(history))
    steep = neighbour_candidates(model, history, set(history), decay=0.1)
    assert (flat[0].item_id, flat[0].anchor_item_id) == ("tea", "mug")
    assert (steep[0].item_id, steep[0].anchor_item_id) == ("crisps", "beer")
    assert {c.item_id for c in flat} == {c.item_id for c in steep}
    assert neighbour_candidates(model, history, set(history), decay=1.0) == flat
    with pytest.raises(ValueError, match="recency decay"):
        neighbour_candidates(model, history, set(), decay=0.0)


def test_a_steep_decay_reads_only_the_anchors_that_still_weigh() -> None:
    """At decay 0.5 an anchor ten steps back weighs under 1e-3: its neighbours are not read."""
    model = fit_cooccurrence(purchases_snapshot(BASKETS), k=5)
    history = ["milk"] * 10 + ["beer"]  # beer is 10 steps back
    assert "crisps" not in {c.item_id for c in neighbour_candidates(model, history, set(history), decay=0.5)}
    assert "crisps" in {c.item_id for c in neighbour_candidates(model, history, set(history), decay=0.9)}


def fused(*names: str, source: str, anchor: str = "") -> list[Retrieved]:
    return [Retrieved(name, source, 10.0 - rank, anchor) for rank, name in enumerate(names)]


def test_fusion_lifts_items_several_sources_agree_on_and_keeps_the_leading_source() -> None:
    lists = {
        "gan": fused("a", "b", "c", source="gan"),
        "knn": fused("c", "d", source="knn", anchor="mug"),
    }
    merged = merge(lists, {"gan": 1.0, "knn": 1.0}, {}, count=3)
    # c: 1/63 + 1/61 beats a: 1/61, which beats b: 1/62; d (1/62, same as b) loses the tie on id
    assert [c.item_id for c in merged] == ["c", "a", "b"]
    top = merged[0]
    assert top.source == "knn" and top.score == 10.0  # knn ranked it first: the larger share
    assert top.anchor_item_id == "mug"
    assert top.fusion_score == pytest.approx(1 / 63 + 1 / 61)
    assert [c.anchor_item_id for c in merged[1:]] == ["", ""]  # knn never found a or b


def test_each_source_keeps_its_quota_whatever_the_fusion_says() -> None:
    lists = {
        "gan": fused(*[f"g{i}" for i in range(10)], source="gan"),
        "popular": fused(*[f"p{i}" for i in range(10)], source="popular"),
    }
    weights = {"gan": 1.0, "popular": 0.1}
    assert {c.source for c in merge(lists, weights, {}, 10)} == {"gan"}
    merged = merge(lists, weights, {"popular": 0.3}, 10)
    assert [c.item_id for c in merged if c.source == "popular"] == ["p0", "p1", "p2"]
    assert [c.item_id for c in merged[:7]] == [f"g{i}" for i in range(7)]  # ordered by fused score
    assert len({c.item_id for c in merged}) == 10


def test_popularity_weighs_each_buyer_by_the_age_of_their_latest_purchase() -> None:
    day = 86_400.0
    snapshot = purchases_snapshot({"u1": ["old", "new"], "u2": ["old"], "u3": ["new"], "u4": ["old"]})
    # old: bought by three shoppers 14 days before the newest event; new: by two, today
    times = np.array([0.0, 14 * day, 0.0, 14 * day, 0.0])
    model = fit_popularity(dataclasses.replace(snapshot, timestamps=times), half_life_days=7)
    ranked = {item: (score, buyers) for item, score, buyers in model.top(2, set())}
    assert model.item_ids[0] == "new"
    assert ranked["new"] == (pytest.approx(2.0), 2)
    assert ranked["old"] == (pytest.approx(3 * 0.25), 3)
    assert fit_popularity(snapshot).item_ids[0] == "old"  # no half-life: every buyer counts one


def test_empty_snapshot_gives_empty_models() -> None:
    empty = purchases_snapshot({})
    assert len(fit_popularity(empty).item_ids) == 0
    assert fit_cooccurrence(empty).similar("x") == []
    assert PopularityModel(np.array([], dtype=str), np.array([]), np.array([])).top(5, set()) == []


def test_an_anchor_always_belongs_to_the_source_that_is_named() -> None:
    lists = {
        sources.GENERATOR: [Retrieved("pot", sources.GENERATOR, 0.9)],
        sources.ITEM_KNN: [Retrieved("cup", sources.ITEM_KNN, 0.5, "mug")],
        sources.ITEM_TEXT: [
            Retrieved("lid", sources.ITEM_TEXT, 0.8, "jar"),
            Retrieved("pot", sources.ITEM_TEXT, 0.7, "pan"),
            Retrieved("cup", sources.ITEM_TEXT, 0.6, "bowl"),
        ],
    }
    weights = {sources.GENERATOR: 1.0, sources.ITEM_KNN: 1.0, sources.ITEM_TEXT: 0.5}
    merged = {c.item_id: c for c in merge(lists, weights, {}, 10)}
    assert (merged["lid"].source, merged["lid"].anchor_item_id) == (sources.ITEM_TEXT, "jar")
    # the generator leads "pot": the text source's anchor would be a claim the generator never made
    assert (merged["pot"].source, merged["pot"].anchor_item_id) == (sources.GENERATOR, "")
    assert (merged["cup"].source, merged["cup"].anchor_item_id) == (sources.ITEM_KNN, "mug")


def test_a_cut_list_is_the_head_of_the_whole_list_ties_by_item_id() -> None:
    """The cut keeps every item tied with the last one kept until the ids decide."""
    rng = np.random.default_rng(4)
    items = np.array([f"i{n:03d}" for n in range(120)])
    neighbours = np.array([rng.permutation(120)[:40] for _ in range(120)])
    scores = rng.choice([0.25, 0.5, 1.0], size=(120, 40))  # few distinct values: many ties
    model = CooccurrenceModel(item_ids=items, neighbours=neighbours, scores=scores)
    history = [f"i{n:03d}" for n in rng.permutation(120)[:8]]
    whole = neighbour_candidates(model, history, set(history[:2]))
    assert len(whole) > 30
    keys = [(-c.score, c.item_id) for c in whole]
    assert keys == sorted(keys)
    for count in (1, 7, 30):
        assert neighbour_candidates(model, history, set(history[:2]), count=count) == whole[:count]
