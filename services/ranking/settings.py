"""The ranking service's own settings section."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import EnvReader

# "learned": what training chose on validation, the published ranker or the fused candidate order
# (co-occurrence until training has run); "baseline": always the co-occurrence baseline.
RANKERS = ("learned", "baseline")


@dataclass(frozen=True)
class RankingSettings:
    ranker: str = "learned"


def read_ranking_settings(read: EnvReader) -> RankingSettings:
    return RankingSettings(ranker=read.choice("RECSYS_RANKER", "learned", RANKERS, str.lower))
