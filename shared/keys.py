"""The gateway's API keys: who may call which method, and how often.

A key grants scopes and has a rate limit (a token bucket per key). Keys come
from RECSYS_API_KEYS (comma-separated: every scope, the default rate) and from
a keys file, RECSYS_API_KEYS_FILE, or else `<home>/api-key` when RECSYS_API_KEYS
is not set. The file holds one key per line, optionally followed by its scopes
and rate:

    0f3c...e9  scopes=recommend,feedback  rate=200
    77ab...01  scopes=push  rate=5
    5d1e...c2                         # every scope, RECSYS_API_KEY_RATE per second

A changed file is read again within a second, without a restart (a Kubernetes
Secret mounted as a file updates in place). No key is shipped: the local
default file is generated at random on first start.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)
SCOPES = ("recommend", "feedback", "push", "admin")
# The scope each gateway method needs; "admin" grants every scope.
METHOD_SCOPES = {
    "Recommend": "recommend",
    "RecordFeedback": "feedback",
    "GeneratePush": "push",
    "PlanPushCampaign": "push",
    "UpdatePushSettings": "push",
    "PlanPromotions": "push",  # offers reach shoppers as pushes do; ExportPromotionDecisions is admin
}
MIN_KEY_LENGTH = 16
RELOAD_EVERY_S = 1.0
# Missing or wrong keys one caller address may present in FAILED_WINDOW_S before its keyless calls
# are refused outright; addresses tracked at most (the oldest forgotten first).
FAILED_LIMIT = 20
FAILED_WINDOW_S = 10.0
FAILED_TRACKED = 10_000


class KeyFileError(ValueError):
    """A keys file line that cannot be read; the message names the line."""


@dataclass(frozen=True)
class ApiKey:
    secret: str
    scopes: frozenset[str]
    rate: float  # calls per second; 0: no limit

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def parse_keys(text: str, default_rate: float) -> list[ApiKey]:
    """The keys of a keys file (module docstring); raises KeyFileError naming a bad line."""
    found = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        secret, *options = line.split()
        scopes, rate = frozenset(SCOPES), default_rate
        for option in options:
            name, _, value = option.partition("=")
            if name == "scopes" and value:
                scopes = frozenset(value.split(","))
                unknown = sorted(scopes - set(SCOPES))
                if unknown:
                    raise KeyFileError(f"line {number}: unknown scopes {unknown}; known: {', '.join(SCOPES)}")
            elif name == "rate":
                try:
                    rate = float(value)
                except ValueError:
                    rate = -1.0
                if not rate >= 0:
                    raise KeyFileError(f"line {number}: rate must be a number of calls per second >= 0")
            else:
                raise KeyFileError(f"line {number}: {option!r} is neither scopes=... nor rate=...")
        if len(secret) < MIN_KEY_LENGTH:
            raise KeyFileError(f"line {number}: a key must have at least {MIN_KEY_LENGTH} characters")
        found.append(ApiKey(secret, scopes, rate))
    return found


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class KeyTable:
    """The keys in force: the fixed ones and those of the keys file, read again when it changes."""

    fixed: list[ApiKey]
    file: Path | None
    default_rate: float
    clock: Callable[[], float] = time.monotonic
    _from_file: list[ApiKey] = field(default_factory=list)
    _stamp: float | None = None
    _checked: float = float("-inf")
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        fixed: Iterable[str],
        file: Path | None,
        default_rate: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> KeyTable:
        table = cls([ApiKey(k, frozenset(SCOPES), default_rate) for k in fixed], file, default_rate, clock)
        table._reload(force=True)
        return table

    def _reload(self, force: bool = False) -> None:
        now = self.clock()
        if self.file is None or (not force and now - self._checked < RELOAD_EVERY_S):
            return
        self._checked = now
        try:
            stamp = self.file.stat().st_mtime_ns
        except FileNotFoundError:
            self._from_file, self._stamp = [], None
            return
        if stamp != self._stamp:
            # a bad file raises at start; later, the keys in force stay until it is mended
            self._stamp = stamp
            self._from_file = parse_keys(self.file.read_text(), self.default_rate)

    def in_force(self) -> list[ApiKey]:
        try:
            self._reload()
        except (KeyFileError, OSError) as error:
            log.warning("API keys file %s not read again, the keys in force stay: %s", self.file, error)
        return [*self.fixed, *self._from_file]

    def find(self, presented: str) -> ApiKey | None:
        """The key presented, compared in constant time with every key in force."""
        candidate = presented.encode()
        found = None
        for key in self.in_force():
            if hmac.compare_digest(candidate, key.secret.encode()):
                found = key
        return found

    def take(self, key: ApiKey) -> float:
        """Spends one call of the key's rate: 0 when allowed, else the seconds until one is."""
        if key.rate <= 0:
            return 0.0
        now = self.clock()
        capacity = max(key.rate, 1.0)  # a second's worth of calls may come at once
        bucket = self._buckets.setdefault(key.secret, _Bucket(capacity, now))
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * key.rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / key.rate


@dataclass
class FailedAttempts:
    """Calls with a missing or wrong key, per caller address, over a sliding window. Past `limit`,
    the address's further keyless calls wait out the window (RESOURCE_EXHAUSTED with the seconds
    left) instead of learning whether a guess was right. Calls with a valid key are never held back:
    behind a load balancer every caller may share one address."""

    limit: int = FAILED_LIMIT
    window_s: float = FAILED_WINDOW_S
    tracked: int = FAILED_TRACKED
    clock: Callable[[], float] = time.monotonic
    _seen: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def record(self, address: str) -> float:
        """Counts one failed call from `address`: 0 while under the limit, else the seconds until
        the window lets the address try again."""
        now = self.clock()
        times = self._seen.pop(address, None) or deque()
        while times and now - times[0] >= self.window_s:
            times.popleft()
        times.append(now)
        self._seen[address] = times
        while len(self._seen) > self.tracked:
            self._seen.popitem(last=False)
        if len(times) <= self.limit:
            return 0.0
        return self.window_s - (now - times[-self.limit - 1])
