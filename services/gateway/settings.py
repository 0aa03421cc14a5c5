"""The gateway's own settings section: push rules and how many ranked items go to the policy."""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.config import EnvReader

# Fields a push deep link may name (RECSYS_PUSH_DEEP_LINK).
DEEP_LINK_FIELDS = ("item_id", "push_id", "request_id", "user_id")
CURRENCY_SYMBOLS = {"GBP": "£", "USD": "$", "EUR": "€", "CNY": "¥", "JPY": "¥"}


@dataclass(frozen=True)
class PushConfig:
    """The push rules and how messages are written and timed (docs/push.md)."""

    daily_cap: int = 2  # pushes per shopper in any 24 hours
    weekly_cap: int = 5  # pushes per shopper in any 7 days
    dedupe_days: float = 14.0  # no item pushed twice to a shopper within this many days
    min_confidence: float = 0.01  # below it, the ranker is not sure enough: no push
    quiet_start: int = 22  # local hour quiet hours start
    quiet_end: int = 8  # local hour quiet hours end
    time_zone: str = "UTC"  # for shoppers whose settings name none
    deep_link: str = "shop://item/{item_id}?push_id={push_id}&request_id={request_id}"
    currency: str = "GBP"
    fresh_days: float = 14.0  # how recent a listing, price drop or restock must be to be news


@dataclass(frozen=True)
class PromotionConfig:
    """How promotion plans are made (docs/promotions.md)."""

    holdout_share: float = 0.1  # shoppers held out of an uplift plan (logged, sent nothing)
    explore_share: float = 0.1  # the share of an uplift plan's budget spent on random pairs
    margin_rate: float = 0.3  # the shop's margin on a sale, as a share of its price


@dataclass(frozen=True)
class GatewaySettings:
    push: PushConfig = field(default_factory=PushConfig)
    promotions: PromotionConfig = field(default_factory=PromotionConfig)
    # Ranked items sent to the policy, which chooses the slate among them; the policy service
    # reads the same variable.
    consider: int = 50
    # Seconds between the relay's looks for rewards still pending delivery to the policy.
    reward_relay_s: float = 5.0
    # Recommend calls one gateway answers at a time; more are refused at once (admission.py).
    recommend_concurrency: int = 8
    # Catalog items this process holds for Recommend, following the catalog's changes (catalog.py);
    # 0 asks the catalog for every request's items.
    held_items: int = 20_000


def read_gateway_settings(read: EnvReader) -> GatewaySettings:
    return GatewaySettings(
        push=_push_config(read),
        promotions=PromotionConfig(
            holdout_share=read.number("RECSYS_PROMO_HOLDOUT_SHARE", 0.1, 0, 0.9),
            explore_share=read.number("RECSYS_PROMO_EXPLORE_SHARE", 0.1, 0, 1),
            margin_rate=read.number("RECSYS_PROMO_MARGIN_RATE", 0.3, 0.01, 1),
        ),
        consider=int(read.number("RECSYS_POLICY_CONSIDER", 50, 1, 1000)),
        reward_relay_s=read.number("RECSYS_REWARD_RELAY_S", 5, 0.1, 3600),
        recommend_concurrency=int(read.number("RECSYS_RECOMMEND_CONCURRENCY", 8, 1, 10_000)),
        held_items=int(read.number("RECSYS_GATEWAY_HELD_ITEMS", 20_000, 0, 10_000_000)),
    )


def _quiet_hours(read: EnvReader) -> tuple[int, int]:
    raw = read.text("RECSYS_PUSH_QUIET_HOURS", "22-8")
    start, _, end = raw.partition("-")
    try:
        hours = (int(start), int(end))
    except ValueError:
        hours = (-1, -1)
    if not all(0 <= hour <= 23 for hour in hours):
        read.problems.append(
            f"RECSYS_PUSH_QUIET_HOURS={raw!r} must be <start>-<end> local hours 0-23, e.g. 22-8"
        )
        return 22, 8
    return hours


def _push_config(read: EnvReader) -> PushConfig:
    quiet_start, quiet_end = _quiet_hours(read)
    time_zone = read.text("RECSYS_PUSH_TIME_ZONE", "UTC")
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        read.problems.append(
            f"RECSYS_PUSH_TIME_ZONE={time_zone!r} is not an IANA time zone (e.g. Europe/London)"
        )
        time_zone = "UTC"
    deep_link = read.text("RECSYS_PUSH_DEEP_LINK", PushConfig.deep_link)
    try:
        named = {name for _, name, _, _ in string.Formatter().parse(deep_link) if name is not None}
    except ValueError:
        named = {"?"}
    if not named <= set(DEEP_LINK_FIELDS) or "item_id" not in named:
        read.problems.append(
            f"RECSYS_PUSH_DEEP_LINK={deep_link!r} must name {{item_id}} and may name only "
            + ", ".join(f"{{{name}}}" for name in DEEP_LINK_FIELDS)
        )
        deep_link = PushConfig.deep_link
    return PushConfig(
        daily_cap=int(read.number("RECSYS_PUSH_DAILY_CAP", 2, 0, 100)),
        weekly_cap=int(read.number("RECSYS_PUSH_WEEKLY_CAP", 5, 0, 700)),
        dedupe_days=read.number("RECSYS_PUSH_DEDUPE_DAYS", 14, 0, 365),
        min_confidence=read.number("RECSYS_PUSH_MIN_CONFIDENCE", 0.01, 0, 1),
        quiet_start=quiet_start,
        quiet_end=quiet_end,
        time_zone=time_zone,
        deep_link=deep_link,
        currency=read.choice("RECSYS_CURRENCY", "GBP", tuple(CURRENCY_SYMBOLS)),
        fresh_days=read.number("RECSYS_PUSH_FRESH_DAYS", 14, 0, 365),
    )
