"""Ranking service over real gRPC with a model trained on a small snapshot."""

from pathlib import Path

import grpc
import pytest

from recsys.ranking.v1 import ranking_pb2, ranking_pb2_grpc
from services.candidates.train import fit_cooccurrence
from services.ranking.app import build
from services.ranking.scoring import score_candidates
from shared.artifacts import COOCCURRENCE
from shared.models import publish
from tests.support import ServerThread, make_settings, purchases_snapshot
from tests.unit.candidates.test_training_and_retrieval import BASKETS


@pytest.fixture
def ranking(tmp_path: Path):
    settings = make_settings(str(tmp_path))
    version = publish(settings.model_dir, COOCCURRENCE, fit_cooccurrence(purchases_snapshot(BASKETS)).save)
    server = ServerThread(build, settings)
    channel = grpc.insecure_channel(server.address)
    yield ranking_pb2_grpc.RankingServiceStub(channel), version
    channel.close()
    server.stop()


def test_scores_follow_cooccurrence_with_the_history(ranking) -> None:
    stub, version = ranking
    response = stub.Rank(
        ranking_pb2.RankRequest(user_id="u", history_item_ids=["mug"], item_ids=["crisps", "cake", "tea"]),
        timeout=5,
    )
    assert [i.item_id for i in response.items] == ["tea", "cake", "crisps"]
    assert response.items[0].top_contributor_item_id == "mug"
    assert response.items[2].score == 0 and response.items[2].top_contributor_item_id == ""
    assert (response.model_version.name, response.model_version.version) == (COOCCURRENCE, version)


def test_ties_keep_the_candidate_order() -> None:
    scored = score_candidates(None, ["mug"], ["c", "a", "b"])
    assert [s.item_id for s in scored] == ["c", "a", "b"]


@pytest.mark.parametrize(
    ("item_ids", "message"),
    [
        ([], "item_ids must not be empty"),
        ([str(i) for i in range(1001)], "at most 1000 item_ids per call, got 1001"),
        (["a", "a"], "item_ids must be distinct"),
    ],
)
def test_bad_candidate_lists_get_invalid_argument(ranking, item_ids, message) -> None:
    stub, _ = ranking
    with pytest.raises(grpc.RpcError) as raised:
        stub.Rank(ranking_pb2.RankRequest(user_id="u", item_ids=item_ids), timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == message
