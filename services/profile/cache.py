"""Profiles kept in process, each under the shopper's event count when it was read.

A profile changes only when the shopper's events do, and every stored event raises
the count in the same transaction; so a cached profile whose count equals the
stored one is exact, whichever replica stored the events. Reading the count is
one primary-key lookup instead of the three ordered scans of the shopper's events.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

Value = TypeVar("Value")


class VersionedCache(Generic[Value]):
    """At most `size` values, the least recently used dropped first; a value is found only under
    the version it was stored with. Safe across threads."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"a cache holds zero or more entries, got {size}")
        self.size = size
        self._entries: OrderedDict[str, tuple[object, Value]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, version: object) -> Value | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None or found[0] != version:
                return None
            self._entries.move_to_end(key)
            return found[1]

    def put(self, key: str, version: object, value: Value) -> None:
        if not self.size:
            return
        with self._lock:
            self._entries[key] = (version, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
