"""The profile service's tables: every event, and per-user counters kept in the same transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    and_,
    case,
    func,
    select,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from ml.event_weights import DEFAULT_WEIGHTS
from ml.sentiment import opinion_words
from services.profile.cache import VersionedCache
from services.profile.cleaning import BROWSING, Lookback, Seen
from services.profile.events import DISMISS, PURCHASE, REVIEW, EventRecord
from services.profile.portrait import ItemFacts, Portrait, review_sentiment
from shared.bulk import lookup_chunks, not_yet_stored, one_of, write_rows
from shared.clock import Clock, system_clock
from shared.db import Store, as_utc, lost_a_race

RECENT_ITEMS_LIMIT = 200
DEFAULT_CACHED_PROFILES = 10_000
PURCHASED_ITEMS_LIMIT = 5000
WRITE_ATTEMPTS = 5

metadata = MetaData()
events = Table(
    "profile_events",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=False, unique=True),
    Column("user_id", String(128), nullable=False),
    Column("item_id", String(128), nullable=False),
    Column("type", SmallInteger, nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("request_id", String(128), nullable=False, default=""),
    Column("quantity", Integer, nullable=False),
    Column("price", Float, nullable=False),
    Column("rating", SmallInteger, nullable=False),
    Column("text", Text, nullable=False, default=""),
    Column("surface", String(32), nullable=False, default=""),
    Column("session_id", String(128), nullable=False, default=""),
    Column("segment", String(64), nullable=False, default=""),
    Index("profile_users_segment", "segment", "user_id"),
)
quarantine = Table(
    "profile_quarantine",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)
# Rewards not yet delivered to the policy: one row per stored event that answers a recommendation,
# written in the event's transaction and deleted once delivered (AckRewards).
pending_rewards = Table(
    "profile_pending_rewards",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=False, unique=True),
    Column("enqueued_at", DateTime(timezone=True), nullable=False),
)
portraits = Table(
    "profile_portraits",
    metadata,
    Column("user_id", String(128), primary_key=True),
    Column("state", Text, nullable=False),
)
users = Table(
    "profile_users",
    metadata,
    Column("user_id", String(128), primary_key=True),
    Column("event_count", BigInteger, nullable=False),
    Column("purchase_count", BigInteger, nullable=False),
    Column("first_event_at", DateTime(timezone=True), nullable=False),
    Column("last_event_at", DateTime(timezone=True), nullable=False),
    Column("segment", String(64), nullable=False, default=""),
)


@dataclass(frozen=True)
class Quarantined:
    """An event the cleaning stage dropped, kept with its reason."""

    event_id: str
    user_id: str
    reason: str
    payload: str


@dataclass
class StoreResult:
    accepted: int = 0
    duplicate_indexes: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class UserProfile:
    user_id: str
    event_count: int
    purchase_count: int
    first_event_at: datetime
    last_event_at: datetime
    segment: str
    recent_item_ids: list[str]
    purchased_item_ids: list[str]
    consumed_item_ids: list[str]
    portrait: Portrait


def _in_window(connection: Any, user_ids: Sequence[str], start: datetime, end: datetime) -> tuple[Any, ...]:
    """The conditions for these users' events between two times (inclusive)."""
    return (one_of(connection, events.c.user_id, user_ids), events.c.ts >= start, events.c.ts <= end)


def _record(row: object) -> EventRecord:
    mapping = row._mapping  # type: ignore[attr-defined]
    return EventRecord(
        event_id=mapping["event_id"],
        user_id=mapping["user_id"],
        item_id=mapping["item_id"],
        type=mapping["type"],
        timestamp=as_utc(mapping["ts"]),
        request_id=mapping["request_id"],
        quantity=mapping["quantity"],
        price=mapping["price"],
        rating=mapping["rating"],
        text=mapping["text"],
        surface=mapping["surface"],
        session_id=mapping["session_id"],
        segment=mapping["segment"],
    )


