"""Policy service over real gRPC, on SQLite and on PostgreSQL."""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest

from recsys.common.v1 import common_pb2
from recsys.policy.v1 import policy_pb2, policy_pb2_grpc
from services.policy.app import build
from services.policy.policies import bucket_of
from services.policy.store import PolicyStore
from tests.support import ServerThread, make_settings

ITEMS = [("a", 3.0, "Mugs"), ("b", 2.0, "Mugs"), ("c", 1.0, "Bags"), ("d", 0.5, "Bags"), ("e", 0.1, "Hats")]


def start(tmp_path: Path, database_url: str, **env: str) -> ServerThread:
    return ServerThread(build, make_settings(str(tmp_path), RECSYS_POLICY_DATABASE_URL=database_url, **env))


@pytest.fixture
def policy(tmp_path: Path, database_url: str):
    server = start(tmp_path, database_url)
    channel = grpc.insecure_channel(server.address)
    yield policy_pb2_grpc.PolicyServiceStub(channel)
    channel.close()
    server.stop()


def scored(items=ITEMS) -> list[policy_pb2.ScoredItem]:
    return [
        policy_pb2.ScoredItem(
            item_id=i, score=s, category=c, price=5.0, stock_status=common_pb2.STOCK_STATUS_IN_STOCK
        )
        for i, s, c in items
    ]


def select(stub, request_id: str = "r1", count: int = 2, policy: str = "", user: str = "u1", items=None):
    return stub.Select(
        policy_pb2.SelectRequest(
            request_id=request_id,
            user_id=user,
            items=items if items is not None else scored(),
            count=count,
            surface="home",
            policy=policy,
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
    slate = select(policy, count=3, policy="greedy")
    assert [(i.item_id, i.propensity) for i in slate.items] == [("a", 1.0), ("b", 1.0), ("c", 1.0)]
    assert slate.policy == "greedy"
    assert slate.bucket == str(bucket_of("u1", "recsys"))


def test_the_default_policy_is_the_bandit_and_its_version_counts_updates(policy) -> None:
    slate = select(policy, count=2)
    assert slate.policy == "bandit"
    assert slate.model_version.name == "bandit" and slate.model_version.version == 2
    assert all(0 < item.propensity <= 1 for item in slate.items)


def test_select_is_idempotent_by_request_id(policy) -> None:
    first = select(policy, count=2)
    again = select(policy, count=3)
    assert [(i.item_id, i.propensity) for i in again.items] == [
        (i.item_id, i.propensity) for i in first.items
    ]


def test_out_of_stock_items_are_never_shown_and_category_caps_hold(tmp_path: Path, database_url: str) -> None:
    server = start(tmp_path, database_url, RECSYS_POLICY_CATEGORY_CAP="1")
    items = scored()
    items[0].stock_status = common_pb2.STOCK_STATUS_OUT_OF_STOCK
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = policy_pb2_grpc.PolicyServiceStub(channel)
            for n, name in enumerate(["greedy", "epsilon-greedy", "bandit"] * 10):
                slate = select(stub, request_id=f"r{n}", count=3, policy=name, items=items)
                shown = [i.item_id for i in slate.items]
                assert "a" not in shown
                categories = [dict((i, c) for i, _, c in ITEMS)[item] for item in shown]
                assert len(set(categories)) == len(categories) == 3
    finally:
        server.stop()


def test_served_propensities_match_how_often_items_are_served(policy) -> None:
    first_items: Counter[str] = Counter()
    logged: dict[str, float] = {}
    rounds = 400
    for n in range(rounds):
        slate = select(policy, request_id=f"r{n}", count=2, policy="epsilon-greedy", user=f"u{n}")
        first_items[slate.items[0].item_id] += 1
        logged.setdefault(slate.items[0].item_id, slate.items[0].propensity)
    epsilon, n_items = 0.2, len(ITEMS)
    assert logged["a"] == pytest.approx((1 - epsilon) + epsilon / n_items, abs=0.04)
    for item, propensity in logged.items():
        assert first_items[item] / rounds == pytest.approx(propensity, abs=0.05)


def test_rewards_count_once_and_need_a_logged_decision(policy) -> None:
    shown = [i.item_id for i in select(policy, policy="greedy").items]
    assert (reward(policy).value, reward(policy).duplicate) == (10.0, True)
    assert reward(policy, item="b", event_id="e2", kind=common_pb2.EVENT_TYPE_CLICK).value == 1.0
    assert reward(policy, item="b", event_id="e3", kind=common_pb2.EVENT_TYPE_DISMISS).value == -2.0
    assert shown == ["a", "b"]
    for kwargs, code in [
        ({"request_id": "unknown"}, grpc.StatusCode.NOT_FOUND),
        ({"item": "c", "event_id": "e4"}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"event_id": "e5", "kind": common_pb2.EVENT_TYPE_UNSPECIFIED}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"event_id": "e6", "kind": 99}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"event_id": ""}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"event_id": "x" * 200}, grpc.StatusCode.INVALID_ARGUMENT),
    ]:
        with pytest.raises(grpc.RpcError) as raised:
            reward(policy, **kwargs)
        assert raised.value.code() == code


