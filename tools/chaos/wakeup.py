"""The machine's own scheduling delay, measured beside the overload: how late a bare timer wakes in
a process of its own that does nothing else. A refusal crosses at least two processes (the client
and the gateway), each of which must be woken to handle it; on a saturated machine no refusal can
be reliably faster than these wake-ups.

    python -m tools.chaos.wakeup SECONDS    # prints {"p50_ms": ..., "p99_ms": ..., "samples": N}
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass

TICK_S = 0.002


@dataclass(frozen=True)
class WakeupDelay:
    p50_ms: float
    p99_ms: float
    samples: int


def delays_ms(seconds: float, tick_s: float = TICK_S) -> list[float]:
    """How late each of the timer's wake-ups came, over `seconds`."""
    found = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        time.sleep(tick_s)
        found.append(max(0.0, (time.perf_counter() - started - tick_s) * 1000))
    return found


def summary(delays: list[float]) -> WakeupDelay:
    cuts = statistics.quantiles(delays, n=100, method="inclusive")
    return WakeupDelay(round(cuts[49], 2), round(cuts[98], 2), len(delays))


async def measure(seconds: float) -> WakeupDelay:
    """Runs the timer in its own process for `seconds` (to run beside a phase of load)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.chaos.wakeup", str(seconds), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the wake-up probe exited with code {process.returncode}")
    return WakeupDelay(**json.loads(out))


if __name__ == "__main__":
    print(json.dumps(asdict(summary(delays_ms(float(sys.argv[1]))))))
