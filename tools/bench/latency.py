"""Recommend latency on the local suite beside a plain gRPC round trip; Rank and
Predict latency beside their baselines."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from recsys.ranking.v1 import ranking_pb2, ranking_pb2_grpc
from shared import sources
from shared.auth import bearer_metadata
from shared.tls import open_sync_channel


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


def measure(
    address: str,
    key: str,
    users: list[str],
    calls: int,
    count: int,
    credentials: grpc.ChannelCredentials | None = None,
) -> list[Latency]:
    """Sequential calls over one channel (TLS with `credentials`): health Check (the floor), then
    Recommend over `users`."""
    metadata = bearer_metadata(key)
    with open_sync_channel(address, credentials) as channel:
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


def rank_requests(
    histories: list[list[str]], item_ids: list[str], calls: int, candidates: int
) -> list[ranking_pb2.RankRequest]:
    """One request per call: a real shopper's history and `candidates` shop items (a rotating
    window of `item_ids`, most popular first) carrying their popular rank."""
    requests = []
    for number in range(calls):
        history = histories[number % len(histories)]
        offset = (number * 37) % max(1, len(item_ids) - candidates)
        chosen = [item for item in item_ids[offset:] if item not in set(history)][:candidates]
        request = ranking_pb2.RankRequest(user_id=f"bench-{number}", history_item_ids=history, surface="home")
        for rank, item_id in enumerate(chosen):
            request.candidates.add(
                item_id=item_id,
                fusion_score=0.75 / (61 + rank),
                found_by=[common_pb2.SourceRank(source=sources.POPULAR, rank=rank, score=1.0)],
            )
        request.purchase_count = len(history)
        requests.append(request)
    return requests


def measure_rank(addresses: dict[str, str], requests: list[ranking_pb2.RankRequest]) -> list[Latency]:
    """The same Rank calls, sequentially, against each named ranking service."""
    results = []
    for name, address in addresses.items():
        with grpc.insecure_channel(address) as channel:
            stub = ranking_pb2_grpc.RankingServiceStub(channel)
            for request in requests[:20]:  # warm-up: connection, compiled graph
                stub.Rank(request, timeout=30)
            results.append(
                _time(name, len(requests), lambda n, stub=stub: stub.Rank(requests[n], timeout=30))
            )
    return results
