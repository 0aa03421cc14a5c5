"""The push simulation's checker flags each broken rule, judged at planning time."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from recsys.gateway.v1 import gateway_pb2
from services.gateway.push.timing import QuietHours
from tools.evaluation.push_simulation import check_pushes

PLANNED_FROM = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
QUIET = QuietHours(22, 8)
SHOPPERS = [
    gateway_pb2.PushSettings(user_id="ann", language="en", time_zone="Europe/London"),
    gateway_pb2.PushSettings(user_id="bo", language="zh-CN", time_zone="Asia/Shanghai", opted_out=True),
]


def push(user: str, send: datetime, language: str = "en", title: str = "Price drop: Mug") -> dict:
    return {
        "user_id": user,
        "language": language,
        "send_time": send.isoformat().replace("+00:00", "Z"),
        "title": title,
        "body": "Mug is now £3.00, down from £4.00.",
        "reason_facts": [{"kind": "price_drop", "value": "4.00"}],
    }


def check(tmp_path: Path, pushes: list[dict]) -> list[str]:
    path = tmp_path / "pushes.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in pushes), encoding="utf-8")
    return check_pushes(path, SHOPPERS, QUIET, PLANNED_FROM)


def test_a_push_keeping_every_rule_passes_even_when_checked_long_after(tmp_path: Path) -> None:
    assert check(tmp_path, [push("ann", PLANNED_FROM + timedelta(hours=10))]) == []


def test_each_broken_rule_is_flagged(tmp_path: Path) -> None:
    evening = PLANNED_FROM + timedelta(hours=10)
    problems = check(
        tmp_path,
        [
            push("ann", PLANNED_FROM - timedelta(minutes=1)),
            push("ann", PLANNED_FROM + timedelta(hours=14), title="{item}"),
            push("bo", evening, language="zh-CN"),
        ],
    )
    assert sorted(problems) == [
        "ann: 2 pushes in one campaign",
        "ann: empty slot",
        "ann: in the past",
        "ann: quiet hour",
        "bo: opted out",
        "bo: quiet hour",
    ]
