"""Helpers for tests: run a service in-process on a free port, over real gRPC."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import grpc

from recsys.items.v1 import items_pb2, items_pb2_grpc
from shared.config import Settings, load_settings
from shared.server import RunningServer, ServiceApp
from tools.cli.supervisor import free_ports_env


def suite_env(**overrides: str) -> dict[str, str]:
    """RECSYS_<SERVICE>_PORT and _METRICS_PORT for every service on free ports, plus overrides."""
    return {**free_ports_env(), **overrides}


def make_settings(home: str, **env: str) -> Settings:
    """Settings for in-process servers: no shutdown delay, no metrics endpoint (one registry per
    process), plaintext unless RECSYS_TLS is given (tests/unit/shared/test_mtls.py covers mTLS; the
    integration suite runs with it, as `recsys up` does)."""
    return load_settings(
        {
            "RECSYS_HOME": home,
            "RECSYS_SHUTDOWN_DELAY_S": "0",
            "RECSYS_METRICS_PORT": "0",
            "RECSYS_TLS": "off",
            **env,
        }
    )


class ServerThread:
    """A service running on its own event loop in a background thread."""

    def __init__(
        self,
        build: Callable[[Settings], ServiceApp],
        settings: Settings,
        port: int = 0,
        wait_ready: bool = True,
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.settings = settings
        self.running: RunningServer = self.run(self._start(build, port, wait_ready))

    async def _start(
        self, build: Callable[[Settings], ServiceApp], port: int, wait_ready: bool
    ) -> RunningServer:
        running = RunningServer(build(self.settings), self.settings, port)
        try:
            await running.start()
        except SystemExit as refused:  # would end the loop's thread and leave the caller waiting
            raise RuntimeError(str(refused)) from refused
        if wait_ready:
            await asyncio.wait_for(running.ready.wait(), 30)
        return running

    def run(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout=60)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.running.port}"

    def stop(self) -> None:
        """Stops the server and its thread; again, it does nothing."""
        if not self.thread.is_alive():
            return
        self.run(self.running.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def upsert_items(address: str, *items: Any) -> None:
    """Stores `items` (common_pb2.Item) through the items service at `address`, without TLS."""
    with grpc.insecure_channel(address) as channel:
        items_pb2_grpc.ItemsServiceStub(channel).UpsertItems(
            iter([items_pb2.UpsertItemsRequest(items=list(items))]), timeout=10
        )


def purchases_snapshot(baskets: dict[str, list[str]], folder: Any = None) -> Any:
    """A snapshot in which each user bought the listed items (catalog = every item)."""
    import numpy as np

    from ml.snapshot import PURCHASE, Snapshot

    users = [user for user, items in baskets.items() for _ in items]
    items = [item for basket in baskets.values() for item in basket]
    catalog = sorted(set(items))
    return Snapshot(
        folder=folder,
        user_ids=np.array(users, dtype=str),
        item_ids=np.array(items, dtype=str),
        types=np.full(len(items), PURCHASE, dtype=np.int8),
        timestamps=np.arange(len(items), dtype=np.float64),
        quantities=np.ones(len(items), dtype=np.int32),
        catalog_item_ids=np.array(catalog, dtype=str),
        catalog_titles=np.array([f"title {c}" for c in catalog], dtype=str),
        catalog_categories=np.array(["shop"] * len(catalog), dtype=str),
        catalog_prices=np.ones(len(catalog)),
        catalog_price_scaled=np.zeros(len(catalog)),
    )


class HealthWatch:
    """Reads a health Watch stream in a background thread, keeping every status it sees."""

    def __init__(self, address: str, service: str = "", credentials: Any = None) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        from shared.tls import open_sync_channel

        self.seen: list[int] = []
        self.channel = open_sync_channel(address, credentials)
        stream = health_pb2_grpc.HealthStub(self.channel).Watch(
            health_pb2.HealthCheckRequest(service=service)
        )

        def read() -> None:
            try:
                for message in stream:
                    self.seen.append(message.status)
            except grpc.RpcError:
                pass

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()

    def wait_first(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.seen and time.monotonic() < deadline:
            time.sleep(0.05)

    def finish(self, timeout: float = 15.0) -> list[int]:
        """Waits for the stream to end (the server went away) and returns what it saw."""
        self.reader.join(timeout=timeout)
        self.channel.close()
        return self.seen
