"""When a trained ranker may be published (no TensorFlow here: settings read it at start-up)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.metrics import paired_gain_interval


@dataclass(frozen=True)
class PublishGate:
    """When a trained ranker may be published: enough lists to learn from and to judge it on,
    and a validation gain over its own candidate order whose confidence interval lies above 0."""

    min_training_lists: int = 200
    min_validation_lists: int = 50
    bootstrap_samples: int = 2000
    confidence: float = 0.95
    require_gain: bool = True  # False: judge and report, but never refuse for the gain (evaluation)
    # Retrain without the feature groups that surely hurt on validation (train.harmful_groups).
    drop_harmful_groups: bool = True


class RankerRefused(ValueError):
    """The ranker was not trained, or is not fit to publish; the message says why. `keep(folder)`,
    when set, writes the refused network and its validation figures (to store, not to serve)."""

    def __init__(self, message: str, keep: Callable[[Path], None] | None = None) -> None:
        super().__init__(message)
        self.keep = keep


def gain_interval(
    learned: np.ndarray, baseline: np.ndarray, gate: PublishGate, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): the paired gain of `learned` over `baseline` per list, with a percentile
    bootstrap interval at `gate.confidence`."""
    return paired_gain_interval(learned, baseline, gate.confidence, gate.bootstrap_samples, seed)
