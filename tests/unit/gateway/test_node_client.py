"""A client in another language, built from protos/ alone, talks to the gateway (examples/node)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from shared.auth import read_key
from tests.unit.gateway.suite import ITEMS

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "node" / "recommend.mjs"


def _node(address: str, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail("the Node client needs node and `npm ci` (make test runs it)")
    return subprocess.run(
        [node, str(EXAMPLE), address, *args],
        env={"PATH": os.environ["PATH"], "RECSYS_API_KEY": key},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_node_client_gets_recommendations(suite) -> None:
    settings, servers = suite
    result = _node(servers["gateway"].address, read_key(settings), "user1", "4", "greedy")
    assert result.returncode == 0, result.stderr
    items = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(items) == 4
    assert all(item["item_id"] in ITEMS and item["title"] == f"Title {item['item_id']}" for item in items)
    assert "4 items" in result.stderr


def test_the_node_client_sees_the_gateways_status_codes(suite) -> None:
    _, servers = suite
    result = _node(servers["gateway"].address, "not-a-key-of-this-suite", "user1")
    assert result.returncode == 1
    assert result.stderr.startswith("UNAUTHENTICATED")
