from pathlib import Path

import numpy as np
import pytest

from services.candidates.retrieval import Retrieved, item_knn_candidates, merge
from services.candidates.train import fit_cooccurrence
from services.items.train import fit_popularity
from shared import sources
from shared.artifacts import CooccurrenceModel, PopularityModel
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
    assert model.top(2, exclude={"tea"}) == [("mug", 3.0), ("beer", 2.0)]


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
    found = item_knn_candidates(model, ["mug", "beer"], exclude={"tea"})
    ids = [c.item_id for c in found]
    assert "tea" not in ids
    assert set(ids) == {"milk", "cake", "crisps"}
    assert {c.item_id: c.anchor_item_id for c in found}["crisps"] == "beer"
    assert all(c.source == sources.ITEM_KNN for c in found)
    assert item_knn_candidates(None, ["mug"], set()) == []


def test_merge_keeps_first_occurrence_in_source_order_up_to_count() -> None:
    first = [Retrieved("a", "x", 1.0), Retrieved("b", "x", 0.5)]
    second = [Retrieved("b", "y", 9.0), Retrieved("c", "y", 8.0), Retrieved("d", "y", 7.0)]
    merged = merge({"x": first, "y": second}, {}, count=3)
    assert [(c.item_id, c.source) for c in merged] == [("a", "x"), ("b", "x"), ("c", "y")]


def test_merge_gives_each_source_its_quota_first_then_fills_in_source_order() -> None:
    gan = [Retrieved(f"g{i}", "gan", 1.0) for i in range(10)]
    knn = [Retrieved("g0", "knn", 1.0)] + [Retrieved(f"k{i}", "knn", 1.0) for i in range(10)]
    popular = [Retrieved(f"p{i}", "popular", 1.0) for i in range(10)]
    merged = merge({"gan": gan, "knn": knn, "popular": popular}, {"gan": 0.5, "knn": 0.3, "popular": 0.2}, 10)
    ids = [c.item_id for c in merged]
    assert ids == ["g0", "g1", "g2", "g3", "g4", "k0", "k1", "k2", "p0", "p1"]
    assert len(set(ids)) == len(ids)
    # a source short of its quota leaves its slots to the others, in source order
    merged = merge(
        {"gan": gan[:2], "knn": knn, "popular": popular}, {"gan": 0.5, "knn": 0.3, "popular": 0.2}, 10
    )
    assert [c.item_id for c in merged] == ["g0", "g1", "k0", "k1", "k2", "p0", "p1", "k3", "k4", "k5"]


def test_empty_snapshot_gives_empty_models() -> None:
    empty = purchases_snapshot({})
    assert len(fit_popularity(empty).item_ids) == 0
    assert fit_cooccurrence(empty).similar("x") == []
    assert PopularityModel(np.array([], dtype=str), np.array([])).top(5, set()) == []
