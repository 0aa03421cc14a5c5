"""The policy service's tables: decisions with their contexts and propensities, rewards,
exposure counts, and each learning policy's state.

A decision and everything it changes (exposure counts, the bandit's A) commit
in one transaction; so do a reward and its changes (counts, the bandit's b).

A learning policy's state is the sum of parts, one row per replica (LinUCB's A and b are sums over
impressions and rewards): each replica adds what it learns to its own part only, so replicas never
wait for each other's writes, and reads every part when it writes its own. A part row carries a
revision: a write that finds another revision than the one it read retries, so two writers that
share a part (threads, or replicas given the same name) never lose an update. A policy_states row
(written by replicas older than the parts) counts as one more part.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from services.policy.context import FEATURES, Exposure, at_position
from services.policy.linear import LinearModel
from shared.clock import Clock, system_clock
from shared.db import Store, upsert
from shared.group_commit import GroupCommit

metadata = MetaData()
decisions = Table(
    "policy_decisions",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("policy", String(64), nullable=False),
    Column("bucket", String(64), nullable=False),
    Column("surface", String(64), nullable=False),
    Column("item_ids", Text, nullable=False),
    Column("propensities", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("candidate_ids", Text, nullable=False, server_default="[]"),
    Column("categories", Text, nullable=False, server_default="[]"),
    Column("features", LargeBinary, nullable=True),
    Column("ranking_version", BigInteger, nullable=True),
    Index("ix_policy_decisions_policy", "policy", "created_at"),
)
rewards = Table(
    "policy_rewards",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("request_id", String(128), nullable=False, index=True),
    Column("item_id", String(128), nullable=False),
    Column("event_type", SmallInteger, nullable=False),
    Column("value", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
item_exposure = Table(
    "policy_item_exposure",
    metadata,
    Column("item_id", String(128), primary_key=True),
    Column("shown", Float, nullable=False),
    Column("reward", Float, nullable=False),
)
shopper_exposure = Table(
    "policy_shopper_exposure",
    metadata,
    Column("user_id", String(128), nullable=False),
    Column("item_id", String(128), nullable=False),
    Column("shown", Float, nullable=False),
    Column("reward", Float, nullable=False),
    PrimaryKeyConstraint("user_id", "item_id"),
)
states = Table(
    "policy_states",
    metadata,
    Column("policy", String(64), primary_key=True),
    Column("a", LargeBinary, nullable=False),
    Column("b", LargeBinary, nullable=False),
    Column("updates", Integer, nullable=False),
    Column("revision", Integer, nullable=False),
)
# Each replica's share of a policy's state: sums of what it learned (A without the prior, b).
state_parts = Table(
    "policy_state_parts",
    metadata,
    Column("policy", String(64), nullable=False),
    Column("part", String(128), nullable=False),
    Column("a", LargeBinary, nullable=False),
    Column("b", LargeBinary, nullable=False),
    Column("updates", Integer, nullable=False),
    Column("revision", Integer, nullable=False),
    PrimaryKeyConstraint("policy", "part"),
)
WRITE_ATTEMPTS = 8


class StaleState(Exception):
    """Another writer changed a policy's state between our read and our write."""


@dataclass(frozen=True)
class Decision:
    request_id: str
    user_id: str
    policy: str
    bucket: str
    surface: str
    item_ids: list[str]
    propensities: list[float]
    candidate_ids: list[str]
    categories: list[str]
    features: np.ndarray  # candidates by FEATURES at the top position, float32 precision
    ranking_version: int = 0  # the ranking model that ordered the candidates (0: none)

    def shown_contexts(self) -> np.ndarray:
        """The context of each shown item at the position it was shown."""
        index = {item: n for n, item in enumerate(self.candidate_ids)}
        return np.stack([at_position(self.features[index[item]], k) for k, item in enumerate(self.item_ids)])


@dataclass(frozen=True)
class LoggedReward:
    request_id: str
    item_id: str
    value: float


