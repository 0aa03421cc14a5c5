"""The gateway's push tables: shoppers' push settings, the log of planned pushes with their
feedback, and campaigns with the outcome for each of their shoppers.

A push is stored only after the fatigue rules pass against the shopper's other
pushes, in the same transaction (on PostgreSQL under an advisory lock per
shopper, on SQLite under the one writer lock of the process), so concurrent
planners never break a cap together. A campaign's outcome per shopper is keyed
by (campaign_id, user_id): a rerun finds it and plans nobody twice.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf import json_format
from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2
from services.gateway.push.rules import Planned, broken_rule, history_window
from services.gateway.settings import PushConfig
from services.gateway.store import metadata
from services.gateway.typed_fields import with_template_kind
from shared.db import Store, as_utc, upsert

settings_table = Table(
    "gateway_push_settings",
    metadata,
    Column("user_id", String(128), primary_key=True),
    Column("language", String(16), nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("opted_out", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
pushes = Table(
    "gateway_pushes",
    metadata,
    Column("push_id", String(64), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("campaign_id", String(64), nullable=False),
    Column("request_id", String(64), nullable=False, index=True),
    Column("item_ids", Text, nullable=False),
    Column("template", String(32), nullable=False),
    Column("language", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("send_time", DateTime(timezone=True), nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=True),
    Column("converted_at", DateTime(timezone=True), nullable=True),
    Index("gateway_pushes_user_time", "user_id", "send_time"),
)
campaigns = Table(
    "gateway_push_campaigns",
    metadata,
    Column("campaign_id", String(64), primary_key=True),
    Column("segment", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
campaign_users = Table(
    "gateway_push_campaign_users",
    metadata,
    Column("campaign_id", String(64), primary_key=True),
    Column("user_id", String(128), primary_key=True),
    Column("push_id", String(64), nullable=True),
    Column("skip_reason", Text, nullable=False),
)
# Events that do not mean the shopper opened the push.
NOT_OPENING = (common_pb2.EVENT_TYPE_VIEW, common_pb2.EVENT_TYPE_DISMISS)


@dataclass(frozen=True)
class UserSettings:
    language: str
    time_zone: str
    opted_out: bool


@dataclass(frozen=True)
class Outcome:
    """What became of one shopper: a push, or why none."""

    user_id: str
    push: gateway_pb2.PushMessage | None = None
    skip_reason: str = ""
    retry: bool = False  # a passing failure (a stage down): not stored, so that a rerun tries again


class CampaignMismatch(ValueError):
    """The campaign id was first planned for another segment."""


def _message(raw: str) -> gateway_pb2.PushMessage:
    return with_template_kind(json_format.Parse(raw, gateway_pb2.PushMessage()))


class PushLog:
    def __init__(self, store: Store, config: PushConfig) -> None:
        self.engine = store.engine
        self.clock = store.clock
        self.config = config
        self._sqlite_writer = threading.Lock()

    def save_settings(self, entries: Sequence[gateway_pb2.PushSettings]) -> int:
        now = self.clock()
        rows = {
            entry.user_id: {
                "user_id": entry.user_id,
                "language": entry.language,
                "time_zone": entry.time_zone,
                "opted_out": int(entry.opted_out),
                "updated_at": now,
            }
            for entry in entries
        }
        statement = upsert(self.engine, settings_table)
        statement = statement.on_conflict_do_update(
            index_elements=[settings_table.c.user_id],
            set_={
                name: statement.excluded[name]
                for name in ("language", "time_zone", "opted_out", "updated_at")
            },
        )
        with self.engine.begin() as connection:
            connection.execute(statement, list(rows.values()))
        return len(rows)

    def settings_of(self, user_ids: Sequence[str]) -> dict[str, UserSettings]:
        query = select(settings_table).where(settings_table.c.user_id.in_(list(user_ids)))
        with self.engine.connect() as connection:
            return {
                row.user_id: UserSettings(row.language, row.time_zone, bool(row.opted_out))
                for row in connection.execute(query)
            }

    def planned(self, connection: object, user_id: str, start: datetime, end: datetime) -> list[Planned]:
        query = select(pushes.c.send_time, pushes.c.item_ids).where(
            pushes.c.user_id == user_id, pushes.c.send_time >= start, pushes.c.send_time <= end
        )
        return [
            Planned(as_utc(row.send_time), tuple(json.loads(row.item_ids)))
            for row in connection.execute(query)  # type: ignore[attr-defined]
        ]

    def planned_for(self, user_id: str) -> list[Planned]:
        """Every push planned for the shopper."""
        with self.engine.connect() as connection:
            return self.planned(
                connection, user_id, datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
            )

    def recently_pushed(self, user_id: str, now: datetime) -> set[str]:
        """Items pushed to the shopper (or planned) within the dedupe window around now."""
        window = timedelta(days=self.config.dedupe_days)
        with self.engine.connect() as connection:
            found = self.planned(connection, user_id, now - window, now + window)
        return {item for push in found for item in push.item_ids}

    def _lock_user(self, connection: object, user_id: str) -> None:
        if self.engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:user))"), {"user": user_id})  # type: ignore[attr-defined]

    def record(self, outcomes: Sequence[Outcome], campaign_id: str = "") -> list[Outcome]:
        """Stores each push whose rules still pass (else turns it into a skip with the rule), and
        for a campaign every shopper's outcome; returns the outcomes as stored. A shopper whose
        campaign outcome another run stored first gets that one back."""
        if self.engine.dialect.name == "sqlite":
            with self._sqlite_writer:
                return self._record(outcomes, campaign_id)
        return self._record(outcomes, campaign_id)

    def _record(self, outcomes: Sequence[Outcome], campaign_id: str) -> list[Outcome]:
        try:
            with self.engine.begin() as connection:
                return [self._record_one(connection, outcome, campaign_id) for outcome in outcomes]
        except IntegrityError:
            if not campaign_id:
                raise
        # another run of the campaign stored some of these shoppers meanwhile: one at a time
        stored = []
        for outcome in outcomes:
            try:
                with self.engine.begin() as connection:
                    stored.append(self._record_one(connection, outcome, campaign_id))
            except IntegrityError:
                stored.append(self.campaign_outcomes(campaign_id, [outcome.user_id])[outcome.user_id])
        return stored

    def _record_one(self, connection: object, outcome: Outcome, campaign_id: str) -> Outcome:
        push = outcome.push
        if push is not None:
            self._lock_user(connection, outcome.user_id)
            send_time = push.send_time.ToDatetime(tzinfo=UTC)
            window = history_window(self.config)
            earlier = self.planned(connection, outcome.user_id, send_time - window, send_time + window)
            broken = broken_rule(earlier, send_time, list(push.item_ids), self.config)
            if broken:
                outcome = Outcome(outcome.user_id, skip_reason=broken)
            else:
                connection.execute(  # type: ignore[attr-defined]
                    pushes.insert().values(
                        push_id=push.push_id,
                        user_id=push.user_id,
                        campaign_id=campaign_id,
                        request_id=push.request_id,
                        item_ids=json.dumps(list(push.item_ids)),
                        template=push.template,
                        language=push.language,
                        reason=push.reason,
                        confidence=push.confidence,
                        send_time=send_time,
                        message=json_format.MessageToJson(push, indent=None),
                        created_at=self.clock(),
                    )
                )
        if campaign_id:
            connection.execute(  # type: ignore[attr-defined]
                campaign_users.insert().values(
                    campaign_id=campaign_id,
                    user_id=outcome.user_id,
                    push_id=outcome.push.push_id if outcome.push else None,
                    skip_reason=outcome.skip_reason,
                )
            )
        return outcome

    def open_campaign(self, campaign_id: str, segment: str) -> None:
        """Registers the campaign, or checks that a rerun asks for the same segment."""
        with self.engine.begin() as connection:
            found = connection.execute(
                select(campaigns.c.segment).where(campaigns.c.campaign_id == campaign_id)
            ).first()
            if found is None:
                statement = upsert(self.engine, campaigns).on_conflict_do_nothing()
                connection.execute(
                    statement,
                    {"campaign_id": campaign_id, "segment": segment, "created_at": self.clock()},
                )
                return
        if found.segment != segment:
            who = f"segment {found.segment!r}" if found.segment else "everyone"
            raise CampaignMismatch(f"campaign {campaign_id!r} was planned for {who}; use a new campaign_id")

    def campaign_outcomes(self, campaign_id: str, user_ids: Sequence[str]) -> dict[str, Outcome]:
        """The stored outcomes of these shoppers in the campaign."""
        query = (
            select(campaign_users.c.user_id, campaign_users.c.skip_reason, pushes.c.message)
            .select_from(campaign_users.outerjoin(pushes, campaign_users.c.push_id == pushes.c.push_id))
            .where(campaign_users.c.campaign_id == campaign_id, campaign_users.c.user_id.in_(list(user_ids)))
        )
        with self.engine.connect() as connection:
            return {
                row.user_id: Outcome(
                    row.user_id, _message(row.message) if row.message else None, row.skip_reason
                )
                for row in connection.execute(query)
            }

    def mark_feedback(self, events: Iterable[common_pb2.Event]) -> int:
        """Marks the pushes these events answer as opened (a click or any later step) and converted
        (a purchase); returns how many events answered a push."""
        answered = 0
        with self.engine.begin() as connection:
            for event in events:
                if not event.request_id or event.type in NOT_OPENING:
                    continue
                matching = pushes.c.request_id == event.request_id
                if connection.execute(select(pushes.c.push_id).where(matching)).first() is None:
                    continue
                answered += 1
                moment = (
                    event.timestamp.ToDatetime(tzinfo=UTC) if event.HasField("timestamp") else self.clock()
                )
                connection.execute(
                    update(pushes).where(matching, pushes.c.opened_at.is_(None)).values(opened_at=moment)
                )
                if event.type == common_pb2.EVENT_TYPE_PURCHASE:
                    connection.execute(
                        update(pushes)
                        .where(matching, pushes.c.converted_at.is_(None))
                        .values(converted_at=moment)
                    )
        return answered
