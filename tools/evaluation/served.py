"""Served evaluation: a fresh suite learns the training part through its APIs, then every
test user is asked for recommendations over gRPC, exactly as a client would."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import grpc
import numpy as np

from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2
from shared.auth import bearer_metadata
from shared.clients import SuiteClients
from tools.evaluation.protocols import Split
from tools.importers.loader import load
from tools.importers.online_retail import purchase_event

CONCURRENCY = 4


def _training_events(split: Split) -> Iterator[common_pb2.Event]:
    """The training part's purchase lines as events, with quantity, price and segment where known."""
    data = split.train_interactions
    count = len(data.users)
    quantities = data.quantities if data.quantities is not None else np.ones(count, dtype=np.int32)
    prices = data.prices if data.prices is not None else np.zeros(count)
    segments = data.segments if data.segments is not None else np.full(count, "")
    columns = (data.users, data.items, data.times, quantities, prices, segments)
    for number, (user, item, time, quantity, price, segment) in enumerate(
        zip(*(column.tolist() for column in columns), strict=True)
    ):
        yield purchase_event(f"eval:{number}", user, item, time, quantity, price, segment)


async def load_training_part(clients: SuiteClients, split: Split, catalog: Sequence[common_pb2.Item]) -> int:
    """Sends the catalog and the training purchases only; returns the number of events stored."""
    summary = await load(clients, catalog, _training_events(split), len(split.train_interactions.users))
    return summary.events_accepted


async def served_rankings(
    clients: SuiteClients, key: str, split: Split, count: int, policy: str = ""
) -> tuple[dict[int, list[int]], list[float]]:
    """Item indices recommended to each test user by `policy` ("": the suite's default), and each
    call's latency in ms. Every call is a shadow call: nothing is logged or learned from it."""
    item_pos = {item: i for i, item in enumerate(split.item_ids.tolist())}
    limit = asyncio.Semaphore(CONCURRENCY)
    rankings: dict[int, list[int]] = {}
    latencies: list[float] = []

    async def ask(user: int) -> None:
        async with limit:
            started = asyncio.get_running_loop().time()
            try:
                response = await clients.gateway.Recommend(
                    gateway_pb2.RecommendRequest(
                        user_id=str(split.user_ids[user]), count=count, shadow=True, policy=policy
                    ),
                    metadata=bearer_metadata(key),
                    timeout=10,
                )
            except grpc.aio.AioRpcError:
                rankings[user] = []
                return
            latencies.append((asyncio.get_running_loop().time() - started) * 1000)
            rankings[user] = [item_pos[i.item_id] for i in response.items if i.item_id in item_pos]

    await asyncio.gather(*(ask(user) for user in sorted(split.test)))
    return rankings, latencies
