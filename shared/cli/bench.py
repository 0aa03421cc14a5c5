"""`recsys bench`: Recommend latency on the local suite, beside a plain gRPC round trip."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from shared.auth import bearer_metadata


@dataclass(frozen=True)
class Latency:
    name: str
    samples_ms: list[float]

    def quantile(self, q: float) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p99(self) -> float:
        return self.quantile(0.99)


def _time(name: str, calls: int, call: Callable[[int], object]) -> Latency:
    samples = []
    for number in range(calls):
        started = time.perf_counter()
        call(number)
        samples.append((time.perf_counter() - started) * 1000)
    return Latency(name, samples)


def measure(address: str, key: str, users: list[str], calls: int, count: int) -> list[Latency]:
    """Sequential calls over one channel: health Check (the floor), then Recommend over `users`."""
    metadata = bearer_metadata(key)
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        gateway = gateway_pb2_grpc.GatewayServiceStub(channel)
        for user in users[:20]:  # warm-up: connections, caches, SQLite pages
            gateway.Recommend(gateway_pb2.RecommendRequest(user_id=user, count=count), metadata=metadata)
        floor = _time(
            "grpc health Check (baseline)",
            calls,
            lambda n: health.Check(health_pb2.HealthCheckRequest(), timeout=5),
        )
        recommend = _time(
            f"Recommend count={count}",
            calls,
            lambda n: gateway.Recommend(
                gateway_pb2.RecommendRequest(user_id=users[n % len(users)], count=count),
                metadata=metadata,
                timeout=10,
            ),
        )
    return [floor, recommend]
