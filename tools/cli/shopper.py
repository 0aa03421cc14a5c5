"""`recsys recommend` and `recsys feedback`: what a shop's front end sends, from the command line."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from pipelines.progress import console, errors
from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2
from shared.auth import bearer_metadata, read_key
from tools.cli.common import ask_recommend, print_recommendations, settings, with_clients


def recommend(
    user_id: Annotated[str, typer.Argument(help="The shopper's id, e.g. 17850.")],
    count: Annotated[int, typer.Option("--count", "-n", help="How many items (1-100).")] = 10,
    surface: Annotated[str, typer.Option(help="home, product, cart or push.")] = "home",
    segment: Annotated[
        str, typer.Option(help="The shopper's segment, e.g. a country: a new shopper gets its favourites.")
    ] = "",
    context: Annotated[
        list[str] | None,
        typer.Option(
            help="An item the shopper is looking at (repeatable): a new shopper gets related items."
        ),
    ] = None,
) -> None:
    """Ask the gateway for recommendations and print them with titles and reasons."""
    config = settings()
    key = read_key(config)
    response = with_clients(
        lambda c: ask_recommend(c, key, user_id, count, surface, segment, context or []), config
    )
    print_recommendations(response, user_id)


EVENT_TYPES = {
    name.removeprefix("EVENT_TYPE_").lower(): value for name, value in common_pb2.EventType.items() if value
}


def feedback(
    user_id: Annotated[str, typer.Argument(help="The shopper's id.")],
    item_id: Annotated[str, typer.Argument(help="The item's id.")],
    event_type: Annotated[str, typer.Option("--type", help=f"One of {', '.join(EVENT_TYPES)}.")] = "click",
    event_id: Annotated[str, typer.Option(help="Unique event id (default: generated).")] = "",
    request_id: Annotated[str, typer.Option(help="The Recommend request that showed the item.")] = "",
    quantity: Annotated[int, typer.Option(help="Units bought or carted.")] = 0,
    price: Annotated[float, typer.Option(help="Unit price paid.")] = 0.0,
    rating: Annotated[int, typer.Option(help="Review rating 1-5.")] = 0,
    text: Annotated[str, typer.Option(help="Review text.")] = "",
) -> None:
    """Send one shopper event through the gateway (stored durably, rewarded to the policy)."""
    if event_type not in EVENT_TYPES:
        errors.print(f"[red]--type must be one of {', '.join(EVENT_TYPES)}[/red]")
        raise typer.Exit(2)
    config = settings()
    key = read_key(config)
    event = common_pb2.Event(
        event_id=event_id or f"cli:{time.time_ns()}",
        user_id=user_id,
        item_id=item_id,
        type=EVENT_TYPES[event_type],
        request_id=request_id,
        quantity=quantity,
        price=price,  # type: ignore[arg-type]
        rating=rating,
        text=text,
    )
    response = with_clients(
        lambda c: c.gateway.RecordFeedback(
            gateway_pb2.RecordFeedbackRequest(events=[event]), metadata=bearer_metadata(key)
        ),
        config,
    )
    summary = response.summary
    console.print(
        f"event {event.event_id}: accepted {summary.accepted}, duplicates {summary.duplicates}, "
        f"rejected {len(summary.rejected)}, rewards forwarded {response.rewards_forwarded}"
    )
    for rejection in summary.rejected:
        errors.print(f"[red]rejected[/red]: {rejection.reason}")
    if summary.rejected:
        raise typer.Exit(1)
