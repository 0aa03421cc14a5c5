"""The generator's lists for the histories asked lately, reused while the model server still serves
the version that generated them.

A Predict call costs the model server about as much CPU as the rest of a Recommend's retrieval,
and what it answers depends only on the shopper's latest items and the model's version. A shopper
asked for again before their history changed (another widget on the same page, a feed refreshed, a
push planned after a visit) is given the list generated for that history, without a call.

Which version is served is asked of the model server (`GetModelStatus`) at most every POLL_S,
in the background, while requests come. A list is reused only while that version is the one that
generated it and the answer is at most TRUST_S old: within about POLL_S of the model server
switching to a new version every shopper's list comes from the new one, and within TRUST_S of
the model server going away the generator is asked (and found missing) again, as without reuse.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from shared import metrics

log = logging.getLogger(__name__)

POLL_S = 1.0
TRUST_S = 5.0
# How long one status call may take.
STATUS_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Generated:
    """One Predict answer: the generator's items best first, their scores, the list's realism. Kept
    compact (about 4.5 KB for 200 items): the ids interned, so that the lists kept share one string
    per item, and the scores in one array."""

    version: int
    item_ids: tuple[str, ...]
    scores: np.ndarray
    realism: float

    @classmethod
    def of(cls, version: int, item_ids: list[str], scores: list[float], realism: float) -> Generated:
        interned = tuple(sys.intern(i) for i in item_ids)
        return cls(version, interned, np.array(scores, dtype=np.float64), realism)


def history_key(history: tuple[str, ...]) -> bytes:
    """A 16-byte digest of a history: the key its list is kept under (the history itself would
    hold up to 200 strings per shopper). Each id enters with its length, so that no two histories
    share a key by how their ids split (an id may hold any character)."""
    digest = hashlib.blake2b(digest_size=16)
    for item_id in history:
        encoded = item_id.encode()
        digest.update(len(encoded).to_bytes(4, "little"))
        digest.update(encoded)
    return digest.digest()


class ServedVersion:
    """The version the model server serves, as it said at most TRUST_S ago (None: not known). Used
    from one event loop; a request never waits for the model server's answer."""

    def __init__(
        self,
        read: Callable[[], Awaitable[int | None]],
        poll_s: float = POLL_S,
        trust_s: float = TRUST_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.read = read
        self.poll_s = poll_s
        self.trust_s = trust_s
        self.clock = clock
        self._version: int | None = None
        self._read_at = -float("inf")
        self._asked_at = -float("inf")
        self._reading: asyncio.Task[None] | None = None

    def current(self) -> int | None:
        """The version last read, if read within `trust_s`; asks again in the background when due."""
        now = self.clock()
        if now - self._asked_at >= self.poll_s and (self._reading is None or self._reading.done()):
            self._asked_at = now
            self._reading = asyncio.create_task(self._read(now))
            self._reading.add_done_callback(_log_failure)
        return self._version if now - self._read_at < self.trust_s else None

    async def _read(self, asked_at: float) -> None:
        self._version = await asyncio.wait_for(self.read(), STATUS_TIMEOUT_S)
        self._read_at = asked_at


class GeneratedLists:
    """At most `capacity` lists by history, the least recently used leaving first. Used from one
    event loop."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._lists: OrderedDict[bytes, Generated] = OrderedDict()

    def __len__(self) -> int:
        return len(self._lists)

    def get(self, history: tuple[str, ...], served: int | None) -> Generated | None:
        """The list generated for `history` by version `served`, if kept (None: it must be asked)."""
        key = history_key(history)
        found = self._lists.get(key) if served is not None else None
        if found is None or found.version != served:
            metrics.GENERATED_LISTS.labels("asked").inc()
            return None
        self._lists.move_to_end(key)
        metrics.GENERATED_LISTS.labels("reused").inc()
        return found

    def put(self, history: tuple[str, ...], generated: Generated) -> None:
        key = history_key(history)
        self._lists[key] = generated
        self._lists.move_to_end(key)
        while len(self._lists) > self.capacity:
            self._lists.popitem(last=False)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.debug("could not read the generator's served version: %r", error)
