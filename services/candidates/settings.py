"""The candidates service's own settings section."""

from __future__ import annotations

from dataclasses import dataclass

from ml.retrieval import Fusion, read_fusion
from shared.config import EnvReader

FUSION_VARIABLES = ("RECSYS_CANDIDATES_WEIGHTS", "RECSYS_CANDIDATES_QUOTAS")


@dataclass(frozen=True)
class CandidatesSettings:
    # The operator's fusion when RECSYS_CANDIDATES_WEIGHTS or _QUOTAS is set; None: the one training
    # chose on validation (the `serving` model), the defaults until there is one.
    fusion: Fusion | None = None
    model_server_deadline_s: float = 0.3  # of each Predict call to TF Serving
    # Histories whose generated list is kept for reuse while its model version is served (0: none).
    generated_lists: int = 10_000


def read_candidates_settings(read: EnvReader) -> CandidatesSettings:
    fixed = any(read.env.get(name, "").strip() for name in FUSION_VARIABLES)
    return CandidatesSettings(
        fusion=read_fusion(read) if fixed else None,
        model_server_deadline_s=read.number("RECSYS_MODELSERVER_DEADLINE_MS", 300, 1, 60_000) / 1000,
        generated_lists=int(read.number("RECSYS_CANDIDATES_GENERATED_LISTS", 10_000, 0, 10_000_000)),
    )
