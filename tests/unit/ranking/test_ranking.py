"""Ranking service over real gRPC: the co-occurrence baseline, then the learned ranker once published."""

import json
import time
from pathlib import Path

import grpc
import pytest

from ml.artifacts import CANDIDATE_ORDER, COOCCURRENCE, RANKER, SERVING, ServingConfig
from ml.cooccurrence import fit_cooccurrence
from recsys.common.v1 import common_pb2
from recsys.ranking.v1 import ranking_pb2, ranking_pb2_grpc
from services.ranking.app import build
from services.ranking.scoring import score_candidates
from shared import sources
from shared.models import publish
from tests.support import ServerThread, make_settings, purchases_snapshot
from tests.unit.candidates.test_training_and_retrieval import BASKETS


def candidates(*item_ids: str) -> list[ranking_pb2.RankCandidate]:
    return [ranking_pb2.RankCandidate(item_id=item_id) for item_id in item_ids]


@pytest.fixture
def ranking(tmp_path: Path):
    settings = make_settings(str(tmp_path), RECSYS_MODEL_POLL_S="0.1")
    version = publish(settings.model_dir, COOCCURRENCE, fit_cooccurrence(purchases_snapshot(BASKETS)).save)
    server = ServerThread(build, settings)
    channel = grpc.insecure_channel(server.address)
    yield ranking_pb2_grpc.RankingServiceStub(channel), version, settings
    channel.close()
    server.stop()


def test_without_a_ranker_scores_follow_cooccurrence_with_the_history(ranking) -> None:
    stub, version, _ = ranking
    response = stub.Rank(
        ranking_pb2.RankRequest(
            user_id="u", history_item_ids=["mug"], candidates=candidates("crisps", "cake", "tea")
        ),
        timeout=5,
    )
    assert [i.item_id for i in response.items] == ["tea", "cake", "crisps"]
    assert response.items[0].top_contributor_item_id == "mug"
    assert response.items[2].score == 0 and response.items[2].top_contributor_item_id == ""
    assert (response.model_version.name, response.model_version.version) == (COOCCURRENCE, version)


def test_ties_keep_the_candidate_order() -> None:
    scored = score_candidates(None, ["mug"], ["c", "a", "b"])
    assert [s.item_id for s in scored] == ["c", "a", "b"]


def _rank_with(stub, history: list[str], item_ids: list[str]) -> ranking_pb2.RankResponse:
    request = ranking_pb2.RankRequest(user_id="u", history_item_ids=history, surface="home", purchase_count=3)
    for rank, item_id in enumerate(item_ids):
        request.candidates.add(
            item_id=item_id,
            fusion_score=1 / (61 + rank),
            found_by=[common_pb2.SourceRank(source=sources.ITEM_KNN, rank=rank, score=1.0)],
        )
    request.last_event_time.GetCurrentTime()
    return stub.Rank(request, timeout=10)


def _wait_for(stub, history, item_ids, name: str, version: int) -> ranking_pb2.RankResponse:
    deadline = time.monotonic() + 30
    while True:
        response = _rank_with(stub, history, item_ids)
        reported = (response.model_version.name, response.model_version.version)
        if reported == (name, version) or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_a_published_ranker_and_then_a_retrained_one_are_picked_up_live(ranking, simulated_ranker) -> None:
    stub, _, settings = ranking
    trained = simulated_ranker.trained
    labelled = next(iter(simulated_ranker.held_out.values()))
    item_ids = [i for i in trained.table.item_ids.tolist() if i not in set(labelled.history)][:500]
    first = publish(settings.model_dir, RANKER, trained.save)
    response = _wait_for(stub, labelled.history, item_ids, RANKER, first)
    assert (response.model_version.name, response.model_version.version) == (RANKER, first)
    assert sorted(i.item_id for i in response.items) == sorted(item_ids)
    assert [i.score for i in response.items] == sorted((i.score for i in response.items), reverse=True)
    assert any(i.top_features for i in response.items)
    second = publish(settings.model_dir, RANKER, trained.save)
    response = _wait_for(stub, labelled.history, item_ids, RANKER, second)
    assert (response.model_version.name, response.model_version.version) == (RANKER, second)


@pytest.mark.parametrize(
    ("item_ids", "message"),
    [
        ([], "candidates must not be empty"),
        ([str(i) for i in range(1001)], "at most 1000 candidates per call, got 1001"),
        (["a", "a"], "candidate item_ids must be distinct"),
        (["a", ""], "every candidate needs an item_id"),
    ],
)
def test_bad_candidate_lists_get_invalid_argument(ranking, item_ids, message) -> None:
    stub, _, _ = ranking
    with pytest.raises(grpc.RpcError) as raised:
        stub.Rank(ranking_pb2.RankRequest(user_id="u", candidates=candidates(*item_ids)), timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == message


def test_an_unknown_surface_gets_invalid_argument(ranking) -> None:
    stub, _, _ = ranking
    with pytest.raises(grpc.RpcError) as raised:
        stub.Rank(ranking_pb2.RankRequest(user_id="u", candidates=candidates("a"), surface="tv"), timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_impossible_shopper_facts_get_invalid_argument(ranking) -> None:
    stub, _, _ = ranking
    negative = ranking_pb2.RankRequest(user_id="u", candidates=candidates("a"), purchase_count=-1)
    beyond = ranking_pb2.RankRequest(user_id="u", candidates=candidates("a"))
    beyond.last_event_time.nanos = -5
    for request, message in [
        (negative, "purchase_count must not be negative, got -1"),
        (beyond, "last_event_time: timestamp is out of range"),
    ]:
        with pytest.raises(grpc.RpcError) as raised:
            stub.Rank(request, timeout=5)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert raised.value.details().startswith(message)


def test_where_training_chose_the_candidate_order_ranking_keeps_it(ranking) -> None:
    stub, _, settings = ranking
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetServing(ranking_pb2.GetServingRequest(), timeout=5)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    chosen = ServingConfig({sources.EASE: 1.0}, {sources.EASE: 0.1}, CANDIDATE_ORDER, {"protocol": "time"})
    version = publish(settings.model_dir, SERVING, chosen.save)
    order = ["crisps", "cake", "tea", "milk"]
    response = _wait_for(stub, ["mug"], order, SERVING, version)
    assert (response.model_version.name, response.model_version.version) == (SERVING, version)
    assert [i.item_id for i in response.items] == order
    scores = [i.score for i in response.items]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)
    served = stub.GetServing(ranking_pb2.GetServingRequest(), timeout=5)
    assert (served.model_version.version, served.order) == (version, CANDIDATE_ORDER)
    assert dict(served.weights) == {sources.EASE: 1.0} and dict(served.quotas) == {sources.EASE: 0.1}
    assert json.loads(served.report_json) == {"protocol": "time"}
