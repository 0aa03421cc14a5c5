"""Candidates service over real gRPC: co-occurrence first, popular from the items service to fill."""

from pathlib import Path

import grpc
import pytest

from recsys.candidates.v1 import candidates_pb2, candidates_pb2_grpc
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


def test_cooccurrence_first_then_popular_without_excluded_items(settings) -> None:
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
    found = [(c.item_id, c.source) for c in response.candidates]
    # cake and milk are each co-bought with mug once: equal scores, ordered by id
    assert found[:2] == [("cake", "item-knn"), ("milk", "item-knn")]
    assert [source for _, source in found[2:]] == ["popular"] * 3
    assert "tea" not in {item for item, _ in found}
    assert dict(response.source_counts) == {"item-knn": 2, "popular": 3}
    assert {v.name for v in response.model_versions} == {COOCCURRENCE, POPULARITY}


def test_a_failing_popular_source_leaves_cooccurrence_candidates(settings) -> None:
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
