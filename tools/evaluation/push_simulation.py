"""A simulated shop for push campaigns: shoppers with time zones, languages and opt-outs, a catalog
with news (new arrivals, price drops, restocks), and a check of every planned push against the
rules, read back from the campaign's JSONL file."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2
from services.gateway.push.templates import LIMITS
from services.gateway.push.timing import QuietHours
from tools.synth.sessions import shopper_events
from tools.synth.shop import Shop, catalog
from tools.synth.shoppers import shopper
from tools.synth.writer import START

# Where the simulated shoppers live, by their UTC offset: time zone, segment, language.
HOMES = {
    -8: ("America/Los_Angeles", "United States", "en"),
    -5: ("America/New_York", "United States", "en"),
    0: ("Europe/London", "United Kingdom", "en"),
    1: ("Europe/Paris", "France", "en"),
    8: ("Asia/Shanghai", "China", "zh-CN"),
    9: ("Asia/Tokyo", "Japan", "en"),
}
OPT_OUT_SHARE = 0.05
NEW_SHARE, DROP_SHARE, RESTOCK_SHARE = 0.03, 0.05, 0.03


def history(seed: int, shop: Shop, numbers: range, days: int) -> Iterator[common_pb2.Event]:
    """The shoppers' sessions, each event tagged with the shopper's segment."""
    for number in numbers:
        person = shopper(seed, number)
        segment = HOMES[person.utc_offset_hours][1]
        for event in shopper_events(seed, person, shop, START, days):
            message = event.as_proto()
            message.segment = segment
            yield message


def push_settings(seed: int, shoppers: int) -> list[gateway_pb2.PushSettings]:
    rng = np.random.default_rng([seed, 31])
    opted_out = rng.random(shoppers) < OPT_OUT_SHARE
    entries = []
    for number in range(shoppers):
        person = shopper(seed, number)
        zone, _, language = HOMES[person.utc_offset_hours]
        entries.append(
            gateway_pb2.PushSettings(
                user_id=person.user_id, language=language, time_zone=zone, opted_out=bool(opted_out[number])
            )
        )
    return entries


@dataclass(frozen=True)
class CatalogNews:
    listing: list[common_pb2.Item]  # the catalog as first loaded, with listing times
    updates: list[common_pb2.Item]  # later: lower prices, items back in stock


def catalog_news(shop: Shop, seed: int, now: datetime) -> CatalogNews:
    """A few items listed two days ago (the rest 90 days ago), then price drops of 20% and restocks."""
    rng = np.random.default_rng([seed, 32])
    items = catalog(shop)
    draw = rng.random(len(items))
    new = draw < NEW_SHARE
    dropped = (draw >= NEW_SHARE) & (draw < NEW_SHARE + DROP_SHARE)
    restocked = (draw >= NEW_SHARE + DROP_SHARE) & (draw < NEW_SHARE + DROP_SHARE + RESTOCK_SHARE)
    listing, updates = [], []
    for n, item in enumerate(items):
        item.listed_time.FromDatetime(now - timedelta(days=2 if new[n] else 90))
        later = common_pb2.Item()
        later.CopyFrom(item)
        if restocked[n]:
            item.stock_status = common_pb2.STOCK_STATUS_OUT_OF_STOCK
            later.stock_status = common_pb2.STOCK_STATUS_IN_STOCK
            updates.append(later)
        elif dropped[n] and item.price > 0:
            later.price = round(item.price * 0.8, 2)
            updates.append(later)
        listing.append(item)
    return CatalogNews(listing, updates)


def check_pushes(
    path: Path, entries: Sequence[gateway_pb2.PushSettings], quiet: QuietHours, planned_from: datetime
) -> list[str]:
    """Every rule a planned push in the file breaks (an empty list when none); `planned_from` is when
    planning began, which no send time may precede (the check may run long after)."""
    by_user = {entry.user_id: entry for entry in entries}
    problems: list[str] = []
    seen: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        push = json.loads(line)
        user = push["user_id"]
        seen[user] += 1
        entry = by_user[user]
        when = datetime.fromisoformat(push["send_time"].replace("Z", "+00:00"))
        local = when.astimezone(ZoneInfo(entry.time_zone))
        title_limit, body_limit = LIMITS[push["language"]]
        checks = {
            "opted out": entry.opted_out,
            "quiet hour": local.hour in quiet,
            "wrong language": push["language"] != entry.language,
            "too long": len(push["title"]) > title_limit or len(push["body"]) > body_limit,
            "empty slot": "{" in push["title"] + push["body"] or not push["title"] or not push["body"],
            "no fact": not push.get("reason_facts"),
            "in the past": when < planned_from,
        }
        problems += [f"{user}: {name}" for name, broken in checks.items() if broken]
    problems += [f"{user}: {count} pushes in one campaign" for user, count in seen.items() if count > 1]
    return problems


def samples(path: Path, language: str, count: int = 3) -> list[dict]:
    """The first planned pushes in a language, one per template as far as possible."""
    chosen: dict[str, dict] = {}
    rest: list[dict] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        push = json.loads(line)
        if push["language"] != language:
            continue
        if push["template"] not in chosen:
            chosen[push["template"]] = push
        else:
            rest.append(push)
        if len(chosen) >= count:
            break
    return (list(chosen.values()) + rest)[:count]
