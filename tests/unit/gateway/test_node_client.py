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


def _node(
    address: str, key: str, *args: str, ca_file: Path | None = None
) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail("the Node client needs node and `npm ci` (make test runs it)")
    return subprocess.run(
        [node, str(EXAMPLE), address, *args],
        env={
            "PATH": os.environ["PATH"],
            "RECSYS_API_KEY": key,
            **({"RECSYS_CA_FILE": str(ca_file)} if ca_file else {}),
        },
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
    assert all(item["source"] in {"SOURCE_ITEM_KNN", "SOURCE_EASE", "SOURCE_POPULAR"} for item in items)
    assert "4 items by POLICY_GREEDY" in result.stderr


def test_the_node_client_sees_the_gateways_status_codes(suite) -> None:
    _, servers = suite
    result = _node(servers["gateway"].address, "not-a-key-of-this-suite", "user1")
    assert result.returncode == 1
    assert result.stderr.startswith("UNAUTHENTICATED")


def test_the_node_client_speaks_tls_to_a_gateway_that_requires_it(tmp_path: Path) -> None:
    from services.gateway.app import build
    from tests.support import ServerThread, make_settings
    from tools.certs import ensure_certificates

    ensure_certificates(tmp_path / "tls")
    settings = make_settings(str(tmp_path), RECSYS_TLS="on", RECSYS_API_KEYS="k" * 32)
    gateway = ServerThread(build, settings, wait_ready=False)
    try:
        # by name: TLS clients name the server they expect (the certificate says localhost too)
        by_name = gateway.address.replace("127.0.0.1", "localhost")
        over_tls = _node(
            by_name, "not-a-key-of-this-suite", "user1", ca_file=tmp_path / "tls" / "ca" / "ca.crt"
        )
        plaintext = _node(gateway.address, "not-a-key-of-this-suite", "user1")
    finally:
        gateway.stop()
    assert over_tls.stderr.startswith("UNAUTHENTICATED"), over_tls.stderr  # past TLS, to the key check
    assert plaintext.stderr.startswith("UNAVAILABLE"), plaintext.stderr
