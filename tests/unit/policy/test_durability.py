"""A decision the policy service acknowledged is stored, even when the process is killed (kill -9)
while many Selects commit together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc

from recsys.policy.v1 import policy_pb2, policy_pb2_grpc
from services.policy.store import PolicyStore
from tests.unit.policy.test_policy import scored
from tools.cli.supervisor import check_health, free_port

WRITERS = 8


def test_every_acknowledged_decision_survives_kill_9(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "RECSYS_HOME": str(tmp_path),
        "RECSYS_POLICY_PORT": str(port),
        "RECSYS_METRICS_PORT": "0",
        "RECSYS_TLS": "off",
        "RECSYS_POLICY_DATABASE_URL": database_url,
    }
    service = subprocess.Popen(
        [sys.executable, "-m", "services.policy"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while check_health(address, 1.0) != "SERVING":
            assert service.poll() is None and time.monotonic() < deadline, "the policy service did not start"
            time.sleep(0.2)
        acknowledged: list[str] = []
        failed: list[str] = []
        stop = threading.Event()

        def write(writer: int) -> None:
            with grpc.insecure_channel(address) as channel:
                stub = policy_pb2_grpc.PolicyServiceStub(channel)
                number = 0
                while not stop.is_set():
                    request_id = f"w{writer}-{number}"
                    number += 1
                    try:
                        stub.Select(
                            policy_pb2.SelectRequest(
                                request_id=request_id, user_id=f"u{writer}", items=scored(), count=2
                            ),
                            timeout=5,
                        )
                    except grpc.RpcError as error:
                        failed.append(f"{request_id}: {error.code().name}")
                        return
                    acknowledged.append(request_id)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
        for thread in threads:
            thread.start()
        time.sleep(2.0)
        service.send_signal(signal.SIGKILL)
        service.wait(timeout=10)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()
    assert len(acknowledged) > 20, f"the writers got going before the kill; {failed}"
    assert failed, "the kill interrupted calls in flight"
    store = PolicyStore(database_url)
    try:
        missing = [request_id for request_id in acknowledged if store.decision(request_id) is None]
    finally:
        store.close()
    assert missing == []
