"""Helpers for tests: run a service in-process on a free port, over real gRPC."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from shared.config import Settings, load_settings
from shared.server import RunningServer, ServiceApp


def make_settings(home: str, **env: str) -> Settings:
    return load_settings({"RECSYS_HOME": home, "RECSYS_SHUTDOWN_DELAY_S": "0", **env})


class ServerThread:
    """A service running on its own event loop in a background thread."""

    def __init__(self, build: Callable[[Settings], ServiceApp], settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.settings = settings
        self.running: RunningServer = self.run(self._start(build))

    async def _start(self, build: Callable[[Settings], ServiceApp]) -> RunningServer:
        running = RunningServer(build(self.settings), self.settings, 0)
        await running.start()
        await asyncio.wait_for(running.ready.wait(), 30)
        return running

    def run(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout=60)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.running.port}"

    def stop(self) -> None:
        self.run(self.running.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
