"""Candidates service over real gRPC: item-kNN and popular items from the items service, fused."""

from pathlib import Path

import grpc
import pytest

from recsys.candidates.v1 import candidates_pb2, candidates_pb2_grpc
from recsys.common.v1 import common_pb2
from recsys.items.v1 import items_pb2, items_pb2_grpc
from services.candidates.app import build as build_candidates
from services.candidates.train import fit_cooccurrence
from services.items.app import build as build_items
from services.items.train import fit_popularity
from shared.artifacts import COOCCURRENCE, POPULARITY
from shared.cli.supervisor import free_port
from shared.models import publish
from tests.support import ServerThread, make_settings, purchases_snapshot, suite_env
from tests.unit.candidates.test_training_and_retrieval import BASKETS


@pytest.fixture
def settings(tmp_path: Path):
    settings = make_settings(str(tmp_path), **suite_env())
    snapshot = purchases_snapshot(BASKETS)
    publish(settings.model_dir, COOCCURRENCE, fit_cooccurrence(snapshot).save)
    publish(settings.model_dir, POPULARITY, fit_popularity(snapshot).save)
    return settings


def generate(server: ServerThread, **fields) -> candidates_pb2.GenerateResponse:
    with grpc.insecure_channel(server.address) as channel:
        return candidates_pb2_grpc.CandidatesServiceStub(channel).Generate(
            candidates_pb2.GenerateRequest(user_id="u", **fields), timeout=5
        )


def test_item_knn_and_popular_are_fused_without_excluded_items(settings) -> None:
    items = ServerThread(build_items, settings, settings.ports["items"])
    candidates = ServerThread(build_candidates, settings, settings.ports["candidates"])
    try:
        response = generate(candidates, history_item_ids=["mug"], exclude_item_ids=["tea"], count=5)
        with pytest.raises(grpc.RpcError) as raised:
            generate(candidates, count=5000)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        candidates.stop()
        items.stop()
    found = {c.item_id: c for c in response.candidates}
    # cake and milk are co-bought with mug (item-kNN) and popular too: both sources agree on them
    assert [c.item_id for c in response.candidates[:2]] == ["cake", "milk"]
    assert found["cake"].anchor_item_id == found["milk"].anchor_item_id == "mug"
    assert set(found) == {"cake", "milk", "beer", "crisps", "mug"}  # tea is excluded
    assert sum(dict(response.source_counts).values()) == 5
    fusion = [c.fusion_score for c in response.candidates]
    assert fusion == sorted(fusion, reverse=True)
    assert {v.name for v in response.model_versions} == {COOCCURRENCE, POPULARITY}


def test_an_unreachable_catalog_leaves_item_knn_candidates_and_says_so(settings) -> None:
    env = {"RECSYS_ITEMS_ADDR": f"127.0.0.1:{free_port()}", "RECSYS_STAGE_DEADLINE_MS": "300"}
    broken = make_settings(str(settings.home), **env)
    candidates = ServerThread(build_candidates, broken)
    try:
        response = generate(candidates, history_item_ids=["beer"], count=5)
    finally:
        candidates.stop()
    assert [(c.item_id, c.source, c.anchor_item_id) for c in response.candidates] == [
        ("crisps", "item-knn", "beer"),
        ("tea", "item-knn", "beer"),
    ]
    assert list(response.degraded_sources) == ["popular", "availability"]


def test_hidden_and_out_of_stock_items_are_never_candidates(settings) -> None:
    items = ServerThread(build_items, settings, settings.ports["items"])
    candidates = ServerThread(build_candidates, settings, settings.ports["candidates"])
    catalog = [
        common_pb2.Item(item_id=item_id, title=item_id.title(), price=2.0, **flags)
        for item_id, flags in (
            ("cake", {"hidden": True}),
            ("milk", {"stock_status": common_pb2.STOCK_STATUS_OUT_OF_STOCK}),
            ("beer", {"stock_status": common_pb2.STOCK_STATUS_IN_STOCK}),
            ("crisps", {}),
            ("mug", {}),
            ("tea", {}),
        )
    ]
    try:
        with grpc.insecure_channel(items.address) as channel:
            items_pb2_grpc.ItemsServiceStub(channel).UpsertItems(
                iter([items_pb2.UpsertItemsRequest(items=catalog)]), timeout=10
            )
        response = generate(candidates, history_item_ids=["mug"], count=10)
    finally:
        candidates.stop()
        items.stop()
    assert {c.item_id for c in response.candidates} == {"beer", "crisps", "mug", "tea"}
    assert list(response.degraded_sources) == []