def _item_exposure(connection: Any, item_ids: Sequence[str]) -> dict[str, Exposure]:
    query = select(item_exposure).where(item_exposure.c.item_id.in_(list(item_ids)))
    return {row.item_id: Exposure(row.shown, row.reward) for row in connection.execute(query)}


def _shopper_exposure(connection: Any, user_id: str, item_ids: Sequence[str]) -> dict[str, Exposure]:
    query = select(shopper_exposure).where(
        shopper_exposure.c.user_id == user_id, shopper_exposure.c.item_id.in_(list(item_ids))
    )
    return {row.item_id: Exposure(row.shown, row.reward) for row in connection.execute(query)}


def _logged_decision(connection: Any, request_id: str) -> Decision | None:
    row = connection.execute(select(decisions).where(decisions.c.request_id == request_id)).first()
    return None if row is None else _decision(row)


def _decision(row: Any) -> Decision:
    candidate_ids = json.loads(row.candidate_ids)
    features = (
        np.frombuffer(row.features, dtype=np.float32).astype(np.float64).reshape(len(candidate_ids), -1)
        if row.features
        else np.zeros((0, len(FEATURES)))
    )
    return Decision(
        request_id=row.request_id,
        user_id=row.user_id,
        policy=row.policy,
        bucket=row.bucket,
        surface=row.surface,
        item_ids=json.loads(row.item_ids),
        propensities=json.loads(row.propensities),
        candidate_ids=candidate_ids,
        categories=json.loads(row.categories),
        features=features,
        ranking_version=row.ranking_version or 0,
    )


@dataclass
class StoredState:
    """A policy's state as stored: this replica's part (and its row, None before its first write),
    and the sum of every other part (the prior, and a policy_states row, included)."""

    own: LinearModel
    own_row: Any
    others: LinearModel

    @property
    def model(self) -> LinearModel:
        return self.others.plus(self.own)


def _stored_state(connection: Any, policy: str, part: str) -> StoredState:
    dimension = len(FEATURES)
    legacy = connection.execute(select(states).where(states.c.policy == policy)).first()
    others = (
        LinearModel.from_bytes(legacy.a, legacy.b, legacy.updates)
        if legacy is not None
        else LinearModel.empty(dimension)
    )
    own, own_row = LinearModel.zero(dimension), None
    for row in connection.execute(select(state_parts).where(state_parts.c.policy == policy)):
        stored = LinearModel.from_bytes(row.a, row.b, row.updates)
        if row.part == part:
            own, own_row = stored, row
        else:
            others = others.plus(stored)
    return StoredState(own, own_row, others)


