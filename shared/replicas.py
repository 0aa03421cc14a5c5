"""A caller of several equivalent replicas (the gateway's, behind one deadline): one replica per call,
the next one at once when a replica is gone, and a hedge to the next one when an answer is late.

gRPC's own load balancing spreads calls over replicas and retries a refused connection, but a
replica that hangs (stopped, or stuck in a long pause) keeps its connection open: every call sent
to it waits for its whole deadline. gRPC's C core does not hedge, so this client does: when the
first replica has not answered by the time 95% of recent answers had come (`Hedging`), the same
request goes to the next replica and the first answer wins (the other attempt is cancelled);
with `hedging=None` it only fails over. A replica that was gone or lost a hedge is tried last for
`eject_s`, and then on probation: its next call is sent to it and to another replica at once, and
it is trusted again only when it answers first. So a hang costs the calls of its first moments,
not every call, and not one call per ejection either. Hedges are budgeted:
at most `Hedging.share` of the calls (plus a burst), so that a suite that is slow everywhere is
not sent twice the load; the share is above what a healthy suite's own slow tail hedges (13% to 16% of
the calls in `make chaos` runs), so that a hang never finds the budget spent.

Only for calls that are safe to send twice: Recommend with its request_id set (a repeat answers
the decision logged first), and RecordFeedback (events are idempotent by id).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import grpc
import numpy as np

Stub = TypeVar("Stub")
Reply = TypeVar("Reply")

EJECT_S = 5.0
# Codes that say the replica, not the request, is the problem: the next replica is tried at once.
REPLICA_GONE = (grpc.StatusCode.UNAVAILABLE,)


@dataclass(frozen=True)
class Hedging:
    """When a late call is sent to a second replica."""

    after_s: float | None = None  # a fixed delay; None: the `quantile` of recent answer times
    quantile: float = 0.95
    first_s: float = 0.1  # the delay until `remembered // 10` answers have been timed
    floor_s: float = 0.02
    ceiling_share: float = 0.4  # never later than this share of the call's timeout
    share: float = 0.2  # hedges per call, in the long run
    burst: float = 20.0
    remembered: int = 256  # answer times the quantile is taken over


HEDGING = Hedging()


class Replicas(Generic[Stub]):
    """One stub per replica; `call` sends a request to them as the module describes."""

    def __init__(
        self, stubs: Sequence[Stub], hedging: Hedging | None = HEDGING, eject_s: float = EJECT_S
    ) -> None:
        if not stubs:
            raise ValueError("Replicas needs at least one stub")
        self.stubs = list(stubs)
        self.hedging = hedging
        self.eject_s = eject_s
        self._tokens = hedging.burst if hedging else 0.0
        self._answer_times: deque[float] = deque(maxlen=hedging.remembered if hedging else 1)
        self._ejected_until = [0.0] * len(self.stubs)
        self._on_probation: set[int] = set()
        self._turn = itertools.count()
        self.hedges = 0  # calls that were sent to a second replica because the first was late
        self.failovers = 0  # calls sent to another replica because one was gone
        self.trials = 0  # calls sent to a replica on probation and another at once

    def _order(self) -> list[int]:
        """Every replica once: those in good standing first, taking turns, the ejected ones last."""
        start = next(self._turn) % len(self.stubs)
        rotated = [(start + i) % len(self.stubs) for i in range(len(self.stubs))]
        now = time.monotonic()
        return sorted(rotated, key=lambda index: self._ejected_until[index] > now)

    def _eject(self, index: int) -> None:
        self._ejected_until[index] = time.monotonic() + self.eject_s
        self._on_probation.add(index)

    def hedge_after(self, timeout_s: float) -> float | None:
        """How long a call with `timeout_s` waits for its first replica before it hedges (None:
        it does not: no hedging, or its budget is spent)."""
        hedging = self.hedging
        if hedging is None or self._tokens < 1:
            return None
        if hedging.after_s is not None:
            return hedging.after_s
        if len(self._answer_times) < hedging.remembered // 10:
            delay = hedging.first_s
        else:
            delay = float(np.quantile(self._answer_times, hedging.quantile))
        return min(max(delay, hedging.floor_s), hedging.ceiling_share * timeout_s)

    async def call(self, send: Callable[[Stub, float], Awaitable[Reply]], timeout_s: float) -> Reply:
        """`send(stub, seconds_left)` on one replica, then others as the module describes; the
        first answer, or the last replica's error when none answered."""
        started = time.monotonic()
        ends_at = started + timeout_s
        if self.hedging is not None:
            self._tokens = min(self._tokens + self.hedging.share, self.hedging.burst)
        hedge_in = self.hedge_after(timeout_s)
        waiting = self._order()
        attempts: dict[asyncio.Future[Reply], int] = {}
        last_error: grpc.aio.AioRpcError | None = None
        late: set[int] = set()  # replicas asked before a hedge was sent: they were late

        def launch() -> None:
            index = waiting.pop(0)
            left = max(ends_at - time.monotonic(), 0.0)
            attempts[asyncio.ensure_future(send(self.stubs[index], left))] = index

        on_probation = waiting[0] in self._on_probation
        launch()
        if on_probation and waiting:  # and the next one at once
            self.trials += 1
            launch()
        try:
            while attempts:
                may_hedge = bool(waiting) and hedge_in is not None and self._tokens >= 1
                done, _ = await asyncio.wait(
                    attempts, timeout=hedge_in if may_hedge else None, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:  # late: hedge to the next replica
                    late.update(attempts.values())
                    self._tokens -= 1
                    self.hedges += 1
                    launch()
                    continue
                for attempt in done:
                    index = attempts.pop(attempt)
                    error = attempt.exception()
                    if error is None:
                        self._on_probation.discard(index)
                        self._answer_times.append(time.monotonic() - started)
                        for loser in attempts.values():
                            if loser in late or loser in self._on_probation:
                                self._eject(loser)
                        return attempt.result()
                    if not isinstance(error, grpc.aio.AioRpcError):
                        raise error
                    last_error = error
                    if error.code() in REPLICA_GONE:
                        self._eject(index)
                        if waiting and time.monotonic() < ends_at:
                            self.failovers += 1
                            launch()
                    elif not attempts:
                        raise error
        finally:
            for attempt in attempts:
                attempt.cancel()
        assert last_error is not None
        raise last_error
