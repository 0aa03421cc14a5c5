"""The policy service's tables: every decision with its propensities, and every reward."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Column, DateTime, Float, MetaData, SmallInteger, String, Table, Text, select
from sqlalchemy.exc import IntegrityError

from shared.db import Store

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


@dataclass(frozen=True)
class Decision:
    request_id: str
    user_id: str
    policy: str
    bucket: str
    surface: str
    item_ids: list[str]
    propensities: list[float]


class PolicyStore(Store):
    service = "policy"
    migrations = Path(__file__).parent / "migrations"

    def decision(self, request_id: str) -> Decision | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(decisions).where(decisions.c.request_id == request_id)).first()
        if row is None:
            return None
        return Decision(
            request_id=row.request_id,
            user_id=row.user_id,
            policy=row.policy,
            bucket=row.bucket,
            surface=row.surface,
            item_ids=json.loads(row.item_ids),
            propensities=json.loads(row.propensities),
        )

    def log_decision(self, decision: Decision) -> Decision:
        """Stores the decision; a request_id logged before keeps its first decision."""
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    decisions.insert().values(
                        request_id=decision.request_id,
                        user_id=decision.user_id,
                        policy=decision.policy,
                        bucket=decision.bucket,
                        surface=decision.surface,
                        item_ids=json.dumps(decision.item_ids),
                        propensities=json.dumps(decision.propensities),
                        created_at=datetime.now(UTC),
                    )
                )
            return decision
        except IntegrityError:
            stored = self.decision(decision.request_id)
            assert stored is not None
            return stored

    def add_reward(self, event_id: str, request_id: str, item_id: str, event_type: int, value: float) -> bool:
        """Stores a reward; False when this event_id was rewarded before."""
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    rewards.insert().values(
                        event_id=event_id,
                        request_id=request_id,
                        item_id=item_id,
                        event_type=event_type,
                        value=value,
                        created_at=datetime.now(UTC),
                    )
                )
            return True
        except IntegrityError:
            return False
