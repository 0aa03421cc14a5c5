"""Off-policy estimates from a log collected over gRPC by epsilon-greedy, against known values."""

from pathlib import Path

import grpc
import numpy as np
import pytest

from recsys.common.v1 import common_pb2
from recsys.policy.v1 import policy_pb2, policy_pb2_grpc
from services.policy.offpolicy import evaluate
from services.policy.policies import fusion, named_policies
from services.policy.settings import PolicySettings
from services.policy.store import PolicyStore
from tests.unit.policy.test_policy import scored, start

# click chance of each item at the top; lower positions are discounted like the slates' features
APPEAL = {"a": 0.9, "b": 0.6, "c": 0.3, "d": 0.2, "e": 0.1}
ITEMS = [("a", 3.0, "A"), ("b", 2.0, "B"), ("c", 1.0, "C"), ("d", 0.5, "D"), ("e", 0.1, "E")]
SLATE = 2


def discount(position: int) -> float:
    return 1.0 / np.log2(position + 2)


def true_value(slate: list[str]) -> float:
    return sum(APPEAL[item] * discount(k) for k, item in enumerate(slate))


@pytest.fixture(scope="module")
def logged(tmp_path_factory) -> str:
    """600 slates chosen by epsilon-greedy (epsilon 0.5, seeded draws), clicked with known chances."""
    home = tmp_path_factory.mktemp("ope")
    url = f"sqlite:///{home}/policy.sqlite"
    server = start(Path(home), url, RECSYS_POLICY_EPSILON="0.5", RECSYS_POLICY_SEED="0")
    rng = np.random.default_rng(0)
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = policy_pb2_grpc.PolicyServiceStub(channel)
            for n in range(600):
                slate = stub.Select(
                    policy_pb2.SelectRequest(
                        request_id=f"r{n}",
                        user_id=f"u{n}",
                        items=scored(ITEMS),
                        count=SLATE,
                        policy="epsilon-greedy",
                    ),
                    timeout=5,
                )
                for k, item in enumerate(slate.items):
                    if rng.random() < APPEAL[item.item_id] * discount(k):
                        stub.Reward(
                            policy_pb2.RewardRequest(
                                request_id=f"r{n}",
                                item_id=item.item_id,
                                event_type=common_pb2.EVENT_TYPE_CLICK,
                                event_id=f"e{n}-{k}",
                            ),
                            timeout=5,
                        )
    finally:
        server.stop()
    return url


def test_estimates_of_greedy_from_an_epsilon_greedy_log_find_its_true_value(logged: str) -> None:
    settings = PolicySettings(epsilon=0.5)
    store = PolicyStore(logged)
    try:
        result = evaluate(
            store, named_policies(settings)["greedy"], fusion(settings), 1.0, "epsilon-greedy", 200
        )
    finally:
        store.close()
    truth = true_value(["a", "b"])  # greedy shows the ranked order
    assert result.decisions == 600
    estimates = {e.name: e for e in result.estimates}
    for name in ("IPS", "SNIPS", "doubly robust"):
        assert estimates[name].value == pytest.approx(truth, rel=0.1), name
        assert estimates[name].low < truth < estimates[name].high, name
    # the log itself earned less than greedy would: half of its slates were random
    assert result.logged_value < 0.9 * truth


def test_evaluating_from_a_policy_that_logged_nothing_is_a_clear_error(logged: str) -> None:
    settings = PolicySettings()
    store = PolicyStore(logged)
    try:
        with pytest.raises(ValueError, match="no decisions logged by 'bandit'"):
            evaluate(store, named_policies(settings)["greedy"], fusion(settings), 1.0, "bandit", 100)
    finally:
        store.close()