class PolicyStore(Store):
    service = "policy"
    migrations = Path(__file__).parent / "migrations"

    def __init__(self, url: str, clock: Clock = system_clock, part: str = "") -> None:
        """`part`: the name of this replica's share of every learning policy's state (its host name
        when empty)."""
        super().__init__(url, clock)
        self.part = part or socket.gethostname()
        self._write = threading.Lock()
        self._models: dict[str, LinearModel] = {}
        self._decisions: GroupCommit[tuple[Decision, bool], Decision] = GroupCommit(self._log_decisions)
        self._increments = {table.name: self._increment(table) for table in (item_exposure, shopper_exposure)}

    def _increment(self, table: Table) -> Any:
        statement = upsert(self.engine, table)
        return statement.on_conflict_do_update(
            index_elements=[column.name for column in table.primary_key],
            set_={
                "shown": table.c.shown + statement.excluded.shown,
                "reward": table.c.reward + statement.excluded.reward,
            },
        )

    def decision(self, request_id: str) -> Decision | None:
        with self.engine.connect() as connection:
            return _logged_decision(connection, request_id)

    def decisions_of(self, policy: str, since: datetime | None = None) -> Iterator[Decision]:
        """Every decision the policy made (from `since` on), oldest first."""
        query = select(decisions).where(decisions.c.policy == policy).order_by(decisions.c.created_at)
        if since is not None:
            query = query.where(decisions.c.created_at >= since)
        with self.engine.connect() as connection:
            for row in connection.execution_options(yield_per=1000).execute(query):
                yield _decision(row)

    def decision_count(self, policy: str, since: datetime | None = None) -> int:
        query = select(func.count()).select_from(decisions).where(decisions.c.policy == policy)
        if since is not None:
            query = query.where(decisions.c.created_at >= since)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def rewards_of(self, policy: str, since: datetime | None = None) -> list[LoggedReward]:
        """The rewards of the policy's decisions (those made from `since` on)."""
        query = (
            select(rewards.c.request_id, rewards.c.item_id, rewards.c.value)
            .join(decisions, decisions.c.request_id == rewards.c.request_id)
            .where(decisions.c.policy == policy)
        )
        if since is not None:
            query = query.where(decisions.c.created_at >= since)
        with self.engine.connect() as connection:
            return [LoggedReward(*row) for row in connection.execute(query)]

    def item_exposure(self, item_ids: Sequence[str]) -> dict[str, Exposure]:
        """How often each item was shown, by any policy, and the reward it earned."""
        with self.engine.connect() as connection:
            return _item_exposure(connection, item_ids)

    def shopper_exposure(self, user_id: str, item_ids: Sequence[str]) -> dict[str, Exposure]:
        with self.engine.connect() as connection:
            return _shopper_exposure(connection, user_id, item_ids)

    def selection_context(
        self, request_id: str, user_id: str, item_ids: Sequence[str]
    ) -> tuple[Decision | None, dict[str, Exposure], dict[str, Exposure]]:
        """What a Select reads, over one connection: the decision logged under `request_id`, if any,
        and the items' exposure overall and to this shopper."""
        with self.engine.connect() as connection:
            logged = _logged_decision(connection, request_id)
            if logged is not None:
                return logged, {}, {}
            shown = _item_exposure(connection, item_ids)
            return None, shown, _shopper_exposure(connection, user_id, item_ids)

    def model(self, policy: str) -> LinearModel:
        """The policy's learned state, read once from the database and then kept current."""
        if policy not in self._models:
            with self.engine.connect() as connection:
                self._models[policy] = _stored_state(connection, policy, self.part).model
        return self._models[policy]

    def _change_state(
        self, connection: Any, policy: str, change: Callable[[LinearModel], None]
    ) -> LinearModel:
        """Applies `change` to this replica's part of the policy's state; returns the whole state."""
        stored = _stored_state(connection, policy, self.part)
        change(stored.own)
        a, b = stored.own.to_bytes()
        values = {"a": a, "b": b, "updates": stored.own.updates}
        if stored.own_row is None:
            first = state_parts.insert().values(policy=policy, part=self.part, revision=1, **values)
            connection.execute(first)
            return stored.model
        written = connection.execute(
            update(state_parts)
            .where(
                state_parts.c.policy == policy,
                state_parts.c.part == self.part,
                state_parts.c.revision == stored.own_row.revision,
            )
            .values(revision=stored.own_row.revision + 1, **values)
        )
        if written.rowcount != 1:
            raise StaleState(policy)
        return stored.model

    def _bump(
        self, connection: Any, table: Table, column: str, added: Mapping[tuple[str, ...], float]
    ) -> None:
        """Adds each amount to `column` ("shown" or "reward") of the row its key names (the table's
        primary key values, in order): one prepared statement, one row per key, since PostgreSQL
        refuses an upsert that changes a row twice."""
        if added:
            names = [key.name for key in table.primary_key]
            rows = [
                {**dict(zip(names, key, strict=True)), "shown": 0.0, "reward": 0.0, column: float(amount)}
                for key, amount in added.items()
            ]
            connection.execute(self._increments[table.name], rows)

    def _transaction(self, work: Callable[[Any], dict[str, LinearModel]]) -> None:
        """Runs `work` in one transaction, again from the start when a state was stale; the
        states it returns (by policy) become the current ones once committed."""
        with self._write:
            for attempt in range(WRITE_ATTEMPTS):
                try:
                    with self.engine.begin() as connection:
                        models = work(connection)
                    self._models.update(models)
                    return
                except StaleState:
                    if attempt == WRITE_ATTEMPTS - 1:
                        raise
                except IntegrityError as error:
                    if "policy_state_parts" not in str(error) or attempt == WRITE_ATTEMPTS - 1:
                        raise

    def log_decision(self, decision: Decision, learns: bool) -> Decision:
        """Stores the decision, once committed; a request_id logged before keeps its first
        decision. Decisions logged at the same time by several threads commit together."""
        return self._decisions.submit((decision, learns))

    def _log_decisions(self, batch: list[tuple[Decision, bool]]) -> list[Decision]:
        """One transaction for the batch: its decisions, their exposure counts and, per learning
        policy, one state update with every shown context. When a request_id was logged before,
        the batch is written again one decision at a time, and that one keeps its first decision."""
        try:
            self._transaction(lambda connection: self._write_decisions(connection, batch))
        except IntegrityError:
            if len(batch) > 1:
                return [self._log_decisions([one])[0] for one in batch]
            stored = self.decision(batch[0][0].request_id)
            if stored is None:
                raise
            return [stored]
        return [decision for decision, _ in batch]

    def _write_decisions(self, connection: Any, batch: list[tuple[Decision, bool]]) -> dict[str, LinearModel]:
        connection.execute(
            decisions.insert(),
            [
                {
                    "request_id": decision.request_id,
                    "user_id": decision.user_id,
                    "policy": decision.policy,
                    "bucket": decision.bucket,
                    "surface": decision.surface,
                    "item_ids": json.dumps(decision.item_ids),
                    "propensities": json.dumps(decision.propensities),
                    "candidate_ids": json.dumps(decision.candidate_ids),
                    "categories": json.dumps(decision.categories),
                    "features": decision.features.astype(np.float32).tobytes(),
                    "ranking_version": decision.ranking_version,
                    "created_at": self.clock(),
                }
                for decision, _ in batch
            ],
        )
        shown = [(decision.user_id, item) for decision, _ in batch for item in decision.item_ids]
        self._bump(connection, item_exposure, "shown", Counter((item,) for _, item in shown))
        self._bump(connection, shopper_exposure, "shown", Counter(shown))
        learned: dict[str, list[np.ndarray]] = {}
        for decision, learns in batch:
            if learns and decision.item_ids:
                learned.setdefault(decision.policy, []).append(decision.shown_contexts())
        states = {}
        for policy, found in learned.items():
            contexts = np.concatenate(found)
            states[policy] = self._change_state(
                connection, policy, partial(LinearModel.add_impressions, contexts=contexts)
            )
        return states

    def add_reward(
        self, event_id: str, decision: Decision, item_id: str, event_type: int, value: float, learns: bool
    ) -> bool:
        """Stores a reward and learns from it; False when this event_id was rewarded before."""

        def work(connection: Any) -> dict[str, LinearModel]:
            connection.execute(
                rewards.insert().values(
                    event_id=event_id,
                    request_id=decision.request_id,
                    item_id=item_id,
                    event_type=event_type,
                    value=value,
                    created_at=self.clock(),
                )
            )
            self._bump(connection, item_exposure, "reward", {(item_id,): value})
            self._bump(connection, shopper_exposure, "reward", {(decision.user_id, item_id): value})
            if not learns:
                return {}
            context = decision.shown_contexts()[decision.item_ids.index(item_id)]
            return {
                decision.policy: self._change_state(
                    connection, decision.policy, lambda m: m.add_reward(context, value)
                )
            }

        try:
            self._transaction(work)
        except IntegrityError:
            return False
        return True
