"""The profile service's own settings section."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import EnvReader


@dataclass(frozen=True)
class ProfileSettings:
    half_life_days: float = 30.0  # of the portrait's category, brand and price affinities


def read_profile_settings(read: EnvReader) -> ProfileSettings:
    return ProfileSettings(half_life_days=read.number("RECSYS_PROFILE_HALF_LIFE_DAYS", 30.0, 0.01, 3650))
