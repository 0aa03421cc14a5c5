"""Faults staged on a running suite, one process at a time: kill -9 (the supervisor restarts it),
a hang (SIGSTOP, then SIGCONT), and a long outage (killed, and held down)."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass, field

from tools.cli.supervisor import Suite

SUPERVISE_EVERY_S = 0.2


@dataclass
class Supervision:
    """Runs the supervisor's look over the processes while the faults play; `held` stay down."""

    suite: Suite
    held: set[str] = field(default_factory=set)
    said: list[str] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.suite.supervise(self.said.append, hold=self.held)
            await asyncio.sleep(SUPERVISE_EVERY_S)


async def kill(suite: Suite, name: str, seconds: float) -> None:
    """kill -9, then `seconds` in which the supervisor brings it back."""
    suite.processes[name].kill()
    await asyncio.sleep(seconds)


async def hang(suite: Suite, name: str, seconds: float) -> None:
    """The process stops answering (SIGSTOP) for `seconds`, then goes on (SIGCONT)."""
    pid = suite.processes[name].pid
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


async def outage(supervision: Supervision, name: str, seconds: float) -> None:
    """Killed and kept down for `seconds`, then restarted by the supervisor."""
    supervision.held.add(name)
    supervision.suite.processes[name].kill()
    try:
        await asyncio.sleep(seconds)
    finally:
        supervision.held.discard(name)
