"""RecordFeedback: store durably through the profile service, then reward the policy.

Events are acknowledged only after the profile service has committed them; if
it cannot, the caller gets UNAVAILABLE and may resend the same batch (events
are idempotent by event_id). Every stored or duplicate event that answers a
recommendation is forwarded as a reward; rewards are idempotent by event_id,
so forwarding duplicates again heals a forward that failed earlier. Events that
answer a push (its request_id) also mark it opened or converted in the push log.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2
from recsys.policy.v1 import policy_pb2
from recsys.profile.v1 import profile_pb2
from services.gateway.push.log import PushLog
from shared import metrics
from shared.clients import SuiteClients
from shared.errors import Unavailable, require

log = logging.getLogger(__name__)
MAX_EVENTS = 10_000
STORE_DEADLINE_S = 30.0
REWARD_CONCURRENCY = 16


class FeedbackRecorder:
    def __init__(self, clients: SuiteClients, deadline_s: float, push_log: PushLog) -> None:
        self.clients = clients
        self.deadline_s = deadline_s
        self.push_log = push_log

    async def _store(self, events: list[common_pb2.Event]) -> common_pb2.IngestSummary:
        try:
            response = await self.clients.profile.RecordEvents(
                iter([profile_pb2.RecordEventsRequest(events=events)]), timeout=STORE_DEADLINE_S
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise
            raise Unavailable(
                f"events not acknowledged: profile service {error.code().name}; "
                "resend the same batch (events are idempotent by event_id)"
            ) from error
        return response.summary

    async def _reward(self, event: common_pb2.Event, limit: asyncio.Semaphore) -> bool:
        """True when the policy recorded a new reward (not a resent event's)."""
        async with limit:
            try:
                response = await self.clients.policy.Reward(
                    policy_pb2.RewardRequest(
                        request_id=event.request_id,
                        item_id=event.item_id,
                        event_type=event.type,
                        event_id=event.event_id,
                    ),
                    timeout=self.deadline_s,
                )
            except grpc.aio.AioRpcError as error:
                log.info(
                    "reward for event %s not recorded: %s %s",
                    event.event_id,
                    error.code().name,
                    error.details(),
                )
                return False
            if response.duplicate:
                return False
            event_type = common_pb2.EventType.Name(event.type).removeprefix("EVENT_TYPE_").lower()
            metrics.REWARDS.labels(response.policy, str(response.ranking_version), event_type).inc()
            return True

    async def record(self, request: gateway_pb2.RecordFeedbackRequest) -> gateway_pb2.RecordFeedbackResponse:
        events = list(request.events)
        require(0 < len(events) <= MAX_EVENTS, f"events must hold 1 to {MAX_EVENTS} events")
        summary = await self._store(events)
        metrics.FEEDBACK_EVENTS.labels("accepted").inc(summary.accepted)
        metrics.FEEDBACK_EVENTS.labels("duplicate").inc(summary.duplicates)
        metrics.FEEDBACK_EVENTS.labels("rejected").inc(len(summary.rejected))
        rejected = {rejection.index for rejection in summary.rejected}
        answering = [e for i, e in enumerate(events) if i not in rejected and e.request_id]
        if answering:
            try:
                await asyncio.to_thread(self.push_log.mark_feedback, answering)
            except Exception:
                log.exception("could not mark push feedback (the events are stored)")
        limit = asyncio.Semaphore(REWARD_CONCURRENCY)
        forwarded = await asyncio.gather(*(self._reward(event, limit) for event in answering))
        return gateway_pb2.RecordFeedbackResponse(summary=summary, rewards_forwarded=sum(forwarded))
