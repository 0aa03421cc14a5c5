"""RecordFeedback's throughput through the gateway: shopper events of the imported shoppers and
items (views, clicks, carts and purchases, fresh ids, a few seconds apart per shopper so that the
cleaning stage keeps every one), sent in batches by several clients at once, each client sending
its next batch once the last is acknowledged (stored durably). The events are made before the clock
starts.

    python -m tools.bench.feedback --events 200000 --batch 1000 --clients 4

Talks to the suite that RECSYS_HOME and the port variables describe (`recsys up`), with its API key.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from shared.auth import bearer_metadata, read_key
from shared.config import load_settings
from shared.tls import channel_credentials, open_async_channel
from tools.importers import online_retail

TYPES = (
    common_pb2.EVENT_TYPE_VIEW,
    common_pb2.EVENT_TYPE_VIEW,
    common_pb2.EVENT_TYPE_CLICK,
    common_pb2.EVENT_TYPE_ADD_TO_CART,
    common_pb2.EVENT_TYPE_PURCHASE,
)
SPACING = timedelta(milliseconds=10)  # between consecutive events; thousands of shoppers apart
DEADLINE_S = 60.0


@dataclass
class Tally:
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    batch_seconds: list[float] = field(default_factory=list)


def shoppers_and_items(limit: int = 50_000) -> tuple[list[str], list[str]]:
    """The shoppers and items of the bundled data's first `limit` lines (what the import stored)."""
    users, items = set(), set()
    for event in online_retail.read_events(online_retail.DEFAULT_PATH, limit):
        users.add(event.user_id)
        items.add(event.item_id)
    return sorted(users), sorted(items)


def events(users: Sequence[str], items: Sequence[str], count: int, run: str) -> Iterator[common_pb2.Event]:
    """`count` events ending now, shoppers and items in turn; ids unique to `run`."""
    start = datetime.now(UTC) - count * SPACING
    for number in range(count):
        moment = Timestamp()
        moment.FromDatetime(start + number * SPACING)
        yield common_pb2.Event(
            event_id=f"bench-{run}-{number}",
            user_id=users[number % len(users)],
            item_id=items[(number * 7919) % len(items)],
            type=TYPES[number % len(TYPES)],
            timestamp=moment,
        )


async def drive(
    address: str,
    credentials: object,
    key: str,
    batches: Iterator[list[common_pb2.Event]],
    clients: int,
) -> Tally:
    tally = Tally()
    metadata = bearer_metadata(key)
    async with open_async_channel(address, credentials) as channel:  # type: ignore[arg-type]
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)

        async def client() -> None:
            for batch in batches:  # shared: each batch goes to the first client free
                started = time.perf_counter()
                response = await stub.RecordFeedback(
                    gateway_pb2.RecordFeedbackRequest(events=batch), metadata=metadata, timeout=DEADLINE_S
                )
                tally.batch_seconds.append(time.perf_counter() - started)
                tally.sent += len(batch)
                tally.accepted += response.summary.accepted
                tally.duplicates += response.summary.duplicates
                tally.rejected += len(response.summary.rejected)

        await asyncio.gather(*(client() for _ in range(clients)))
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000, help="events to send (default 200,000)")
    parser.add_argument("--batch", type=int, default=1_000, help="events per RecordFeedback (default 1,000)")
    parser.add_argument("--clients", type=int, default=4, help="clients sending at once (default 4)")
    args = parser.parse_args()
    settings = load_settings()
    users, items = shoppers_and_items()
    # Built before the clock starts: on a machine shared with the suite, the clock measures the
    # suite, not the making of the events.
    stream = events(users, items, args.events, str(time.time_ns()))
    batches = iter(list(iter(lambda: list(itertools.islice(stream, args.batch)), [])))
    started = time.perf_counter()
    tally = asyncio.run(
        drive(
            settings.addresses["gateway"],
            channel_credentials(settings, "trainer"),
            read_key(settings),
            batches,
            args.clients,
        )
    )
    seconds = time.perf_counter() - started
    slowest = max(tally.batch_seconds, default=0.0)
    print(
        f"RecordFeedback: {tally.sent:,} events in {seconds:.1f}s ({tally.sent / seconds:,.0f} events/s; "
        f"{args.clients} clients, batches of {args.batch:,}, slowest batch {slowest:.2f}s) · accepted "
        f"{tally.accepted:,}, duplicates {tally.duplicates:,}, rejected {tally.rejected:,}"
    )


if __name__ == "__main__":
    main()
