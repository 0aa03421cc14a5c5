"""ProfileService RPCs: validation and proto conversion around the store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import datetime

import grpc

from ml.vae import USER_VAE, UserEncoder
from recsys.common.v1 import common_pb2
from recsys.profile.v1 import profile_pb2, profile_pb2_grpc
from services.profile.catalog import CatalogCheck
from services.profile.cleaning import clean, lookback
from services.profile.events import to_proto
from services.profile.store import ProfileStore, Quarantined
from shared.errors import NotFound, require
from shared.limits import MAX_SEGMENT_LENGTH
from shared.models import ModelWatcher
from shared.payloads import payload
from shared.timestamps import to_datetime

MAX_BATCH = 10_000
DEFAULT_HISTORY = 100
MAX_HISTORY = 1000
DEFAULT_EXPORT_BATCH = 5000
MAX_EXPORT_BATCH = 50_000
DEFAULT_LIST_BATCH = 1000
MAX_LIST_BATCH = 10_000
TOP_AFFINITIES = 20
DEFAULT_PENDING = 500
MAX_PENDING = 5000
# The oldest a pending reward may be asked for; beyond it a date cannot be computed.
MAX_PENDING_AGE_S = 365 * 24 * 3600
MAX_ACKS = 10_000


def merge_fixes(total: common_pb2.IngestSummary, fixes: Iterable[common_pb2.Fix]) -> None:
    """Adds each fix count to the total's entry with the same reason."""
    by_reason = {fix.reason: fix for fix in total.fixed}
    for fix in fixes:
        if fix.reason in by_reason:
            by_reason[fix.reason].count += fix.count
        else:
            by_reason[fix.reason] = total.fixed.add(reason=fix.reason, count=fix.count)


def _bounded(value: int, default: int, maximum: int, name: str) -> int:
    require(0 <= value <= maximum, f"{name} must be between 0 and {maximum}")
    return value or default


def _event_time(event: common_pb2.Event, now: datetime) -> datetime:
    """When the event happened; `now` when it does not say (or says something out of range: the
    cleaning stage rejects it)."""
    return (to_datetime(event.timestamp) if event.HasField("timestamp") else None) or now


async def ingest(
    store: ProfileStore, events: list[common_pb2.Event], catalog: CatalogCheck | None
) -> common_pb2.IngestSummary:
    """Runs the cleaning stage over a batch, stores what it keeps and quarantines the rest."""
    require(len(events) <= MAX_BATCH, f"a batch holds at most {MAX_BATCH} events")
    summary = common_pb2.IngestSummary()
    if not events:
        return summary
    now = store.clock()
    stored = await asyncio.to_thread(
        store.looked_back, lookback(events, [_event_time(e, now) for e in events])
    )
    known = await catalog.known_among(event.item_id for event in events) if catalog else None
    cleaned = clean(events, now, stored, known)
    quarantined = [
        Quarantined(event.event_id, event.user_id, reason, payload(event))
        for _, event, reason in cleaned.dropped
    ]
    facts = catalog.facts(record.item_id for _, record in cleaned.accepted) if catalog else {}
    result = await asyncio.to_thread(store.add_events, cleaned.accepted, quarantined, facts)
    summary.accepted = result.accepted
    summary.duplicates = len(result.duplicate_indexes)
    for index, event, reason in cleaned.dropped:
        summary.rejected.add(event_id=event.event_id[:128], index=index, reason=reason)
    for reason, count in sorted(cleaned.fixes.items()):
        summary.fixed.add(reason=reason, count=count)
    return summary


