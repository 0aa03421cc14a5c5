"""The validation split that training carves from the shop's own events.

Two ways to hold data out, chosen by what the timestamps allow:
- **time**: the latest VALIDATION_SHARE of the purchases; each shopper who bought
  before the cut and bought something new after it is a validation shopper, with the
  new items as the ones to find. Right when shoppers come back over time.
- **random**: for each shopper with MIN_ITEMS distinct items or more, a random
  VALIDATION_SHARE of them (at least one) is held out with every event about them.
  Right when a time cut would find mostly new shoppers after it (timestamps bunched
  into one session per shopper, or none worth the name), where there is no history
  to recommend from.
- **last** (only when asked for): each shopper's latest new item, for shoppers with
  MIN_ITEMS distinct items or more: the next-item task, whatever the calendar.

`auto` takes the time cut when at least RETURNING_SHARE of the shoppers who buy
after it had bought before it, and at least MIN_SHOPPERS of them bought something
new; else the random holdout. Every model that is chosen or gated on validation
(pipelines/train.py) uses the same carve, so they are judged on the same shoppers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ml.candidates_offline import histories
from ml.snapshot import Snapshot

TIME = "time"
RANDOM = "random"
LAST = "last"
AUTO = "auto"
MODES = (AUTO, TIME, RANDOM, LAST)
VALIDATION_SHARE = 0.2
RETURNING_SHARE = 0.5
MIN_SHOPPERS = 50
MIN_ITEMS = 2


@dataclass(frozen=True)
class Held:
    """A validation shopper: their history before the hold-out (most recent first), how many
    purchases it holds, when they were last active, and the new items held out; after a time cut,
    also when each held item was first bought."""

    history: list[str]
    purchases: int
    last_active: float
    items: set[str]
    first_bought: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Carve:
    """The events models are fitted on, the validation shoppers, and how and why they were chosen."""

    fit: Snapshot
    held: dict[str, Held]
    protocol: str
    reason: str


def _histories(
    users: np.ndarray, items: np.ndarray, times: np.ndarray
) -> dict[str, tuple[list[str], int, float]]:
    """Per user: distinct items most recent first, purchase count, last time (inputs in time order)."""
    counts = dict(zip(*np.unique(users, return_counts=True), strict=True))
    last = dict(zip(users.tolist(), times.tolist(), strict=True))
    ordered = histories(users, items, times)
    return {user: (seen, int(counts[user]), float(last[user])) for user, seen in ordered.items()}


def _time_carve(snapshot: Snapshot, share: float) -> tuple[Snapshot, dict[str, Held], float]:
    """The carve at the (1 - share) quantile of purchase times, and the returning share after it."""
    times = snapshot.interaction_times()
    cutoff = float(np.quantile(times, 1 - share))
    earlier = snapshot.events_where(snapshot.timestamps < cutoff)
    users, items = earlier.interactions()
    known = _histories(users, items, earlier.interaction_times())
    later = snapshot.events_where(snapshot.timestamps >= cutoff)
    later_users, later_items = later.interactions()
    later_times = later.interaction_times()
    held: dict[str, Held] = {}
    for user, item, moment in zip(
        later_users.tolist(), later_items.tolist(), later_times.tolist(), strict=True
    ):
        found = known.get(user)
        if found is None or item in found[0]:
            continue
        entry = held.setdefault(user, Held(found[0], found[1], found[2], set()))
        entry.items.add(item)
        entry.first_bought[item] = min(moment, entry.first_bought.get(item, moment))
    after = set(later_users.tolist())
    returning = len(after & set(known)) / len(after) if after else 0.0
    return earlier, held, returning


def _random_pairs(snapshot: Snapshot, share: float, seed: int) -> set[tuple[str, str]]:
    """A random `share` (at least one) of the distinct items of each shopper with MIN_ITEMS or more."""
    users, items = snapshot.interactions()
    pairs = np.unique(np.stack([users.astype(str), items.astype(str)]), axis=1)
    rng = np.random.default_rng(seed)
    by_user: dict[str, list[str]] = {}
    for user, item in zip(pairs[0].tolist(), pairs[1].tolist(), strict=True):
        by_user.setdefault(user, []).append(item)
    held: set[tuple[str, str]] = set()
    for user, owned in by_user.items():
        if len(owned) >= MIN_ITEMS:
            count = max(1, round(share * len(owned)))
            held.update((user, item) for item in rng.choice(owned, size=count, replace=False).tolist())
    return held


def _last_pairs(snapshot: Snapshot) -> set[tuple[str, str]]:
    """Each shopper's most recently first-bought item, for shoppers with MIN_ITEMS items or more."""
    users, items = snapshot.interactions()
    order = np.argsort(snapshot.interaction_times(), kind="stable")
    first_seen: dict[str, dict[str, None]] = {}
    for user, item in zip(users[order].tolist(), items[order].tolist(), strict=True):
        first_seen.setdefault(user, {}).setdefault(item, None)
    return {(user, list(owned)[-1]) for user, owned in first_seen.items() if len(owned) >= MIN_ITEMS}


