"""Push rules, timing and templates, property-based: no plan breaks a cap, a quiet hour or the
dedupe window, and every template renders in both languages without an empty slot."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys.gateway.v1 import gateway_pb2
from services.gateway.push.log import Outcome, PushLog
from services.gateway.push.rules import DAY, WEEK, Planned, broken_rule, exceeds_cap
from services.gateway.push.templates import (
    LANGUAGES,
    LIMITS,
    OCCASIONS,
    REASONS,
    SlotMissing,
    language_of,
    reason,
    render,
    slots_of,
)
from services.gateway.push.timing import QuietHours, best_hour, local_shares, send_time
from services.gateway.settings import PushConfig
from services.gateway.store import GatewayStore

START = datetime(2026, 3, 1, tzinfo=UTC)
ZONES = ["UTC", "Europe/London", "Asia/Shanghai", "America/New_York", "Asia/Kolkata", "Pacific/Auckland"]
titles = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=120
).filter(lambda t: t.strip() and "{" not in t and "}" not in t)


def _times(offsets: list[float]) -> list[datetime]:
    return [START + timedelta(hours=h) for h in offsets]


@given(st.lists(st.floats(0, 24 * 30), max_size=30), st.integers(0, 5), st.sampled_from([DAY, WEEK]))
def test_exceeds_cap_matches_counting_every_window(offsets, cap, window) -> None:
    times = _times(offsets)
    # brute force: every window that starts at one of the times
    crowded = any(sum(start <= t < start + window for t in times) > cap for start in times)
    assert exceeds_cap(times, cap, window) == crowded


@settings(max_examples=60)
@given(
    st.lists(st.tuples(st.floats(0, 24 * 40), st.sampled_from("abcdef")), max_size=40),
    st.integers(1, 3),
    st.integers(1, 8),
    st.integers(0, 20),
)
def test_pushes_accepted_one_by_one_never_break_a_cap_or_the_dedupe_window(
    attempts, daily, weekly, dedupe_days
) -> None:
    config = PushConfig(daily_cap=daily, weekly_cap=weekly, dedupe_days=dedupe_days)
    accepted: list[Planned] = []
    for hours, item in attempts:
        when = START + timedelta(hours=hours)
        if broken_rule(accepted, when, [item], config) is None:
            accepted.append(Planned(when, (item,)))
    times = [p.send_time for p in accepted]
    assert not exceeds_cap(times, daily, DAY) and not exceeds_cap(times, weekly, WEEK)
    for n, first in enumerate(accepted):
        for second in accepted[n + 1 :]:
            if first.item_ids == second.item_ids:
                assert abs(first.send_time - second.send_time) >= timedelta(days=dedupe_days)


def _message(user: str, item: str, when: datetime, n: int) -> gateway_pb2.PushMessage:
    push = gateway_pb2.PushMessage(push_id=f"p{n}", user_id=user, item_ids=[item], template="top_pick")
    push.send_time.FromDatetime(when)
    return push


@pytest.fixture
def push_log(tmp_path, database_url):
    store = GatewayStore(database_url)
    store.migrate()
    yield PushLog(store, PushConfig(daily_cap=1, weekly_cap=3, dedupe_days=10))
    store.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.sampled_from(["ann", "bob"]), st.floats(0, 24 * 20), st.sampled_from("xyz")), max_size=25
    )
)
def test_the_push_log_stores_only_pushes_that_keep_the_rules(push_log, attempts) -> None:
    run = f"r{abs(hash(tuple(attempts)))}"  # each example its own shoppers: the database is shared
    outcomes = [
        Outcome(f"{run}{user}", _message(f"{run}{user}", item, START + timedelta(hours=h), n))
        for n, (user, h, item) in enumerate(attempts)
    ]
    for outcome in outcomes:
        outcome.push.push_id = f"{run}-{outcome.push.push_id}"
    stored = push_log.record(outcomes[: len(outcomes) // 2]) + [
        push_log.record([o])[0] for o in outcomes[len(outcomes) // 2 :]
    ]
    for user in ("ann", "bob"):
        mine = [o.push for o in stored if o.push is not None and o.user_id == f"{run}{user}"]
        kept = push_log.planned_for(f"{run}{user}")
        assert sorted(p.send_time for p in kept) == sorted(p.send_time.ToDatetime(tzinfo=UTC) for p in mine)
        times = [p.send_time for p in kept]
        assert not exceeds_cap(times, 1, DAY) and not exceeds_cap(times, 3, WEEK)
    skipped = [o.skip_reason for o in stored if o.push is None]
    assert all(("cap reached" in r) or ("already pushed" in r) for r in skipped)


def test_a_campaign_stores_each_shoppers_outcome_once(push_log) -> None:
    push_log.open_campaign("spring", "France")
    first = push_log.record(
        [Outcome("ann", _message("ann", "x", START, 1)), Outcome("bob", skip_reason="opted out")], "spring"
    )
    assert [o.push is not None for o in first] == [True, False]
    again = push_log.record([Outcome("ann", _message("ann", "y", START + WEEK, 2))], "spring")
    assert again[0].push.push_id == "p1"  # the stored outcome comes back, nothing new is stored
    stored = push_log.campaign_outcomes("spring", ["ann", "bob", "cat"])
    assert (stored["ann"].push.push_id, stored["bob"].skip_reason, "cat" in stored) == (
        "p1",
        "opted out",
        False,
    )
    assert len(push_log.planned_for("ann")) == 1
    with pytest.raises(ValueError, match="planned for segment 'France'"):
        push_log.open_campaign("spring", "Spain")


@given(
    st.lists(st.floats(0, 1), min_size=24, max_size=24),
    st.sampled_from(ZONES),
    st.integers(0, 23),
    st.integers(0, 23),
    st.integers(0, 10**6),
)
def test_send_time_is_in_the_future_at_the_best_allowed_local_hour(
    shares, zone_name, start, end, minutes
) -> None:
    quiet = QuietHours(start, end)
    if all(hour in quiet for hour in range(24)):
        return
    zone = ZoneInfo(zone_name)
    now = START + timedelta(minutes=minutes)
    when = send_time(now, shares, zone, quiet, key="k")
    local = when.astimezone(zone)
    assert now < when <= now + timedelta(days=3)
    assert local.hour not in quiet
    assert local.hour == best_hour(local_shares(shares, zone, now), quiet)


def test_active_hours_are_read_in_the_shoppers_time_zone() -> None:
    shares = [0.0] * 24
    shares[11] = 1.0  # active at 11:00 UTC, which is 19:00 in Shanghai
    quiet = QuietHours(22, 8)
    assert (
        send_time(START, shares, ZoneInfo("Asia/Shanghai"), quiet, "k")
        .astimezone(ZoneInfo("Asia/Shanghai"))
        .hour
        == 19
    )
    shares = [0.0] * 24
    shares[23] = 1.0  # a night owl (23:00 UTC) gets the nearest allowed hour, not a quiet one
    assert send_time(START, shares, ZoneInfo("UTC"), quiet, "k").hour == 21
    assert send_time(START, [0.0] * 24, ZoneInfo("UTC"), quiet, "k").hour == 19  # no activity yet


slot_values = st.fixed_dictionaries(
    {
        "item": titles,
        "anchor": titles,
        "price": st.floats(0.01, 99_999).map(lambda p: f"£{p:,.2f}"),
        "previous_price": st.floats(0.01, 99_999).map(lambda p: f"£{p:,.2f}"),
        "category": st.sampled_from(["Kitchen", "Garden Furniture", "Stationery"]),
        "kind": st.sampled_from(["coupon", "article", "video", "activity", "promotion"]),
        "link": st.sampled_from(["Brand012", "Kitchen", "color: red"]),
        "segment": st.sampled_from(["France", "United Kingdom", "EIRE"]),
        "buyers": st.integers(1, 10**6).map(str),
        "purchases": st.integers(1, 10**4).map(str),
        "band": st.just("1.65-4.95"),
    }
)


@settings(max_examples=200)
@given(slot_values, st.sampled_from(OCCASIONS), st.sampled_from(LANGUAGES), st.sampled_from(sorted(REASONS)))
def test_every_template_renders_in_both_languages_within_limits_and_without_empty_slots(
    slots, occasion, language, reason_key
) -> None:
    slots = {**slots, "reason": reason(reason_key, language, slots)}
    rendered = render(occasion, language, slots)
    title_limit, body_limit = LIMITS[language]
    assert 0 < len(rendered.title) <= title_limit and 0 < len(rendered.body) <= body_limit
    for text in (rendered.title, rendered.body):
        assert "{" not in text and "}" not in text and "None" not in text
        assert text.strip() == text


def test_a_missing_fact_refuses_the_template_instead_of_leaving_a_hole() -> None:
    with pytest.raises(SlotMissing):
        render("price_drop", "en", {"item": "Mug", "price": "£3.00", "previous_price": " "})
    # an unknown price picks the alternative that does not name it
    assert (
        render("top_pick", "zh-CN", {"item": "Mug", "price": "", "reason": "近期热卖"}).body
        == "Mug。近期热卖。"
    )
    assert all(slots_of(text) for templates in REASONS.values() for text in templates.values() if "{" in text)


@pytest.mark.parametrize(
    ("tag", "language"),
    [
        ("en", "en"),
        ("en-GB", "en"),
        ("zh", "zh-CN"),
        ("zh-Hans", "zh-CN"),
        ("zh_CN", "zh-CN"),
        ("fr", None),
        ("zh-TW", None),
    ],
)
def test_language_tags(tag, language) -> None:
    assert language_of(tag) == language