class ProfileServicer(profile_pb2_grpc.ProfileServiceServicer):
    def __init__(
        self,
        store: ProfileStore,
        catalog: CatalogCheck | None = None,
        vae: ModelWatcher[UserEncoder] | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.vae = vae

    async def RecordEvents(
        self,
        request_iterator: AsyncIterator[profile_pb2.RecordEventsRequest],
        context: grpc.aio.ServicerContext,
    ) -> profile_pb2.RecordEventsResponse:
        total = common_pb2.IngestSummary()
        offset = 0
        async for batch in request_iterator:
            summary = await ingest(self.store, list(batch.events), self.catalog)
            total.accepted += summary.accepted
            total.duplicates += summary.duplicates
            merge_fixes(total, summary.fixed)
            for rejection in summary.rejected:
                total.rejected.add(
                    event_id=rejection.event_id,
                    index=offset + rejection.index,
                    reason=rejection.reason,
                )
            offset += len(batch.events)
        return profile_pb2.RecordEventsResponse(summary=total)

    async def GetProfile(
        self, request: profile_pb2.GetProfileRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.GetProfileResponse:
        require(bool(request.user_id.strip()), "user_id must not be empty")
        found = await asyncio.to_thread(self.store.profile, request.user_id)
        if found is None:
            raise NotFound(f"user {request.user_id!r} has no events")
        profile = profile_pb2.Profile(
            user_id=found.user_id,
            event_count=found.event_count,
            purchase_count=found.purchase_count,
            recent_item_ids=found.recent_item_ids,
            purchased_item_ids=found.purchased_item_ids,
            consumed_item_ids=found.consumed_item_ids,
            segment=found.segment,
        )
        view = found.portrait.view(self.store.clock().timestamp(), self.store.half_life_s, TOP_AFFINITIES)
        profile.portrait.CopyFrom(
            profile_pb2.Portrait(
                categories=[profile_pb2.Affinity(name=n, score=s) for n, s in view.categories],
                brands=[profile_pb2.Affinity(name=n, score=s) for n, s in view.brands],
                typical_price=view.typical_price,
                price_low=view.price_low,
                price_high=view.price_high,
                events_per_day=view.events_per_day,
                review_sentiment=view.sentiment,
                hour_shares=view.hour_shares,
                category_sentiments=[
                    profile_pb2.Affinity(name=n, score=s) for n, s in view.category_sentiments
                ],
                brand_sentiments=[profile_pb2.Affinity(name=n, score=s) for n, s in view.brand_sentiments],
            )
        )
        encoder = self.vae.model if self.vae else None
        if encoder is not None:
            latent = encoder.latent(found.purchased_item_ids or found.recent_item_ids)
            profile.latent.extend([] if latent is None else latent.tolist())
            profile.latent_model.CopyFrom(common_pb2.ModelVersion(name=USER_VAE, version=self.vae.version))
        profile.first_event_time.FromDatetime(found.first_event_at)
        profile.last_event_time.FromDatetime(found.last_event_at)
        return profile_pb2.GetProfileResponse(profile=profile)

    async def GetHistory(
        self, request: profile_pb2.GetHistoryRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.GetHistoryResponse:
        require(bool(request.user_id.strip()), "user_id must not be empty")
        limit = _bounded(request.limit, DEFAULT_HISTORY, MAX_HISTORY, "limit")
        records = await asyncio.to_thread(self.store.history, request.user_id, limit)
        return profile_pb2.GetHistoryResponse(events=[to_proto(record) for record in records])

    async def ListUsers(
        self, request: profile_pb2.ListUsersRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[profile_pb2.ListUsersResponse]:
        require(
            len(request.segment) <= MAX_SEGMENT_LENGTH,
            f"segment must be at most {MAX_SEGMENT_LENGTH} characters",
        )
        size = _bounded(request.batch_size, DEFAULT_LIST_BATCH, MAX_LIST_BATCH, "batch_size")
        require(request.limit >= 0, "limit must not be negative")
        total = 0
        if not request.after_user_id:  # counted once per listing, not once per page
            total = await asyncio.to_thread(self.store.count_users, request.segment)
        batches = self.store.user_ids(request.segment, size, request.after_user_id, request.limit)
        while True:
            batch = await asyncio.to_thread(next, batches, None)
            if batch is None:
                return
            yield profile_pb2.ListUsersResponse(user_ids=batch, total=total)
            total = 0

    async def ExportEvents(
        self, request: profile_pb2.ExportEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[profile_pb2.ExportEventsResponse]:
        size = _bounded(request.batch_size, DEFAULT_EXPORT_BATCH, MAX_EXPORT_BATCH, "batch_size")
        batches = self.store.export(size)
        while True:
            batch = await asyncio.to_thread(next, batches, None)
            if batch is None:
                return
            yield profile_pb2.ExportEventsResponse(events=[to_proto(record) for record in batch])

    async def ListPendingRewards(
        self, request: profile_pb2.ListPendingRewardsRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.ListPendingRewardsResponse:
        limit = _bounded(request.limit, DEFAULT_PENDING, MAX_PENDING, "limit")
        require(
            0 <= request.min_age_seconds <= MAX_PENDING_AGE_S,  # NaN fails both comparisons
            f"min_age_seconds must be between 0 and {MAX_PENDING_AGE_S:,} (a year)",
        )
        records, pending = await asyncio.to_thread(self.store.pending_rewards, limit, request.min_age_seconds)
        return profile_pb2.ListPendingRewardsResponse(
            events=[to_proto(record) for record in records], pending=pending
        )

    async def AckRewards(
        self, request: profile_pb2.AckRewardsRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.AckRewardsResponse:
        require(len(request.event_ids) <= MAX_ACKS, f"event_ids must hold at most {MAX_ACKS} ids")
        done = await asyncio.to_thread(self.store.ack_rewards, list(request.event_ids))
        return profile_pb2.AckRewardsResponse(acknowledged=done)
