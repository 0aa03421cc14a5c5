"""Steady traffic while faults are injected: Recommend due at a constant rate with a client
deadline, and feedback batches answering the served slates, each resent until acknowledged (as a
client of the documented contract does). Every answer is kept with the phase it fell in."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from shared.auth import bearer_metadata
from shared.clients import RECONNECT_OPTIONS
from shared.tls import open_async_channel

FEEDBACK_EVERY_S = 0.5
FEEDBACK_DEADLINE_S = 5.0
OK = "OK"


@dataclass(frozen=True)
class Answer:
    phase: str
    code: str  # OK, or the status name
    degraded: bool
    latency_ms: float  # from when the call was due


@dataclass
class Ledger:
    """What the clients were told: every Recommend answer, every acknowledged event."""

    answers: list[Answer] = field(default_factory=list)
    acknowledged: set[str] = field(default_factory=set)
    # acknowledged clicks answering a slate the policy served: each must reach the policy once
    rewards: set[str] = field(default_factory=set)
    feedback_failures: Counter[str] = field(default_factory=Counter)

    def by_phase(self) -> dict[str, list[Answer]]:
        found: dict[str, list[Answer]] = {}
        for answer in self.answers:
            found.setdefault(answer.phase, []).append(answer)
        return found


class SteadyLoad:
    """Drives one gateway until `stop` is set; `phase` names what is being done to the suite now."""

    def __init__(
        self,
        address: str,
        credentials: grpc.ChannelCredentials | None,
        key: str,
        users: Sequence[str],
        rate: float,
        deadline_s: float,
    ) -> None:
        self.address = address
        self.credentials = credentials
        self.metadata = bearer_metadata(key)
        self.users = itertools.cycle(users)
        self.rate = rate
        self.deadline_s = deadline_s
        self.phase = "steady"
        self.ledger = Ledger()
        self._served: list[tuple[str, gateway_pb2.RecommendResponse]] = []  # (shopper, slate)
        self._numbers = itertools.count()

    def _channel(self) -> grpc.aio.Channel:
        """A client as the docs advise: it tries a restarted gateway again within a second."""
        return open_async_channel(self.address, self.credentials, RECONNECT_OPTIONS)

    async def run(self, stop: asyncio.Event) -> None:
        async with self._channel() as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            await asyncio.gather(self._recommend(stub, stop), self._feedback(stub, stop))

    async def _recommend(self, stub: gateway_pb2_grpc.GatewayServiceStub, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        interval, due = 1.0 / self.rate, loop.time()
        calls: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            due += interval
            await asyncio.sleep(max(0.0, due - loop.time()))
            task = asyncio.create_task(self._one(stub, due, self.phase))
            calls.add(task)
            task.add_done_callback(calls.discard)
        await asyncio.gather(*calls)

    async def _one(self, stub: gateway_pb2_grpc.GatewayServiceStub, due: float, phase: str) -> None:
        loop = asyncio.get_running_loop()
        request = gateway_pb2.RecommendRequest(user_id=next(self.users), count=10)
        try:
            response = await stub.Recommend(request, metadata=self.metadata, timeout=self.deadline_s)
        except grpc.aio.AioRpcError as error:
            self.ledger.answers.append(Answer(phase, error.code().name, False, (loop.time() - due) * 1000))
            return
        latency = (loop.time() - due) * 1000
        self.ledger.answers.append(Answer(phase, OK, bool(response.degraded_stages), latency))
        if "policy" not in response.degraded_stages and response.items:
            self._served.append((request.user_id, response))

    def _batch(self) -> tuple[list[common_pb2.Event], set[str]]:
        """A click on the first item of each slate served since the last batch, and a view."""
        served, self._served = self._served, []
        events, rewards = [], set()
        for user_id, response in served:
            number = next(self._numbers)
            click = common_pb2.Event(
                event_id=f"chaos-click-{number}",
                user_id=user_id,
                item_id=response.items[0].item_id,
                type=common_pb2.EVENT_TYPE_CLICK,
                request_id=response.request_id,
            )
            view = common_pb2.Event(
                event_id=f"chaos-view-{number}",
                user_id=user_id,
                item_id=response.items[-1].item_id,
                type=common_pb2.EVENT_TYPE_VIEW,
            )
            for event in (click, view):
                event.timestamp.FromNanoseconds(time.time_ns())
            events += [click, view]
            rewards.add(click.event_id)
        return events, rewards

    async def _feedback(self, stub: gateway_pb2_grpc.GatewayServiceStub, stop: asyncio.Event) -> None:
        """Sends a batch every FEEDBACK_EVERY_S; a batch not acknowledged is sent again, unchanged,
        before any new one (events are idempotent by id). Ends once everything is acknowledged."""
        waiting: list[tuple[list[common_pb2.Event], set[str]]] = []
        while not stop.is_set() or waiting or self._served:
            await asyncio.sleep(FEEDBACK_EVERY_S)
            events, rewards = self._batch()
            if events:
                waiting.append((events, rewards))
            while waiting:
                events, rewards = waiting[0]
                try:
                    await stub.RecordFeedback(
                        gateway_pb2.RecordFeedbackRequest(events=events),
                        metadata=self.metadata,
                        timeout=FEEDBACK_DEADLINE_S,
                    )
                except grpc.aio.AioRpcError as error:
                    self.ledger.feedback_failures[error.code().name] += 1
                    break
                waiting.pop(0)
                self.ledger.acknowledged.update(event.event_id for event in events)
                self.ledger.rewards.update(rewards)
