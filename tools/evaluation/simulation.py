"""Simulated shoppers in sessions against a running suite, over gRPC.

Each session asks the gateway for a slate, lets the simulator's ground truth
decide what the shopper clicks and buys (tools.synth.shoppers.respond, which
tires of items shown to the same shopper again and again), sends
those events back with the request id, and scores the session with the
configured reward weights. Sessions run a few at a time, so the policy learns
from rewards that arrive while other slates are being served.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc
import numpy as np

from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2
from shared.auth import bearer_metadata
from shared.clients import SuiteClients
from tools.synth.sessions import shopper_events
from tools.synth.shop import Shop
from tools.synth.shoppers import respond, shopper
from tools.synth.writer import START

DEADLINE_S = 10.0


@dataclass(frozen=True)
class SessionResult:
    number: int
    policy: str
    reward: float
    clicks: int
    purchases: int


def history_events(seed: int, shop: Shop, shoppers: int, days: int) -> Iterator[common_pb2.Event]:
    """The shoppers' past sessions, as the suite learns them before the simulation."""
    for number in range(shoppers):
        for event in shopper_events(seed, shopper(seed, number), shop, START, days):
            yield event.as_proto()


def session_events(
    session: int, user_id: str, request_id: str, shop: Shop, outcome: list[tuple[int, bool, bool]]
) -> list[common_pb2.Event]:
    """What the shopper did with the slate: a click, and cart plus purchase when they bought."""
    now = datetime.now(UTC)
    events = []
    for position, (item, clicked, bought) in enumerate(outcome):
        steps = [common_pb2.EVENT_TYPE_CLICK] if clicked else []
        if bought:
            steps += [common_pb2.EVENT_TYPE_ADD_TO_CART, common_pb2.EVENT_TYPE_PURCHASE]
        for step in steps:
            event = common_pb2.Event(
                event_id=f"sim-{session}-{position}-{step}",
                user_id=user_id,
                item_id=str(shop.item_ids[item]),
                type=step,
                request_id=request_id,
                surface="home",
                quantity=1 if step != common_pb2.EVENT_TYPE_CLICK else 0,
                price=float(shop.prices[item]) if step == common_pb2.EVENT_TYPE_PURCHASE else 0.0,
            )
            event.timestamp.FromDatetime(now)
            events.append(event)
    return events


def session_reward(outcome: list[tuple[int, bool, bool]], weights: Mapping[str, float]) -> float:
    clicks = sum(clicked for _, clicked, _ in outcome)
    purchases = sum(bought for _, _, bought in outcome)
    return clicks * weights["click"] + purchases * (weights["add_to_cart"] + weights["purchase"])


@dataclass
class SimulatedShop:
    """A shop, its shoppers and what each shopper has been shown so far (for fatigue)."""

    shop: Shop
    seed: int
    shoppers: int
    slate_size: int
    weights: Mapping[str, float]
    shown: Counter[tuple[int, int]] = field(default_factory=Counter)


async def run_sessions(
    clients: SuiteClients,
    key: str,
    world: SimulatedShop,
    sessions: int,
    concurrency: int,
    forced: Sequence[str] = (),
    first_session: int = 0,
    advance: Callable[[int], None] = lambda _: None,
) -> list[SessionResult]:
    """`sessions` sessions of shoppers drawn at random. `forced[n]`, when given, names the policy
    that must serve session n ("" for the shopper's bucket)."""
    rng = np.random.default_rng([world.seed, 7, first_session])
    people = rng.integers(world.shoppers, size=sessions)
    item_index = {str(item): n for n, item in enumerate(world.shop.item_ids.tolist())}
    metadata = bearer_metadata(key)
    limit = asyncio.Semaphore(concurrency)
    results: list[SessionResult] = []

    async def one(offset: int) -> None:
        number = first_session + offset
        person = shopper(world.seed, int(people[offset]))
        async with limit:
            try:
                response = await clients.gateway.Recommend(
                    gateway_pb2.RecommendRequest(
                        user_id=person.user_id,
                        count=world.slate_size,
                        surface="home",
                        policy=forced[offset] if forced else "",
                    ),
                    metadata=metadata,
                    timeout=DEADLINE_S,
                )
            except grpc.aio.AioRpcError as error:
                raise RuntimeError(f"Recommend failed in session {number}: {error.code().name}") from error
            slate = [item_index[item.item_id] for item in response.items if item.item_id in item_index]
            before = [world.shown[(person.number, item)] for item in slate]
            world.shown.update((person.number, item) for item in slate)
            outcome = respond(world.seed, person, world.shop, slate, number, before)
            events = session_events(number, person.user_id, response.request_id, world.shop, outcome)
            if events:
                await clients.gateway.RecordFeedback(
                    gateway_pb2.RecordFeedbackRequest(events=events), metadata=metadata, timeout=DEADLINE_S
                )
        results.append(
            SessionResult(
                number=number,
                policy=response.policy,
                reward=session_reward(outcome, world.weights),
                clicks=sum(clicked for _, clicked, _ in outcome),
                purchases=sum(bought for _, _, bought in outcome),
            )
        )
        advance(1)

    await asyncio.gather(*(one(offset) for offset in range(sessions)))
    return sorted(results, key=lambda result: result.number)
