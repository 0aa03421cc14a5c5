"""The replica-aware caller over real gRPC servers on loopback: a late replica is hedged and then
tried last, a gone one is failed over at once, the request's own errors are not sent twice, and
hedges stay within their budget."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.replicas import Hedging, Replicas
from tools.cli.supervisor import free_port

Stub = health_pb2_grpc.HealthStub


class Replica(health_pb2_grpc.HealthServicer):
    """A server that answers after `delay_s`, or with `refuse` when set; counts what it was asked."""

    def __init__(self, delay_s: float = 0.0, refuse: grpc.StatusCode | None = None) -> None:
        self.delay_s = delay_s
        self.refuse = refuse
        self.asked = 0

    async def Check(self, request, context):
        self.asked += 1
        await asyncio.sleep(self.delay_s)
        if self.refuse is not None:
            await context.abort(self.refuse, "refused by the test")
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


@asynccontextmanager
async def serving(*replicas: Replica | None) -> AsyncIterator[list[Stub]]:
    """One stub per replica; None is a replica that is gone (nothing listens on its port)."""
    servers, channels, stubs = [], [], []
    for replica in replicas:
        port = free_port()
        if replica is not None:
            server = grpc.aio.server()
            health_pb2_grpc.add_HealthServicer_to_server(replica, server)
            server.add_insecure_port(f"127.0.0.1:{port}")
            await server.start()
            servers.append(server)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        channels.append(channel)
        stubs.append(Stub(channel))
    try:
        yield stubs
    finally:
        for channel in channels:
            await channel.close()
        for server in servers:
            await server.stop(0)


def check(stub: Stub, seconds: float) -> Awaitable[health_pb2.HealthCheckResponse]:
    return stub.Check(health_pb2.HealthCheckRequest(), timeout=seconds)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def test_a_late_replica_is_hedged_then_tried_last() -> None:
    hung, healthy = Replica(delay_s=5.0), Replica()

    async def scenario() -> None:
        async with serving(hung, healthy) as stubs:
            replicas = Replicas(stubs, Hedging(after_s=0.3))
            started = time.monotonic()
            for _ in range(6):
                answer = await replicas.call(check, 3.0)
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
            assert time.monotonic() - started < 2.5  # one hedge's wait, no call waited for the hung replica
            assert replicas.hedges == 1
            assert hung.asked == 1 and healthy.asked == 6

    run(scenario)


def test_a_gone_replica_is_failed_over_at_once() -> None:
    healthy = Replica()

    async def scenario() -> None:
        async with serving(None, healthy) as stubs:
            replicas = Replicas(stubs, hedging=None)
            for _ in range(4):
                await replicas.call(check, 3.0)
            assert replicas.failovers == 1  # then the gone one is tried last, and never reached
            assert healthy.asked == 4

    run(scenario)


def test_the_requests_own_error_is_not_sent_to_another_replica() -> None:
    first, second = (
        Replica(refuse=grpc.StatusCode.INVALID_ARGUMENT),
        Replica(refuse=grpc.StatusCode.INVALID_ARGUMENT),
    )

    async def scenario() -> None:
        async with serving(first, second) as stubs:
            replicas = Replicas(stubs)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await replicas.call(check, 3.0)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert first.asked + second.asked == 1

    run(scenario)


def test_every_replica_gone_is_the_last_ones_error() -> None:
    async def scenario() -> None:
        async with serving(None, None) as stubs:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await Replicas(stubs).call(check, 3.0)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

    run(scenario)


def test_hedges_stay_within_their_budget() -> None:
    slow, also_slow = Replica(delay_s=0.03), Replica(delay_s=0.03)

    async def scenario() -> None:
        async with serving(slow, also_slow) as stubs:
            replicas = Replicas(stubs, Hedging(after_s=0.005, share=0.0))
            for _ in range(25):
                await replicas.call(check, 3.0)
            assert replicas.hedges == Hedging.burst  # the burst, then no more with a share of zero

    run(scenario)


def test_the_hedge_waits_as_long_as_most_recent_answers_took() -> None:
    async def scenario() -> None:
        async with serving(Replica(delay_s=0.04), Replica(delay_s=0.04)) as stubs:
            replicas = Replicas(stubs, Hedging(remembered=40))
            assert replicas.hedge_after(3.0) == Hedging.first_s  # nothing timed yet
            took = []
            for _ in range(20):
                started = time.monotonic()
                await replicas.call(check, 3.0)
                took.append(time.monotonic() - started)
            assert 0.04 <= replicas.hedge_after(3.0) <= max(took)  # the 95th percentile of those times
            assert replicas.hedge_after(0.05) == pytest.approx(0.4 * 0.05)  # at most 40% of a short timeout

    run(scenario)


def test_after_its_ejection_a_replica_is_tried_beside_another_until_it_answers_first() -> None:
    hung, healthy = Replica(delay_s=5.0), Replica()

    async def scenario() -> None:
        async with serving(hung, healthy) as stubs:
            replicas = Replicas(stubs, Hedging(after_s=1.0), eject_s=0.05)
            await replicas.call(check, 3.0)  # hedged: the hung replica is ejected
            for _ in range(4):
                await asyncio.sleep(0.06)  # its ejection is over: it is on probation
                started = time.monotonic()
                await replicas.call(check, 3.0)
                assert time.monotonic() - started < 0.8  # its partner answered; nobody waited to hedge
            # taking turns, it was first in line for every other call: then asked beside the other
            assert replicas.hedges == 1 and replicas.trials == 2
            hung.delay_s = 0.0  # it is back
            await asyncio.sleep(0.06)
            await replicas.call(check, 3.0)
            trusted = replicas.trials
            for _ in range(4):
                await replicas.call(check, 3.0)
            assert replicas.trials in (trusted, trusted + 1)  # at most once more, if it lost a race

    run(scenario)
