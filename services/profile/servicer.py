"""ProfileService RPCs: validation and proto conversion around the store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc

from recsys.common.v1 import common_pb2
from recsys.profile.v1 import profile_pb2, profile_pb2_grpc
from services.profile.events import EventRecord, to_proto, validate
from services.profile.store import ProfileStore
from shared.errors import NotFound, require

MAX_BATCH = 10_000
DEFAULT_HISTORY = 100
MAX_HISTORY = 1000
DEFAULT_EXPORT_BATCH = 5000
MAX_EXPORT_BATCH = 50_000


def _bounded(value: int, default: int, maximum: int, name: str) -> int:
    require(0 <= value <= maximum, f"{name} must be between 0 and {maximum}")
    return value or default


async def ingest(store: ProfileStore, events: list[common_pb2.Event]) -> common_pb2.IngestSummary:
    """Validates a batch, stores the valid events and summarizes what happened to each."""
    require(len(events) <= MAX_BATCH, f"a batch holds at most {MAX_BATCH} events")
    now = datetime.now(UTC)
    valid: list[tuple[int, EventRecord]] = []
    summary = common_pb2.IngestSummary()
    for index, event in enumerate(events):
        checked = validate(event, now)
        if isinstance(checked, str):
            summary.rejected.add(event_id=event.event_id[:128], index=index, reason=checked)
        else:
            valid.append((index, checked))
    if valid:
        stored = await asyncio.to_thread(store.add_events, valid)
        summary.accepted = stored.accepted
        summary.duplicates = len(stored.duplicate_indexes)
    return summary


class ProfileServicer(profile_pb2_grpc.ProfileServiceServicer):
    def __init__(self, store: ProfileStore) -> None:
        self.store = store

    async def RecordEvents(
        self,
        request_iterator: AsyncIterator[profile_pb2.RecordEventsRequest],
        context: grpc.aio.ServicerContext,
    ) -> profile_pb2.RecordEventsResponse:
        total = common_pb2.IngestSummary()
        offset = 0
        async for batch in request_iterator:
            summary = await ingest(self.store, list(batch.events))
            total.accepted += summary.accepted
            total.duplicates += summary.duplicates
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
        )
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
