"""A short mix of everything the dashboard draws: Recommends answered by clicks and views (the
chaos tools' steady load), purchases and carts credited to served slates, shoppers never seen
before (cold starts), and the first shoppers of a push campaign."""

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
from shared.tls import open_async_channel
from tools.chaos.load import SteadyLoad

DEADLINE_S = 5.0
# Each period: one Recommend for a new shopper, and one for a known shopper answered by a purchase
# of its first item and a cart of its second.
PERIOD_S = 1.0
CAMPAIGN_SHOPPERS = 50


@dataclass
class Traffic:
    """What was sent, by kind, and the calls that failed (status name)."""

    sent: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)


def _event(user_id: str, item_id: str, kind: int, request_id: str, number: int) -> common_pb2.Event:
    event = common_pb2.Event(
        event_id=f"dashboard-{number}-{kind}",
        user_id=user_id,
        item_id=item_id,
        type=kind,
        request_id=request_id,
    )
    event.timestamp.FromNanoseconds(time.time_ns())
    return event


async def _credited(
    stub: gateway_pb2_grpc.GatewayServiceStub,
    metadata: list,
    users: Sequence[str],
    seconds: float,
    traffic: Traffic,
) -> None:
    numbers = itertools.count()
    known = itertools.cycle(users)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        number = next(numbers)
        try:
            await stub.Recommend(
                gateway_pb2.RecommendRequest(user_id=f"dashboard-new-{number}", count=10),
                metadata=metadata,
                timeout=DEADLINE_S,
            )
            traffic.sent["recommend (new shopper)"] += 1
            user_id = next(known)
            slate = await stub.Recommend(
                gateway_pb2.RecommendRequest(user_id=user_id, count=10), metadata=metadata, timeout=DEADLINE_S
            )
            traffic.sent["recommend"] += 1
            if len(slate.items) >= 2:
                events = [
                    _event(
                        user_id,
                        slate.items[0].item_id,
                        common_pb2.EVENT_TYPE_PURCHASE,
                        slate.request_id,
                        number,
                    ),
                    _event(
                        user_id,
                        slate.items[1].item_id,
                        common_pb2.EVENT_TYPE_ADD_TO_CART,
                        slate.request_id,
                        number,
                    ),
                ]
                await stub.RecordFeedback(
                    gateway_pb2.RecordFeedbackRequest(events=events), metadata=metadata, timeout=DEADLINE_S
                )
                traffic.sent["purchase and cart"] += 1
        except grpc.aio.AioRpcError as error:
            traffic.failed[error.code().name] += 1
        await asyncio.sleep(PERIOD_S)


async def _campaign(stub: gateway_pb2_grpc.GatewayServiceStub, metadata: list, traffic: Traffic) -> None:
    """The first CAMPAIGN_SHOPPERS outcomes of a campaign over everyone; the stream is then cancelled."""
    stream = stub.PlanPushCampaign(
        gateway_pb2.PlanPushCampaignRequest(campaign_id=f"dashboard-{int(time.time())}"),
        metadata=metadata,
        timeout=60.0,
    )
    try:
        async for _ in stream:
            traffic.sent["push campaign outcome"] += 1
            if traffic.sent["push campaign outcome"] >= CAMPAIGN_SHOPPERS:
                break
    except grpc.aio.AioRpcError as error:
        traffic.failed[error.code().name] += 1
    finally:
        stream.cancel()


async def drive(
    address: str,
    credentials: grpc.ChannelCredentials | None,
    key: str,
    users: Sequence[str],
    seconds: float,
    rate: float,
) -> Traffic:
    """`seconds` of steady Recommends at `rate` with their feedback, the credited and cold-start
    calls beside them, then a push campaign's first shoppers."""
    traffic = Traffic()
    load = SteadyLoad([address], credentials, key, users, rate, DEADLINE_S)
    stop = asyncio.Event()
    steady = asyncio.create_task(load.run(stop))
    metadata = bearer_metadata(key)
    async with open_async_channel(address, credentials) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        await _credited(stub, metadata, users, seconds, traffic)
        stop.set()
        await steady
        await _campaign(stub, metadata, traffic)
    answers = Counter(answer.code for answer in load.ledger.answers)
    traffic.sent["recommend (steady)"] = sum(answers.values())
    traffic.sent["feedback events acknowledged"] = len(load.ledger.acknowledged)
    traffic.failed.update({code: n for code, n in answers.items() if code != "OK"})
    return traffic
