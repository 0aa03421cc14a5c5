"""Policy service over real gRPC, on SQLite and on PostgreSQL."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from recsys.common.v1 import common_pb2
from recsys.policy.v1 import policy_pb2, policy_pb2_grpc
from services.policy.app import build
from tests.support import ServerThread, make_settings


def start(tmp_path: Path, database_url: str) -> ServerThread:
    return ServerThread(build, make_settings(str(tmp_path), RECSYS_POLICY_DATABASE_URL=database_url))


@pytest.fixture
def policy(tmp_path: Path, database_url: str):
    server = start(tmp_path, database_url)
    channel = grpc.insecure_channel(server.address)
    yield policy_pb2_grpc.PolicyServiceStub(channel)
    channel.close()
    server.stop()


def select(stub, request_id: str = "r1", count: int = 2):
    items = [policy_pb2.ScoredItem(item_id=i, score=s) for i, s in [("a", 3), ("b", 2), ("c", 1)]]
    return stub.Select(
        policy_pb2.SelectRequest(
            request_id=request_id, user_id="u1", items=items, count=count, surface="home"
        ),
        timeout=5,
    )


def reward(
    stub, item: str = "a", event_id: str = "e1", request_id: str = "r1", kind=common_pb2.EVENT_TYPE_PURCHASE
):
    return stub.Reward(
        policy_pb2.RewardRequest(request_id=request_id, item_id=item, event_type=kind, event_id=event_id),
        timeout=5,
    )


def test_greedy_keeps_the_ranked_order_with_propensity_one(policy) -> None:
    slate = select(policy)
    assert [(i.item_id, i.propensity) for i in slate.items] == [("a", 1.0), ("b", 1.0)]
    assert slate.policy == "greedy"
    assert slate.bucket == "all"


def test_select_is_idempotent_by_request_id(policy) -> None:
    first = select(policy, count=2)
    again = select(policy, count=3)
    assert [i.item_id for i in again.items] == [i.item_id for i in first.items]


def test_rewards_count_once_and_need_a_logged_decision(policy) -> None:
    select(policy)
    assert (reward(policy).value, reward(policy).duplicate) == (10.0, True)
    assert reward(policy, item="b", event_id="e2", kind=common_pb2.EVENT_TYPE_CLICK).value == 1.0
    for kwargs, code in [
        ({"request_id": "unknown"}, grpc.StatusCode.NOT_FOUND),
        ({"item": "c", "event_id": "e3"}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"event_id": "e4", "kind": common_pb2.EVENT_TYPE_UNSPECIFIED}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"event_id": ""}, grpc.StatusCode.INVALID_ARGUMENT),
    ]:
        with pytest.raises(grpc.RpcError) as raised:
            reward(policy, **kwargs)
        assert raised.value.code() == code


def test_concurrent_rewards_lose_nothing(policy) -> None:
    select(policy)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda n: reward(policy, event_id=f"e{n % 40}"), range(120)))
    assert sum(not a.duplicate for a in answers) == 40


def test_bad_selects_get_invalid_argument(policy) -> None:
    for request in [
        policy_pb2.SelectRequest(
            request_id="", user_id="u", items=[policy_pb2.ScoredItem(item_id="a")], count=1
        ),
        policy_pb2.SelectRequest(request_id="r", user_id="u", items=[], count=1),
        policy_pb2.SelectRequest(
            request_id="r", user_id="u", items=[policy_pb2.ScoredItem(item_id="a")], count=0
        ),
    ]:
        with pytest.raises(grpc.RpcError) as raised:
            policy.Select(request, timeout=5)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_decisions_survive_a_restart(tmp_path: Path, database_url: str) -> None:
    server = start(tmp_path, database_url)
    with grpc.insecure_channel(server.address) as channel:
        select(policy_pb2_grpc.PolicyServiceStub(channel))
    server.stop()
    server = start(tmp_path, database_url)
    try:
        with grpc.insecure_channel(server.address) as channel:
            assert reward(policy_pb2_grpc.PolicyServiceStub(channel)).value == 10.0
    finally:
        server.stop()
