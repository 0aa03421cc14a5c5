"""The suite past its capacity: capacity measured closed-loop first, then calls offered at a
multiple of it, open-loop, over every gateway replica (failing over, never hedging: a client must
not add load to a suite past its capacity). Goodput counts undegraded answers within the deadline;
refusals (RESOURCE_EXHAUSTED) are timed from when each call was sent. Beside the offered load, two
floors under any refusal's latency here: a bare timer in a process of its own measures how late this
machine wakes a process at all (tools/chaos/wakeup.py), and the same client calls, at a quarter of
the offered rate, a server that does nothing but refuse (tools/chaos/refuser.py)."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from shared.auth import bearer_metadata
from shared.replicas import Replicas
from tools.chaos.load import GatewayReplicas
from tools.chaos.refuser import RefusingServer
from tools.chaos.wakeup import WakeupDelay, measure

CAPACITY_CALLERS = 8
# The refusal floor's calls, as a share of the offered rate: enough for its quantiles, too few to
# change much what the client adds to the gateway's refusals.
FLOOR_SHARE = 0.25


@dataclass
class Tally:
    seconds: float
    good: int = 0  # OK, undegraded, within the deadline
    codes: Counter[str] = field(default_factory=Counter)
    refusal_ms: list[float] = field(default_factory=list)

    @property
    def goodput_rps(self) -> float:
        return self.good / self.seconds

    def refusal_quantile(self, q: float) -> float:
        if not self.refusal_ms:
            return 0.0
        return statistics.quantiles(self.refusal_ms, n=1000, method="inclusive")[round(q * 1000) - 1]


class _Caller:
    def __init__(
        self,
        gateways: Replicas[gateway_pb2_grpc.GatewayServiceStub],
        key: str,
        users: Sequence[str],
        deadline_s: float,
    ):
        self.gateways = gateways
        self.metadata = bearer_metadata(key)
        self.users = itertools.cycle(users)
        self.deadline_s = deadline_s

    async def call(self, tally: Tally) -> None:
        sent = time.perf_counter()
        request = gateway_pb2.RecommendRequest(
            user_id=next(self.users), count=10, request_id=uuid.uuid4().hex
        )
        try:
            response = await self.gateways.call(
                lambda stub, seconds: stub.Recommend(request, metadata=self.metadata, timeout=seconds),
                self.deadline_s,
            )
        except grpc.aio.AioRpcError as error:
            tally.codes[error.code().name] += 1
            if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                tally.refusal_ms.append((time.perf_counter() - sent) * 1000)
            return
        tally.codes["OK"] += 1
        tally.good += not response.degraded_stages


async def capacity(caller: _Caller, seconds: float) -> Tally:
    tally = Tally(seconds)
    end = time.monotonic() + seconds

    async def loop() -> None:
        while time.monotonic() < end:
            await caller.call(tally)

    await asyncio.gather(*(loop() for _ in range(CAPACITY_CALLERS)))
    return tally


async def offered(caller: _Caller, rate: float, seconds: float) -> Tally:
    tally = Tally(seconds)
    loop = asyncio.get_running_loop()
    due, end, interval = loop.time(), loop.time() + seconds, 1.0 / rate
    calls = []
    while due < end:
        due += interval
        await asyncio.sleep(max(0.0, due - loop.time()))
        calls.append(asyncio.create_task(caller.call(tally)))
    await asyncio.gather(*calls)
    return tally


@dataclass(frozen=True)
class OverloadResult:
    capacity: Tally
    offered_rps: float
    overload: Tally
    wakeup: WakeupDelay  # the machine's own wake-up delay during the offered load
    floor: Tally  # the refusing server's answers during the offered load


async def overload(
    addresses: Sequence[str],
    credentials: grpc.ChannelCredentials | None,
    key: str,
    users: Sequence[str],
    factor: float,
    seconds: float,
    deadline_s: float,
) -> OverloadResult:
    async with GatewayReplicas(addresses, credentials) as stubs, RefusingServer() as refuser:
        caller = _Caller(Replicas(stubs, hedging=None), key, users, deadline_s)
        floor_caller = _Caller(Replicas([refuser], hedging=None), key, users, deadline_s)
        found = await capacity(caller, seconds)
        rate = max(1.0, factor * found.goodput_rps)
        answered, wakeup, floor = await asyncio.gather(
            offered(caller, rate, seconds),
            measure(seconds),
            offered(floor_caller, FLOOR_SHARE * rate, seconds),
        )
        return OverloadResult(found, rate, answered, wakeup, floor)