class ProfileStore(Store):
    service = "profile"
    migrations = Path(__file__).parent / "migrations"

    def __init__(
        self,
        url: str,
        half_life_days: float = 30.0,
        clock: Clock = system_clock,
        consumed_types: Sequence[int] = (PURCHASE, REVIEW),
        cached_profiles: int = DEFAULT_CACHED_PROFILES,
        text_score: Callable[[str], float | None] = opinion_words,
        event_weights: Callable[[], Mapping[int, float]] = lambda: DEFAULT_WEIGHTS,
    ) -> None:
        super().__init__(url, clock)
        # A review text's sentiment, for reviews without a rating (services/profile/app.py).
        self.text_score = text_score
        # How much each event type counts in the portrait: the published weights, else the defaults.
        self.event_weights = event_weights
        self.half_life_s = half_life_days * 86_400
        # Event types that mark an item as consumed (never recommended again); purchases always do.
        self.consumed_types = tuple(consumed_types)
        self.cache: VersionedCache[UserProfile] = VersionedCache(cached_profiles)

    def _seen(
        self,
        connection: Any,
        user_ids: Sequence[str],
        start: datetime,
        end: datetime,
        types: Sequence[int] = (),
    ) -> Iterator[tuple[str, Seen]]:
        """(user, event) of these users' stored events between two times (of these types, if given)."""
        for chunk in lookup_chunks(connection, user_ids):
            query = select(
                events.c.event_id, events.c.user_id, events.c.item_id, events.c.type, events.c.ts
            ).where(*_in_window(connection, chunk, start, end))
            if types:
                query = query.where(events.c.type.in_(types))
            for row in connection.execute(query).all():
                yield row.user_id, Seen(row.event_id, row.item_id, row.type, as_utc(row.ts))

    def _counts(
        self,
        connection: Any,
        user_ids: Sequence[str],
        start: datetime,
        end: datetime,
        types: Sequence[int],
        least: int,
    ) -> dict[str, int]:
        """How many stored events of these types each user has between two times, for the users with
        at least `least` of them."""
        found: dict[str, int] = {}
        for chunk in lookup_chunks(connection, user_ids):
            query = (
                select(events.c.user_id, func.count())
                .where(*_in_window(connection, chunk, start, end), events.c.type.in_(types))
                .group_by(events.c.user_id)
                .having(func.count() >= least)
            )
            found.update((user, int(count)) for user, count in connection.execute(query).all())
        return found

    def looked_back(self, wanted: Lookback) -> dict[str, list[Seen]]:
        """The stored events the cleaning stage needs for a batch (see Lookback), per user."""
        found: dict[str, list[Seen]] = {}
        with self.engine.connect() as connection:
            for user, seen in self._seen(connection, wanted.user_ids, *wanted.near):
                found.setdefault(user, []).append(seen)
            stored_browsing = self._counts(
                connection,
                wanted.user_ids,
                *wanted.burst,
                sorted(BROWSING),
                wanted.least_stored_for_a_burst(),
            )
            busy = wanted.could_burst(stored_browsing)
            near_ids = {seen.event_id for seen_list in found.values() for seen in seen_list}
            for user, seen in self._seen(connection, busy, *wanted.burst, sorted(BROWSING)):
                if seen.event_id not in near_ids:
                    found.setdefault(user, []).append(seen)
        return found

    def quarantined(self, limit: int = 100) -> list[tuple[str, str]]:
        """(event_id, reason) of the most recent quarantined events."""
        query = (
            select(quarantine.c.event_id, quarantine.c.reason).order_by(quarantine.c.id.desc()).limit(limit)
        )
        with self.engine.connect() as connection:
            return [(row.event_id, row.reason) for row in connection.execute(query)]

    def add_events(
        self,
        records: Sequence[tuple[int, EventRecord]],
        dropped: Sequence[Quarantined] = (),
        facts: Mapping[str, ItemFacts] | None = None,
    ) -> StoreResult:
        """Stores new events, their users' counters and portraits, and the quarantined events, in one
        transaction. `facts` describes the events' items (category, brand, price) for the portraits.

        `records` pairs each event with its index in the caller's batch; events
        whose id is already stored (or repeated in the batch) are reported as
        duplicates. A concurrent writer of the same ids is waited for, and what it stored is a
        duplicate, so every id is stored exactly once; a deadlock or serialization failure makes the
        transaction retry (rare: shoppers' rows are written in id order).
        """
        for _attempt in range(WRITE_ATTEMPTS - 1):
            try:
                return self._add_events_once(records, dropped, facts or {})
            except DBAPIError as error:
                if not (isinstance(error, IntegrityError) or lost_a_race(error)):
                    raise
        return self._add_events_once(records, dropped, facts or {})

    def _add_events_once(
        self,
        records: Sequence[tuple[int, EventRecord]],
        dropped: Sequence[Quarantined],
        facts: Mapping[str, ItemFacts],
    ) -> StoreResult:
        result = StoreResult()
        with self.engine.begin() as connection:
            if dropped:
                now = self.clock()
                rows = [
                    {
                        "event_id": q.event_id[:128],
                        "user_id": q.user_id[:128],
                        "reason": q.reason,
                        "payload": q.payload,
                        "received_at": now,
                    }
                    for q in dropped
                ]
                fresh = not_yet_stored(connection, quarantine, rows, ("event_id", "reason", "payload"))
                if fresh:
                    connection.execute(quarantine.insert(), fresh)
            unique: dict[str, tuple[int, EventRecord]] = {}
            for index, record in records:
                if record.event_id in unique:
                    result.duplicate_indexes.append(index)
                else:
                    unique[record.event_id] = (index, record)
            if not unique:
                return result
            # An id already stored (or being stored by a concurrent writer, which this waits for) is
            # skipped by the insert itself and reported as a duplicate: one statement, not a look-up
            # and an insert.
            inserted = write_rows(
                connection,
                events,
                [
                    {
                        "event_id": r.event_id,
                        "user_id": r.user_id,
                        "item_id": r.item_id,
                        "type": r.type,
                        "ts": r.timestamp,
                        "request_id": r.request_id,
                        "quantity": r.quantity,
                        "price": r.price,
                        "rating": r.rating,
                        "text": r.text,
                        "surface": r.surface,
                        "session_id": r.session_id,
                        "segment": r.segment,
                    }
                    for _, r in unique.values()
                ],
                lambda statement: statement.on_conflict_do_nothing(
                    index_elements=[events.c.event_id]
                ).returning(events.c.event_id),
            )
            stored = set(inserted.scalars())
            result.duplicate_indexes.extend(index for index, r in unique.values() if r.event_id not in stored)
            result.duplicate_indexes.sort()
            kept = [r for _, r in unique.values() if r.event_id in stored]
            if not kept:
                return result
            answering = [{"event_id": r.event_id, "enqueued_at": self.clock()} for r in kept if r.request_id]
            write_rows(connection, pending_rewards, answering)
            self._update_users(connection, kept)
            self._update_portraits(connection, kept, facts)
            result.accepted = len(kept)
        return result

    def pending_rewards(self, limit: int, min_age_s: float = 0.0) -> tuple[list[EventRecord], int]:
        """The oldest `limit` events whose reward is not yet delivered (enqueued at least
        `min_age_s` ago), and how many are pending in all."""
        query = (
            select(events)
            .join(pending_rewards, pending_rewards.c.event_id == events.c.event_id)
            .where(pending_rewards.c.enqueued_at <= self.clock() - timedelta(seconds=min_age_s))
            .order_by(pending_rewards.c.seq)
            .limit(limit)
        )
        with self.engine.connect() as connection:
            found = [_record(row) for row in connection.execute(query)]
            total = connection.execute(select(func.count()).select_from(pending_rewards)).scalar_one()
        return found, int(total)

    def ack_rewards(self, event_ids: Sequence[str]) -> int:
        """Forgets the pending rewards of these events (delivered); returns how many were pending."""
        done = 0
        with self.engine.begin() as connection:
            for chunk in lookup_chunks(connection, list(event_ids)):
                done += connection.execute(
                    pending_rewards.delete().where(one_of(connection, pending_rewards.c.event_id, chunk))
                ).rowcount
        return done

    def _update_users(self, connection: object, fresh: Sequence[EventRecord]) -> None:
        per_user: dict[str, dict[str, object]] = {}
        for record in fresh:
            row = per_user.setdefault(
                record.user_id,
                {
                    "user_id": record.user_id,
                    "event_count": 0,
                    "purchase_count": 0,
                    "first_event_at": record.timestamp,
                    "last_event_at": record.timestamp,
                    "segment": "",
                    "segment_at": None,
                },
            )
            if record.segment and (row["segment_at"] is None or record.timestamp >= row["segment_at"]):
                row["segment"], row["segment_at"] = record.segment, record.timestamp
            row["event_count"] = int(row["event_count"]) + 1  # type: ignore[call-overload]
            row["purchase_count"] = int(row["purchase_count"]) + (record.type == PURCHASE)  # type: ignore[call-overload]
            row["first_event_at"] = min(row["first_event_at"], record.timestamp)  # type: ignore[type-var]
            row["last_event_at"] = max(row["last_event_at"], record.timestamp)  # type: ignore[type-var]
        # SQLite spells the two-argument LEAST/GREATEST as scalar MIN/MAX.
        sqlite = self.engine.dialect.name == "sqlite"
        least, greatest = (func.min, func.max) if sqlite else (func.least, func.greatest)

        def adding(statement: Any) -> Any:
            excluded = statement.excluded
            return statement.on_conflict_do_update(
                index_elements=[users.c.user_id],
                set_={
                    "event_count": users.c.event_count + excluded.event_count,
                    "purchase_count": users.c.purchase_count + excluded.purchase_count,
                    "first_event_at": least(users.c.first_event_at, excluded.first_event_at),
                    "last_event_at": greatest(users.c.last_event_at, excluded.last_event_at),
                    # the segment of the latest event that named one
                    "segment": case(
                        (
                            and_(excluded.segment != "", excluded.last_event_at >= users.c.last_event_at),
                            excluded.segment,
                        ),
                        (users.c.segment == "", excluded.segment),
                        else_=users.c.segment,
                    ),
                },
            )

        # in id order: two batches of the same shoppers lock their rows in the same order
        rows = [{k: v for k, v in per_user[user].items() if k != "segment_at"} for user in sorted(per_user)]
        write_rows(connection, users, rows, adding)  # type: ignore[arg-type]

    def _update_portraits(
        self, connection: object, fresh: Sequence[EventRecord], facts: Mapping[str, ItemFacts]
    ) -> None:
        """Folds the events into their users' portraits. Two writers of one user take turns: the users
        upsert before this locks the user's row until commit, and the portrait is read after it."""
        user_ids = sorted({record.user_id for record in fresh})
        query = select(portraits).where(one_of(connection, portraits.c.user_id, user_ids))  # type: ignore[arg-type]
        stored = {row.user_id: row.state for row in connection.execute(query)}  # type: ignore[attr-defined]
        folded = {
            user: Portrait.from_json(stored[user]) if user in stored else Portrait() for user in user_ids
        }
        weights = self.event_weights()
        for record in sorted(fresh, key=lambda r: r.timestamp):
            folded[record.user_id].fold(
                record.type,
                record.timestamp.timestamp(),
                facts.get(record.item_id),
                review_sentiment(record.rating, record.text, self.text_score)
                if record.type == REVIEW
                else None,
                self.half_life_s,
                weights,
            )
        write_rows(
            connection,  # type: ignore[arg-type]
            portraits,
            [{"user_id": user, "state": portrait.to_json()} for user, portrait in folded.items()],
            lambda statement: statement.on_conflict_do_update(
                index_elements=[portraits.c.user_id], set_={"state": statement.excluded.state}
            ),
        )

    def _latest_items(self, connection: object, user_id: str) -> tuple[list[str], list[str], list[str]]:
        """The shopper's items by their latest event, most recent first (ties by item id): by any
        event but a dismissal (at most RECENT_ITEMS_LIMIT), by purchase, and by purchase or a
        consumed type (at most PURCHASED_ITEMS_LIMIT each). One read of the shopper's events for
        the three lists."""
        query = (
            select(events.c.item_id, events.c.type, func.max(events.c.ts))
            .where(events.c.user_id == user_id)
            .group_by(events.c.item_id, events.c.type)
        )
        rows = connection.execute(query).all()  # type: ignore[attr-defined]
        consumed = {PURCHASE, *self.consumed_types}

        def latest(counts: Callable[[int], bool], limit: int) -> list[str]:
            moments: dict[str, Any] = {}
            for item_id, kind, moment in rows:
                if counts(kind) and (item_id not in moments or moment > moments[item_id]):
                    moments[item_id] = moment
            ordered = sorted(moments.items())  # by item id, then (stable) by moment, latest first
            ordered.sort(key=lambda pair: pair[1], reverse=True)
            return [item_id for item_id, _ in ordered[:limit]]

        return (
            latest(lambda kind: kind != DISMISS, RECENT_ITEMS_LIMIT),
            latest(lambda kind: kind == PURCHASE, PURCHASED_ITEMS_LIMIT),
            latest(lambda kind: kind in consumed, PURCHASED_ITEMS_LIMIT),
        )

    def profile(self, user_id: str) -> UserProfile | None:
        """The shopper's profile, from the cache while their event count is the one it was read at."""
        with self.engine.connect() as connection:
            row = connection.execute(select(users).where(users.c.user_id == user_id)).first()
            if row is None:
                return None
            cached = self.cache.get(user_id, row.event_count)
            if cached is not None:
                return cached
            state = connection.execute(
                select(portraits.c.state).where(portraits.c.user_id == user_id)
            ).scalar()
            recent, purchased, consumed = self._latest_items(connection, user_id)
            found = UserProfile(
                user_id=user_id,
                event_count=row.event_count,
                purchase_count=row.purchase_count,
                first_event_at=as_utc(row.first_event_at),
                last_event_at=as_utc(row.last_event_at),
                segment=row.segment,
                recent_item_ids=recent,
                purchased_item_ids=purchased,
                consumed_item_ids=consumed,
                portrait=Portrait.from_json(state) if state else Portrait(),
            )
        self.cache.put(user_id, row.event_count, found)
        return found

    def count_users(self, segment: str) -> int:
        query = select(func.count()).select_from(users)
        if segment:
            query = query.where(users.c.segment == segment)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar() or 0)

    def user_ids(self, segment: str, batch_size: int, after: str = "", limit: int = 0) -> Iterator[list[str]]:
        """The ids of the segment's shoppers (everyone's when empty) greater than `after`, in ascending
        order, in batches (keyset pagination); at most `limit` in all unless it is 0."""
        last, left = after, limit or None
        while left is None or left > 0:
            size = batch_size if left is None else min(batch_size, left)
            query = select(users.c.user_id).where(users.c.user_id > last)
            if segment:
                query = query.where(users.c.segment == segment)
            query = query.order_by(users.c.user_id).limit(size)
            with self.engine.connect() as connection:
                batch = list(connection.execute(query).scalars())
            if not batch:
                return
            last = batch[-1]
            left = None if left is None else left - len(batch)
            yield batch

    def history(self, user_id: str, limit: int) -> list[EventRecord]:
        query = (
            select(events)
            .where(events.c.user_id == user_id)
            .order_by(events.c.ts.desc(), events.c.seq.desc())
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [_record(row) for row in connection.execute(query)]

    def export(self, batch_size: int) -> Iterator[list[EventRecord]]:
        """Every event in storage order, in batches (keyset pagination on seq)."""
        last_seq = 0
        while True:
            query = select(events).where(events.c.seq > last_seq).order_by(events.c.seq).limit(batch_size)
            with self.engine.connect() as connection:
                rows = list(connection.execute(query))
            if not rows:
                return
            last_seq = rows[-1].seq
            yield [_record(row) for row in rows]