def test_a_reward_names_the_ranking_version_behind_its_decision(policy) -> None:
    policy.Select(
        policy_pb2.SelectRequest(
            request_id="ranked",
            user_id="u1",
            items=scored(),
            count=2,
            surface="home",
            policy="greedy",
            ranking_version=1764000000,
        ),
        timeout=5,
    )
    select(policy, request_id="unranked", policy="greedy")
    assert reward(policy, event_id="e1", request_id="ranked").ranking_version == 1764000000
    assert reward(policy, event_id="e2", request_id="unranked").ranking_version == 0


def test_unknown_policy_names_get_not_found(policy) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        select(policy, policy="thompson")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert "greedy, epsilon-greedy, bandit" in raised.value.details()


def test_bad_selects_get_invalid_argument(policy) -> None:
    one = [policy_pb2.ScoredItem(item_id="a")]
    for request in [
        policy_pb2.SelectRequest(request_id="", user_id="u", items=one, count=1),
        policy_pb2.SelectRequest(request_id="r", user_id="u", items=[], count=1),
        policy_pb2.SelectRequest(request_id="r", user_id="u", items=one, count=0),
        policy_pb2.SelectRequest(request_id="r", user_id="u", items=one * 2, count=1),
    ]:
        with pytest.raises(grpc.RpcError) as raised:
            policy.Select(request, timeout=5)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_concurrent_rewards_lose_no_update(tmp_path: Path, database_url: str, policy) -> None:
    slate = select(policy, count=5)
    shown = [i.item_id for i in slate.items]
    events = [(item, f"{item}-{n}") for item in shown for n in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(
                lambda pair: reward(policy, item=pair[0], event_id=pair[1], kind=common_pb2.EVENT_TYPE_CLICK),
                events + events[:10],
            )
        )
    assert sum(not a.duplicate for a in answers) == len(events)
    store = PolicyStore(database_url)
    try:
        decision = store.decision("r1")
        assert decision is not None
        model = store.model("bandit")
        contexts = decision.shown_contexts()
        assert model.updates == len(shown) + len(events)
        np.testing.assert_allclose(model.b, 8 * contexts.sum(axis=0))
        np.testing.assert_allclose(model.a, np.eye(len(model.b)) + contexts.T @ contexts)
        assert {item: e.reward for item, e in store.item_exposure(shown).items()} == dict.fromkeys(shown, 8.0)
    finally:
        store.close()