def _holdout_carve(snapshot: Snapshot, held_pairs: set[tuple[str, str]]) -> tuple[Snapshot, dict[str, Held]]:
    """The snapshot without any event of the held (user, item) pairs, and the held shoppers."""
    events = zip(snapshot.user_ids.tolist(), snapshot.item_ids.tolist(), strict=True)
    fit = snapshot.events_where(np.array([pair not in held_pairs for pair in events], dtype=bool))
    fit_users, fit_items = fit.interactions()
    known = _histories(fit_users, fit_items, fit.interaction_times())
    held: dict[str, Held] = {}
    for user, item in sorted(held_pairs):
        found = known.get(user)
        if found is not None:
            held.setdefault(user, Held(found[0], found[1], found[2], set())).items.add(item)
    return fit, held


def carve(snapshot: Snapshot, mode: str = AUTO, share: float = VALIDATION_SHARE, seed: int = 0) -> Carve:
    """The validation carve of `snapshot` (see the module's docstring); `mode` is one of MODES."""
    if mode not in MODES:
        raise ValueError(f"validation mode must be one of {', '.join(MODES)}; got {mode!r}")
    if len(snapshot.interaction_times()) == 0:
        return Carve(snapshot, {}, RANDOM, "no interactions to hold out")
    if mode == LAST:
        fit, held = _holdout_carve(snapshot, _last_pairs(snapshot))
        return Carve(
            fit, held, LAST, "asked for (RECSYS_VALIDATION=last): each shopper's latest new item is held out"
        )
    if mode in (AUTO, TIME):
        earlier, held, returning = _time_carve(snapshot, share)
        if mode == TIME:
            return Carve(earlier, held, TIME, "asked for (RECSYS_VALIDATION=time)")
        if returning >= RETURNING_SHARE and len(held) >= MIN_SHOPPERS:
            reason = (
                f"{returning:.0%} of the shoppers who buy in the latest {share:.0%} of purchases bought "
                f"before, and {len(held):,} of them bought something new: shoppers come back over time"
            )
            return Carve(earlier, held, TIME, reason)
        why = (
            f"only {returning:.0%} of the shoppers who buy in the latest {share:.0%} of purchases bought "
            f"before (needs {RETURNING_SHARE:.0%})"
            if returning < RETURNING_SHARE
            else f"only {len(held)} returning shoppers bought something new (needs {MIN_SHOPPERS})"
        )
    else:
        why = "asked for (RECSYS_VALIDATION=random)"
    fit, held = _holdout_carve(snapshot, _random_pairs(snapshot, share, seed))
    return Carve(fit, held, RANDOM, f"{why}: a random {share:.0%} of each shopper's items is held out")
