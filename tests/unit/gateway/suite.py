"""The simulated suite the gateway tests share: six services in-process over real gRPC and SQLite,
with thirty items bought in three groups by thirty shoppers from two segments."""

import asyncio
import contextlib
import socket
from collections.abc import Iterator

from pipelines import train as training
from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2
from recsys.items.v1 import items_pb2
from recsys.profile.v1 import profile_pb2
from services.candidates.app import build as build_candidates
from services.gateway.app import build as build_gateway
from services.items.app import build as build_items
from services.policy.app import build as build_policy
from services.profile.app import build as build_profile
from services.ranking.app import build as build_ranking
from shared.clients import SuiteClients
from tests.support import ServerThread, make_settings, suite_env
from tools.cli.supervisor import free_port

BUILDERS = {
    "profile": build_profile,
    "items": build_items,
    "candidates": build_candidates,
    "ranking": build_ranking,
    "policy": build_policy,
    "gateway": build_gateway,
}
ITEMS = [f"item{n:02d}" for n in range(30)]
# Shoppers buy within one of three groups of ten items, so co-occurrence has structure.
BASKETS = {f"user{u}": [ITEMS[(u % 3) * 10 + (u + k) % 10] for k in range(4)] for u in range(30)}
# The first group's shoppers are from the north, the others from the south: each segment has its
# own favourites.
SEGMENTS = {f"user{u}": "North" if u % 3 == 0 else "South" for u in range(30)}


async def fill_suite(settings) -> None:
    clients = SuiteClients(settings.addresses, 10)
    try:
        await clients.items.UpsertItems(
            iter(
                [
                    items_pb2.UpsertItemsRequest(
                        items=[common_pb2.Item(item_id=i, title=f"Title {i}") for i in ITEMS]
                    )
                ]
            )
        )
        events = [
            common_pb2.Event(
                event_id=f"{user}:{item}",
                user_id=user,
                item_id=item,
                type=common_pb2.EVENT_TYPE_PURCHASE,
                segment=SEGMENTS[user],
            )
            for user, basket in BASKETS.items()
            for item in basket
        ]
        await clients.profile.RecordEvents(iter([profile_pb2.RecordEventsRequest(events=events)]))
        snapshot = await training.export_snapshot(clients, settings.snapshot_dir)
        assert snapshot.event_count == len(events)
        assert len(snapshot.catalog_price_scaled) == len(ITEMS)
        training.fit_and_publish(snapshot, settings, list(training.TRAINERS))
    finally:
        await clients.close()


@contextlib.contextmanager
def running_suite(home) -> Iterator[tuple]:
    """(settings, servers) of the six services in-process, filled and trained."""
    # a generous stage deadline: a push needs the ranking stage to answer, even on a loaded machine;
    # no minimum confidence: the bandit's random slate may hold none of the few confident items of
    # this tiny shop (the minimum has its own test)
    env = suite_env(RECSYS_STAGE_DEADLINE_MS="5000", RECSYS_PUSH_MIN_CONFIDENCE="0")
    settings = make_settings(str(home), **env)
    servers = {name: ServerThread(build, settings, settings.ports[name]) for name, build in BUILDERS.items()}
    try:
        asyncio.run(fill_suite(settings))
        for name in ("items", "candidates", "ranking"):
            servers[name].run(servers[name].running.app.startup())  # load the models published above
        yield settings, servers
    finally:
        for server in servers.values():
            server.stop()


def recommend(gateway, user_id="user1", count=5, **kwargs):
    stub, metadata = gateway
    return stub.Recommend(
        gateway_pb2.RecommendRequest(user_id=user_id, count=count, **kwargs), metadata=metadata, timeout=10
    )


def gateway_with_dead(suite, *dead: str, **settings_env: str) -> ServerThread:
    """A second gateway on the same home whose `dead` stages point at closed ports, with more settings."""
    return gateway_with(suite, {name: f"127.0.0.1:{free_port()}" for name in dead}, **settings_env)


def gateway_with(suite, addresses: dict[str, str], **settings_env: str) -> ServerThread:
    """A second gateway on the same home, its stages at `addresses` where given, with more settings."""
    settings, _ = suite
    env = {f"RECSYS_{n.upper()}_ADDR": addresses.get(n, a) for n, a in settings.addresses.items()}
    env["RECSYS_STAGE_DEADLINE_MS"] = "500"
    return ServerThread(build_gateway, make_settings(str(settings.home), **{**env, **settings_env}))


@contextlib.contextmanager
def hung_addresses(count: int) -> Iterator[list[str]]:
    """Addresses that accept connections and never answer: a stage that hangs (stopped, overloaded)."""
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    try:
        yield [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    finally:
        for hung in sockets:
            hung.close()
