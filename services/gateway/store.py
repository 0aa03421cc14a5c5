"""The gateway's request log: what was recommended to whom, and which stages were degraded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text

from shared.clock import Clock, system_clock
from shared.db import Store, upsert
from shared.group_commit import GroupCommit

metadata = MetaData()
requests = Table(
    "gateway_requests",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("user_id", String(128), nullable=False, index=True),
    Column("surface", String(32), nullable=False),
    Column("count", Integer, nullable=False),
    Column("item_ids", Text, nullable=False),
    Column("degraded_stages", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class LoggedRequest:
    request_id: str
    user_id: str
    surface: str
    count: int
    item_ids: list[str]
    degraded_stages: list[str]


class GatewayStore(Store):
    service = "gateway"
    migrations = Path(__file__).parent / "migrations"

    def __init__(self, url: str, clock: Clock = system_clock) -> None:
        super().__init__(url, clock)
        self._requests: GroupCommit[LoggedRequest, None] = GroupCommit(self._log_requests)

    def log_request(self, entry: LoggedRequest) -> None:
        """Logs a request once, returning when it is committed: a retry under the same request_id
        keeps the first entry. Requests logged at the same time commit together."""
        self._requests.submit(entry)

    def _log_requests(self, entries: list[LoggedRequest]) -> list[None]:
        # one row per request_id: PostgreSQL refuses an upsert that meets the same key twice
        first = {entry.request_id: entry for entry in reversed(entries)}
        with self.engine.begin() as connection:
            connection.execute(
                upsert(self.engine, requests).on_conflict_do_nothing(index_elements=[requests.c.request_id]),
                [
                    {
                        "request_id": entry.request_id,
                        "user_id": entry.user_id,
                        "surface": entry.surface,
                        "count": entry.count,
                        "item_ids": json.dumps(entry.item_ids),
                        "degraded_stages": json.dumps(entry.degraded_stages),
                        "created_at": self.clock(),
                    }
                    for entry in first.values()
                ],
            )
        return [None] * len(entries)
