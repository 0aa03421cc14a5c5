"""A learning policy's state in parts, one per replica: what the parts add up to is what one writer
would have learned from the same decisions and rewards, on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sqlalchemy import insert, select

from services.policy.context import FEATURES
from services.policy.linear import LinearModel
from services.policy.store import Decision, PolicyStore, state_parts, states


def _decision(n: int, features: np.ndarray, prefix: str = "r") -> Decision:
    candidates = [f"i{n}-{k}" for k in range(4)]
    return Decision(
        request_id=f"{prefix}{n}",
        user_id=f"u{n % 3}",
        policy="bandit",
        bucket="0",
        surface="home",
        item_ids=candidates[:2],
        propensities=[0.5, 0.5],
        candidate_ids=candidates,
        categories=["c"] * 4,
        features=features,
    )


def _store(url: str, part: str) -> PolicyStore:
    store = PolicyStore(url, part=part)
    store.migrate()
    return store


def _learn(store: PolicyStore, decisions: list[Decision]) -> None:
    for decision in decisions:
        store.log_decision(decision, learns=True)
        rewarded = decision.item_ids[int(decision.request_id[1:]) % 2]
        store.add_reward(f"e{decision.request_id}", decision, rewarded, 3, 1.5, True)


def test_replicas_learning_in_their_own_parts_add_up_to_the_single_writer_state(database_url: str) -> None:
    rng = np.random.default_rng(5)
    features = [rng.random((4, len(FEATURES))).astype(np.float32).astype(np.float64) for _ in range(24)]
    alone = _store(database_url, "only")
    first, second = _store(database_url, "replica-1"), _store(database_url, "replica-2")
    try:
        _learn(alone, [_decision(n, f, prefix="a") for n, f in enumerate(features)])
        expected = alone.model("bandit")
        with alone.engine.begin() as connection:
            connection.execute(state_parts.delete())  # the same decisions again, learned by two replicas
        decisions = [_decision(n, f) for n, f in enumerate(features)]
        with ThreadPoolExecutor(max_workers=2) as pool:  # both at once, on the same policy
            list(pool.map(_learn, (first, second), (decisions[0::2], decisions[1::2])))
        reader = _store(database_url, "reader")
        merged = reader.model("bandit")
        reader.close()
        with first.engine.connect() as connection:
            parts = {row.part: row.updates for row in connection.execute(select(state_parts))}
    finally:
        for store in (alone, first, second):
            store.close()
    assert parts == {"replica-1": 36, "replica-2": 36}  # each: 12 decisions of 2 impressions, 12 rewards
    assert merged.updates == expected.updates == 72
    np.testing.assert_allclose(merged.a, expected.a)
    np.testing.assert_allclose(merged.b, expected.b)
    np.testing.assert_allclose(merged.theta(), expected.theta())


def test_a_state_written_by_an_older_replica_counts_as_one_more_part(database_url: str) -> None:
    older = LinearModel.empty(len(FEATURES))
    older.add_impressions(np.ones((3, len(FEATURES))))
    store = _store(database_url, "new")
    try:
        a, b = older.to_bytes()
        with store.engine.begin() as connection:
            connection.execute(
                insert(states).values(policy="bandit", a=a, b=b, updates=older.updates, revision=4)
            )
        decision = _decision(0, np.random.default_rng(1).random((4, len(FEATURES))))
        store.log_decision(decision, learns=True)
        reader = _store(database_url, "reader")
        model = reader.model("bandit")
        reader.close()
    finally:
        store.close()
    contexts = decision.shown_contexts()
    assert model.updates == 3 + len(contexts)
    np.testing.assert_allclose(model.a, older.a + contexts.T @ contexts)
