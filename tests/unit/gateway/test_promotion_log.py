"""The promotion log on SQLite and PostgreSQL: a plan is stored whole once, and found again only
with the arguments it was made with."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from services.gateway.promotions.log import PlanMismatch, PromotionLog, StoredDecision, StoredPlan
from services.gateway.store import GatewayStore

START = datetime(2030, 1, 6, tzinfo=UTC)


def _plan(plan_id: str, sent: bool) -> StoredPlan:
    decision = StoredDecision(
        "u1", "c1", "Home>Kitchen", sent, 0.9, 0.4, "why", 2.0, [1.0, 0.5], 8.0, 1.6, 0.0
    )
    return StoredPlan(
        plan_id, '{"budget": 10}', "uplift", ["intercept", "x"], START, START + timedelta(days=7), [decision]
    )


@pytest.fixture
def promotion_log(database_url: str):
    store = GatewayStore(database_url)
    store.migrate()
    try:
        yield PromotionLog(store)
    finally:
        store.close()


def test_a_plan_is_stored_once_and_found_with_its_arguments(promotion_log: PromotionLog) -> None:
    with ThreadPoolExecutor(4) as pool:
        stored = list(pool.map(promotion_log.store, [_plan("p1", sent=n % 2 == 0) for n in range(4)]))
    assert len({s.decisions[0].sent for s in stored}) == 1  # every caller got the one stored plan
    found = promotion_log.find("p1", '{"budget": 10}')
    assert found is not None and found.decisions == stored[0].decisions
    assert found.window_end == START + timedelta(days=7)
    with pytest.raises(PlanMismatch, match="other arguments"):
        promotion_log.find("p1", '{"budget": 11}')
    assert promotion_log.find("p2", "{}") is None


def test_only_plans_whose_window_ended_are_exported(promotion_log: PromotionLog) -> None:
    promotion_log.store(_plan("p1", sent=True))
    assert [plan.plan_id for plan, _ in promotion_log.ended(START + timedelta(days=8))] == ["p1"]
    assert list(promotion_log.ended(START + timedelta(days=6))) == []
