"""Steady traffic while faults are injected: Recommend due at a constant rate with a client
deadline, and feedback batches answering the served slates, each resent until acknowledged (as a
client of the documented contract does), both spread over the gateway's replicas by the client of
shared/replicas.py. Every answer is kept with the phase it fell in."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import grpc

from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from shared.auth import bearer_metadata
from shared.clients import RECONNECT_OPTIONS
from shared.replicas import Replicas
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


Gateways = Replicas[gateway_pb2_grpc.GatewayServiceStub]


class GatewayReplicas(AsyncExitStack):
    """`async with GatewayReplicas(addresses, credentials) as stubs`: one channel per gateway
    process (a client as the docs advise: it tries a restarted gateway again within a second)."""

    def __init__(self, addresses: Sequence[str], credentials: grpc.ChannelCredentials | None) -> None:
        super().__init__()
        self.addresses = list(addresses)
        self.credentials = credentials

    async def __aenter__(self) -> list[gateway_pb2_grpc.GatewayServiceStub]:  # type: ignore[override]
        await super().__aenter__()
        stubs = []
        for address in self.addresses:
            channel = open_async_channel(address, self.credentials, RECONNECT_OPTIONS)
            stubs.append(gateway_pb2_grpc.GatewayServiceStub(await self.enter_async_context(channel)))
        return stubs


class SteadyLoad:
    """Drives the gateway's replicas until `stop` is set; `phase` names what is being done to the
    suite now."""

    def __init__(
        self,
        addresses: Sequence[str],
        credentials: grpc.ChannelCredentials | None,
        key: str,
        users: Sequence[str],
        rate: float,
        deadline_s: float,
    ) -> None:
        self.addresses = list(addresses)
        self.credentials = credentials
        self.metadata = bearer_metadata(key)
        self.users = itertools.cycle(users)
        self.rate = rate
        self.deadline_s = deadline_s
        self.phase = "steady"
        self.ledger = Ledger()
        self.recommend_calls: Gateways | None = None  # set while running: its hedge and failover counts
        self._served: list[tuple[str, gateway_pb2.RecommendResponse]] = []  # (shopper, slate)
        self._numbers = itertools.count()

    async def run(self, stop: asyncio.Event) -> None:
        async with GatewayReplicas(self.addresses, self.credentials) as stubs:
            self.recommend_calls = Replicas(stubs)
            # a feedback batch takes longer than a Recommend: it fails over, but is never hedged
            feedback_calls = Replicas(stubs, hedging=None)
            await asyncio.gather(
                self._recommend(self.recommend_calls, stop), self._feedback(feedback_calls, stop)
            )

    async def _recommend(self, gateways: Gateways, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        interval, due = 1.0 / self.rate, loop.time()
        calls: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            due += interval
            await asyncio.sleep(max(0.0, due - loop.time()))
            task = asyncio.create_task(self._one(gateways, due, self.phase))
            calls.add(task)
            task.add_done_callback(calls.discard)
        await asyncio.gather(*calls)

    async def _one(self, gateways: Gateways, due: float, phase: str) -> None:
        loop = asyncio.get_running_loop()
        # the caller's request id makes a hedged or failed-over repeat answer the decision logged first
        request = gateway_pb2.RecommendRequest(
            user_id=next(self.users), count=10, request_id=uuid.uuid4().hex
        )
        try:
            response = await gateways.call(
                lambda stub, seconds: stub.Recommend(request, metadata=self.metadata, timeout=seconds),
                self.deadline_s,
            )
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

    async def _feedback(self, gateways: Gateways, stop: asyncio.Event) -> None:
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
                request = gateway_pb2.RecordFeedbackRequest(events=events)
                try:
                    await gateways.call(
                        lambda stub, seconds, r=request: stub.RecordFeedback(
                            r, metadata=self.metadata, timeout=seconds
                        ),
                        FEEDBACK_DEADLINE_S,
                    )
                except grpc.aio.AioRpcError as error:
                    self.ledger.feedback_failures[error.code().name] += 1
                    break
                waiting.pop(0)
                self.ledger.acknowledged.update(event.event_id for event in events)
                self.ledger.rewards.update(rewards)
