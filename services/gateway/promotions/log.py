"""The gateway's promotion tables: each plan's arguments and its decisions, with what the model saw.

A plan is decided whole, then stored with its decisions in one transaction; a second call with
the same plan_id finds it and replays it, so a plan is never decided twice. Each decision keeps
the features the model read, so the uplift model learns from what it knew at the time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Boolean, Column, DateTime, Float, Integer, String, Table, Text, select
from sqlalchemy.exc import IntegrityError

from services.gateway.store import metadata
from shared.db import Store, as_utc

plans = Table(
    "gateway_promotion_plans",
    metadata,
    Column("plan_id", String(64), primary_key=True),
    Column("arguments", Text, nullable=False),
    Column("policy", String(16), nullable=False),
    Column("feature_names", Text, nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
decisions = Table(
    "gateway_promotion_decisions",
    metadata,
    Column("plan_id", String(64), primary_key=True),
    Column("sequence", Integer, primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("offer_id", String(128), nullable=False),
    Column("category", Text, nullable=False),
    Column("sent", Boolean, nullable=False),
    Column("propensity", Float, nullable=False),
    Column("expected_margin", Float, nullable=False),
    Column("reason", Text, nullable=False),
    Column("committed", Float, nullable=False),
    Column("features", Text, nullable=False),
    Column("basket_price", Float, nullable=False),
    Column("discount", Float, nullable=False),
    Column("cost", Float, nullable=False),
)


class PlanMismatch(ValueError):
    """The plan id was first used with other arguments."""


@dataclass(frozen=True)
class StoredDecision:
    user_id: str
    offer_id: str
    category: str
    sent: bool
    propensity: float
    expected_margin: float
    reason: str
    committed: float
    features: list[float]
    basket_price: float
    discount: float
    cost: float


@dataclass(frozen=True)
class StoredPlan:
    plan_id: str
    arguments: str
    policy: str
    feature_names: list[str]
    window_start: datetime
    window_end: datetime
    decisions: list[StoredDecision]


class PromotionLog:
    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self.clock = store.clock

    def find(self, plan_id: str, arguments: str) -> StoredPlan | None:
        """The stored plan, or None; PlanMismatch when it was stored with other arguments."""
        with self.engine.connect() as connection:
            row = connection.execute(select(plans).where(plans.c.plan_id == plan_id)).first()
            if row is None:
                return None
            if row.arguments != arguments:
                raise PlanMismatch(
                    f"plan {plan_id!r} was first planned with other arguments ({row.arguments}); "
                    "use a new plan_id"
                )
            found = connection.execute(
                select(decisions).where(decisions.c.plan_id == plan_id).order_by(decisions.c.sequence)
            ).all()
        return StoredPlan(
            plan_id=row.plan_id,
            arguments=row.arguments,
            policy=row.policy,
            feature_names=json.loads(row.feature_names),
            window_start=as_utc(row.window_start),
            window_end=as_utc(row.window_end),
            decisions=[
                StoredDecision(
                    d.user_id,
                    d.offer_id,
                    d.category,
                    bool(d.sent),
                    d.propensity,
                    d.expected_margin,
                    d.reason,
                    d.committed,
                    json.loads(d.features),
                    d.basket_price,
                    d.discount,
                    d.cost,
                )
                for d in found
            ],
        )

    def store(self, plan: StoredPlan) -> StoredPlan:
        """Stores the plan and its decisions together; if another call stored the same plan_id
        first, returns that one instead."""
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    plans.insert(),
                    {
                        "plan_id": plan.plan_id,
                        "arguments": plan.arguments,
                        "policy": plan.policy,
                        "feature_names": json.dumps(plan.feature_names),
                        "window_start": plan.window_start,
                        "window_end": plan.window_end,
                        "created_at": self.clock(),
                    },
                )
                if plan.decisions:
                    connection.execute(
                        decisions.insert(),
                        [
                            {
                                "plan_id": plan.plan_id,
                                "sequence": n,
                                "user_id": d.user_id,
                                "offer_id": d.offer_id,
                                "category": d.category,
                                "sent": d.sent,
                                "propensity": d.propensity,
                                "expected_margin": d.expected_margin,
                                "reason": d.reason,
                                "committed": d.committed,
                                "features": json.dumps(d.features),
                                "basket_price": d.basket_price,
                                "discount": d.discount,
                                "cost": d.cost,
                            }
                            for n, d in enumerate(plan.decisions)
                        ],
                    )
        except IntegrityError:
            stored = self.find(plan.plan_id, plan.arguments)
            if stored is None:
                raise
            return stored
        return plan

    def ended(
        self, before: datetime, page: int = 1000
    ) -> Iterator[tuple[StoredPlan, Sequence[StoredDecision]]]:
        """Every plan whose window ended before `before`, with its decisions."""
        with self.engine.connect() as connection:
            ids = connection.execute(
                select(plans.c.plan_id, plans.c.arguments)
                .where(plans.c.window_end < before)
                .order_by(plans.c.plan_id)
            ).all()
        for plan_id, arguments in ids:
            plan = self.find(plan_id, arguments)
            if plan is not None:
                yield plan, plan.decisions
