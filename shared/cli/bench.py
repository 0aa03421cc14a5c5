"""`recsys bench`: Recommend latency on the local suite, beside a plain gRPC round trip."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


def measure_predict(folder: Path, address: str, calls: int, history_length: int = 20) -> list[Latency]:
    """Predict on the candidate GAN: in process against through the model server, same inputs."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    signature = tf.saved_model.load(str(folder)).signatures["serving_default"]
    known = signature(history=tf.constant([[""]]))["item_ids"].numpy()[0]
    rng = np.random.default_rng(0)
    histories = [rng.choice(known, size=(1, history_length)).astype(object) for _ in range(calls)]
    in_process = _time("Predict in process (baseline)", calls, lambda n: signature(history=histories[n]))
    with grpc.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        def remote(n: int) -> object:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = folder.parent.name
            request.inputs["history"].CopyFrom(tf.make_tensor_proto(histories[n]))
            return stub.Predict(request, timeout=10)

        remote(0)
        served = _time("Predict through the model server", calls, remote)
    return [in_process, served]
