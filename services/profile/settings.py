"""The profile service's own settings section."""

from __future__ import annotations

from dataclasses import dataclass

from recsys.common.v1 import common_pb2
from shared.config import EnvReader

# Event types a shopper answers an item with once they have it: never recommended again.
CONSUMPTION_TYPES = {
    "purchase": common_pb2.EVENT_TYPE_PURCHASE,
    "review": common_pb2.EVENT_TYPE_REVIEW,
    "add_to_cart": common_pb2.EVENT_TYPE_ADD_TO_CART,
    "like": common_pb2.EVENT_TYPE_LIKE,
    "share": common_pb2.EVENT_TYPE_SHARE,
    "click": common_pb2.EVENT_TYPE_CLICK,
    "view": common_pb2.EVENT_TYPE_VIEW,
}


@dataclass(frozen=True)
class ProfileSettings:
    half_life_days: float = 30.0  # of the portrait's category, brand and price affinities
    # Event types that mark an item as consumed; purchases always do.
    consumed_types: tuple[int, ...] = (common_pb2.EVENT_TYPE_PURCHASE, common_pb2.EVENT_TYPE_REVIEW)
    # Profiles kept in process, each exact while the shopper's event count is unchanged (0: none).
    cached_profiles: int = 10_000


def read_profile_settings(read: EnvReader) -> ProfileSettings:
    names = read.names("RECSYS_CONSUMED_EVENT_TYPES") or ("purchase", "review")
    unknown = sorted(set(names) - set(CONSUMPTION_TYPES))
    if unknown:
        read.problems.append(
            f"RECSYS_CONSUMED_EVENT_TYPES names unknown event types {unknown}; "
            f"known: {', '.join(CONSUMPTION_TYPES)}"
        )
    return ProfileSettings(
        half_life_days=read.number("RECSYS_PROFILE_HALF_LIFE_DAYS", 30.0, 0.01, 3650),
        consumed_types=tuple(CONSUMPTION_TYPES[name] for name in names if name in CONSUMPTION_TYPES),
        cached_profiles=int(read.number("RECSYS_PROFILE_CACHED_PROFILES", 10_000, 0, 10_000_000)),
    )