def test_concurrent_decisions_commit_together_and_count_as_one_by_one(
    tmp_path: Path, database_url: str
) -> None:
    """Selects at the same time share transactions; the counts and the bandit's state come out as
    if each had been written alone."""
    server = start(tmp_path, database_url)
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = policy_pb2_grpc.PolicyServiceStub(channel)
            requests = [(f"r{n}", f"u{n % 5}") for n in range(60)]
            with ThreadPoolExecutor(max_workers=12) as pool:
                answers = list(pool.map(lambda r: select(stub, r[0], count=3, user=r[1]), requests))
            again = select(stub, "r7", count=3, user="u2")  # a request_id logged before keeps its slate
    finally:
        server.stop()
    assert [i.item_id for i in again.items] == [i.item_id for i in answers[7].items]
    store = PolicyStore(database_url)
    try:
        logged = [store.decision(request_id) for request_id, _ in requests]
        assert all(d is not None for d in logged)
        for decision, answer in zip(logged, answers, strict=True):
            assert decision.item_ids == [i.item_id for i in answer.items]
        shown = Counter(item for d in logged for item in d.item_ids)
        exposure = store.item_exposure([i for i, *_ in ITEMS])
        assert {item: e.shown for item, e in exposure.items()} == {i: float(n) for i, n in shown.items()}
        assert store.shopper_exposure("u0", [i for i, *_ in ITEMS])["a"].shown == sum(
            "a" in d.item_ids for d in logged if d.user_id == "u0"
        )
        model = store.model("bandit")
        contexts = np.concatenate([d.shown_contexts() for d in logged])
        assert model.updates == len(contexts)
        np.testing.assert_allclose(model.a, np.eye(len(model.b)) + contexts.T @ contexts)
    finally:
        store.close()


def test_the_learned_state_survives_a_restart(tmp_path: Path, database_url: str) -> None:
    server = start(tmp_path, database_url)
    with grpc.insecure_channel(server.address) as channel:
        stub = policy_pb2_grpc.PolicyServiceStub(channel)
        slate = select(stub, count=3)
        reward(stub, item=slate.items[0].item_id)
    before = PolicyStore(database_url).model("bandit")
    server.stop()
    server = start(tmp_path, database_url)
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = policy_pb2_grpc.PolicyServiceStub(channel)
            assert reward(stub, item=slate.items[1].item_id, event_id="e2").value == 10.0
            again = select(stub, request_id="r2", count=3)
        assert again.model_version.version == before.updates + 1 + 3
        after = PolicyStore(database_url).model("bandit")
        assert after.updates == before.updates + 4
        assert not np.allclose(after.b, before.b)
    finally:
        server.stop()


def _learning_run(tmp_path, database_url: str, budget: str, rounds: int) -> tuple[list[str], int]:
    """Only 'e', ranked last (greedy never shows it), earns rewards; the first item of each slate,
    and how many slates showed 'e'."""
    server = start(tmp_path, database_url, RECSYS_POLICY_EXPLORATION_BUDGET=budget, RECSYS_POLICY_SEED="1")
    channel = grpc.insecure_channel(server.address)
    policy = policy_pb2_grpc.PolicyServiceStub(channel)
    items = scored([(f"i{n}", 10.0 - n, "Same") for n in range(9)] + [("e", 0.0, "Same")])
    firsts, shown = [], 0
    try:
        for n in range(rounds):
            slate = select(policy, request_id=f"r{n}", count=3, user=f"u{n % 7}", items=items)
            firsts.append(slate.items[0].item_id)
            for k, item in enumerate(slate.items):
                if item.item_id == "e":
                    shown += 1
                    reward(policy, item="e", event_id=f"e{n}-{k}", request_id=f"r{n}")
    finally:
        channel.close()
        server.stop()
    return firsts, shown


def test_the_bandit_learns_to_serve_what_earns_rewards(tmp_path, database_url) -> None:
    """With exploration unbounded (budget 1) the bandit finds 'e' and learns to put it first."""
    firsts, _ = _learning_run(tmp_path, database_url, "1", 60)
    assert firsts[-20:].count("e") >= 15


def test_within_the_default_budget_the_bandit_explores_seldom(tmp_path, database_url) -> None:
    firsts, shown = _learning_run(tmp_path, database_url, "0.05", 200)
    assert firsts[:50].count("i0") >= 45  # the exploiting slate (the ranker's order) nearly always
    assert 0 < shown < 0.2 * 200  # it still explores, on a small share of requests
