"""The candidates service's own settings section."""

from __future__ import annotations

from dataclasses import dataclass, field

from ml.retrieval import Fusion, read_fusion
from shared.config import EnvReader


@dataclass(frozen=True)
class CandidatesSettings:
    fusion: Fusion = field(default_factory=Fusion)
    model_server_deadline_s: float = 0.3  # of each Predict call to TF Serving


def read_candidates_settings(read: EnvReader) -> CandidatesSettings:
    return CandidatesSettings(
        fusion=read_fusion(read),
        model_server_deadline_s=read.number("RECSYS_MODELSERVER_DEADLINE_MS", 300, 1, 60_000) / 1000,
    )
