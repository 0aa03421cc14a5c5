"""The gateway's request log: requests logged at the same time commit together, each once."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from services.gateway.store import GatewayStore, LoggedRequest, requests


def test_requests_logged_together_are_each_stored_once_with_their_first_entry(database_url: str) -> None:
    store = GatewayStore(database_url)
    store.migrate()
    entries = [LoggedRequest(f"r{n}", f"u{n % 7}", "home", 5, [f"i{n}"], []) for n in range(80)]
    retries = [
        LoggedRequest(f"r{n}", "someone else", "home", 5, ["other"], ["policy"]) for n in range(0, 80, 9)
    ]
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(store.log_request, entries))
            list(pool.map(store.log_request, retries))
        with store.engine.connect() as connection:
            rows = {row.request_id: row for row in connection.execute(select(requests))}
    finally:
        store.close()
    assert set(rows) == {entry.request_id for entry in entries}
    for entry in entries:
        row = rows[entry.request_id]
        assert (row.user_id, json.loads(row.item_ids)) == (entry.user_id, entry.item_ids)
