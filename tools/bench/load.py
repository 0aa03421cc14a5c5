"""The load generator: closed-loop sequential calls and open-loop calls at a constant arrival rate.

In the open loop each call is due at a fixed time whatever the answers do, and its latency counts
from when it was due, so a server that falls behind is charged for the queue it builds (no
coordinated omission).
"""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from shared.tls import open_async_channel

CALL_TIMEOUT_S = 2.0
# Calls in flight beyond this are not sent and are counted as such: a generator with an unbounded
# backlog measures its own memory, not the server.
MAX_OUTSTANDING = 2000
NOT_SENT = "NOT_SENT"


@dataclass
class PhaseResult:
    """What one target did in one phase."""

    target: str
    phase: str
    offered_rps: float | None  # None for the closed loop
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # of answered calls
    errors: Counter[str] = field(default_factory=Counter)
    degraded: int = 0
    cpu_s: dict[str, float] = field(default_factory=dict)  # per process, over the phase
    stage_ms: dict[str, float] = field(default_factory=dict)  # mean wait per stage call
    reused_share: float | None = None  # of the generator's lists (None: not read, or none needed)

    @property
    def answered(self) -> int:
        return len(self.latencies_ms)

    @property
    def achieved_rps(self) -> float:
        return self.answered / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def goodput_rps(self) -> float:
        """Answers per second that no stage degraded."""
        return (self.answered - self.degraded) / self.elapsed_s if self.elapsed_s else 0.0

    def quantile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def degraded_share(self) -> float:
        return self.degraded / self.answered if self.answered else 0.0

    @property
    def errors_text(self) -> str:
        """Errors by code, e.g. "DEADLINE_EXCEEDED 3, RESOURCE_EXHAUSTED 40"; "0" for none."""
        return ", ".join(f"{code} {n}" for code, n in sorted(self.errors.items())) or "0"

    def cpu_ms_per_call(self) -> dict[str, float]:
        calls = max(self.answered, 1)
        return {name: 1000 * seconds / calls for name, seconds in self.cpu_s.items()}

    def summary(self) -> dict[str, object]:
        return {
            "target": self.target,
            "phase": self.phase,
            "offered_rps": self.offered_rps,
            "achieved_rps": round(self.achieved_rps, 1),
            "goodput_rps": round(self.goodput_rps, 1),
            "answered": self.answered,
            "p50_ms": round(self.p50, 2),
            "p99_ms": round(self.quantile(0.99), 2),
            "p999_ms": round(self.quantile(0.999), 2),
            "errors": dict(self.errors),
            "degraded_share": round(self.degraded_share, 4),
            "cpu_ms_per_call": {k: round(v, 2) for k, v in self.cpu_ms_per_call().items()},
            "stage_ms": {k: round(v, 2) for k, v in self.stage_ms.items()},
            "generated_lists_reused": None if self.reused_share is None else round(self.reused_share, 4),
        }


class Caller:
    """Recommend calls to one gateway over one channel (TLS with `credentials`), for a rotating list
    of shoppers."""

    def __init__(
        self,
        address: str,
        metadata: Sequence[tuple[str, str]],
        users: Sequence[str],
        count: int,
        credentials: grpc.ChannelCredentials | None = None,
    ):
        self.channel = open_async_channel(address, credentials)
        self.stub = gateway_pb2_grpc.GatewayServiceStub(self.channel)
        self.metadata = tuple(metadata)
        self.users = list(users)
        self.count = count
        self.sent = 0

    def request(self) -> gateway_pb2.RecommendRequest:
        user = self.users[self.sent % len(self.users)]
        self.sent += 1
        return gateway_pb2.RecommendRequest(user_id=user, count=self.count)

    async def call(self, result: PhaseResult, started: float) -> None:
        """One call; its latency counts from `started` (loop time)."""
        loop = asyncio.get_running_loop()
        try:
            response = await self.stub.Recommend(
                self.request(), metadata=self.metadata, timeout=CALL_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as error:
            result.errors[error.code().name] += 1
            return
        result.latencies_ms.append((loop.time() - started) * 1000)
        if response.degraded_stages:
            result.degraded += 1

    async def close(self) -> None:
        await self.channel.close()


async def closed_loop(caller: Caller, result: PhaseResult, calls: int) -> None:
    """`calls` calls one after another (concurrency 1)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(calls):
        await caller.call(result, loop.time())
    result.elapsed_s = loop.time() - started


async def open_loop(caller: Caller, result: PhaseResult, rate: float, duration_s: float) -> None:
    """Calls due every 1/`rate` seconds for `duration_s`; waits for the last answer."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    in_flight: set[asyncio.Task[None]] = set()
    for number in range(int(rate * duration_s)):
        due = started + number / rate
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        if len(in_flight) >= MAX_OUTSTANDING:
            result.errors[NOT_SENT] += 1
            continue
        task = asyncio.create_task(caller.call(result, due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(*in_flight)
    result.elapsed_s = max(loop.time() - started, duration_s)
