"""RecordFeedback: store durably through the profile service, then reward the policy.

Events are acknowledged only after the profile service has committed them; if
it cannot, the caller gets UNAVAILABLE and may resend the same batch (events
are idempotent by event_id). Events that answer a push (its request_id) also
mark it opened or converted in the push log.

Rewards are delivered exactly once. The profile service keeps a pending reward
for every stored event that answers a recommendation, in the event's own
transaction. The gateway forwards them at once and acknowledges each one the
policy has recorded (or refused for good: no such decision); what it could not
deliver (the policy down, the gateway killed) stays pending, and every gateway
replica's relay loop resends pending rewards older than a few seconds until they
are acknowledged. The policy records a reward once per event_id, so a reward
sent twice counts once.
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
# The policy's answers that end a reward's delivery although nothing was recorded: the decision it
# answers is unknown, or the event cannot be a reward. Anything else is retried by the relay.
FINAL_REFUSALS = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
RELAY_BATCH = 500


class FeedbackRecorder:
    def __init__(
        self,
        clients: SuiteClients,
        deadline_s: float,
        push_log: PushLog,
        relay_interval_s: float = 5.0,
    ) -> None:
        self.clients = clients
        self.deadline_s = deadline_s
        self.push_log = push_log
        self.relay_interval_s = relay_interval_s

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

    async def _reward(self, event: common_pb2.Event, limit: asyncio.Semaphore) -> tuple[bool, bool]:
        """(delivered: the policy recorded it now or before, or refused it for good; new: it was
        recorded now, not for a resent event)."""
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
                final = error.code() in FINAL_REFUSALS
                log.info(
                    "reward for event %s not recorded (%s): %s %s",
                    event.event_id,
                    "dropped" if final else "kept pending",
                    error.code().name,
                    error.details(),
                )
                return final, False
            if response.duplicate:
                return True, False
            event_type = common_pb2.EventType.Name(event.type).removeprefix("EVENT_TYPE_").lower()
            metrics.REWARDS.labels(response.policy, str(response.ranking_version), event_type).inc()
            return True, True

    async def _deliver(self, events: list[common_pb2.Event]) -> tuple[int, int]:
        """Forwards the events' rewards and acknowledges the delivered ones to the profile service;
        returns (delivered, new to the policy)."""
        limit = asyncio.Semaphore(REWARD_CONCURRENCY)
        outcomes = await asyncio.gather(*(self._reward(event, limit) for event in events))
        delivered = [event.event_id for event, (done, _) in zip(events, outcomes, strict=True) if done]
        if delivered:
            try:
                await self.clients.profile.AckRewards(
                    profile_pb2.AckRewardsRequest(event_ids=delivered), timeout=self.deadline_s
                )
            except grpc.aio.AioRpcError as error:  # they stay pending: the policy counts them once
                log.info("delivered rewards not acknowledged: %s %s", error.code().name, error.details())
        return len(delivered), sum(new for _, new in outcomes)

    async def relay_pending(self, min_age_s: float) -> int:
        """Delivers the rewards pending for at least `min_age_s`, a batch at a time, until none is
        left or a batch delivers nothing (the policy is away); returns how many were delivered."""
        total = 0
        while True:
            found = await self.clients.profile.ListPendingRewards(
                profile_pb2.ListPendingRewardsRequest(limit=RELAY_BATCH, min_age_seconds=min_age_s),
                timeout=self.deadline_s,
            )
            metrics.REWARDS_PENDING.set(found.pending)
            if not found.events:
                return total
            delivered, _ = await self._deliver(list(found.events))
            total += delivered
            if not delivered or len(found.events) < RELAY_BATCH:
                return total

    async def relay(self) -> None:
        """The relay loop: pending rewards older than two intervals (the request path delivers
        the fresh ones) are resent every interval."""
        while True:
            await asyncio.sleep(self.relay_interval_s)
            try:
                sent = await self.relay_pending(2 * self.relay_interval_s)
            except grpc.aio.AioRpcError as error:
                log.info("pending rewards not relayed: profile service %s", error.code().name)
                continue
            if sent:
                log.info("relayed %d pending rewards to the policy", sent)

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
        _, new = await self._deliver(answering) if answering else (0, 0)
        return gateway_pb2.RecordFeedbackResponse(summary=summary, rewards_forwarded=new)
