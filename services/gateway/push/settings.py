"""Validation of shoppers' push settings: one clear INVALID_ARGUMENT naming the first bad entry."""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from recsys.gateway.v1 import gateway_pb2
from services.gateway.push.templates import LANGUAGES, language_of
from shared.errors import require
from shared.limits import MAX_ID_LENGTH

MAX_SETTINGS = 10_000

# IANA zone names are at most about 30 characters (America/Argentina/ComodRivadavia).
MAX_ZONE_LENGTH = 64


def _known_zone(name: str) -> bool:
    if len(name) > MAX_ZONE_LENGTH:  # the file system refuses long names with OSError
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def validate_settings(entries: Sequence[gateway_pb2.PushSettings]) -> list[gateway_pb2.PushSettings]:
    """The entries with their languages normalized ("en-GB" to "en", "zh-Hans" to "zh-CN")."""
    require(0 < len(entries) <= MAX_SETTINGS, f"settings must hold 1 to {MAX_SETTINGS} entries")
    normalized = []
    for index, entry in enumerate(entries):
        where = f"settings[{index}]"
        require(
            len(entry.user_id.strip()) > 0 and len(entry.user_id) <= MAX_ID_LENGTH,
            f"{where}.user_id must hold 1 to {MAX_ID_LENGTH} characters",
        )
        language = language_of(entry.language) if entry.language else "en"
        require(
            language is not None,
            f"{where}.language {entry.language!r} is not supported: use one of {', '.join(LANGUAGES)}",
        )
        require(
            not entry.time_zone or _known_zone(entry.time_zone),
            f"{where}.time_zone {entry.time_zone!r} is not an IANA time zone (e.g. Asia/Shanghai)",
        )
        fixed = gateway_pb2.PushSettings()
        fixed.CopyFrom(entry)
        fixed.language = language  # type: ignore[assignment]
        normalized.append(fixed)
    return normalized
