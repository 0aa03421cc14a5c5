"""What a new allocation would earn, estimated from the logged randomized plans.

Among the logged pairs the new allocation would send, the holdout draw splits them at random
into sent and held out with a known propensity p. Weighting each outcome by the inverse of its
arm's probability (sent / p, held out / (1 - p)) gives an unbiased estimate of the incremental
margin per sent offer on those pairs, as the policy service's inverse-propensity estimate does
for slates; the bootstrap over logged pairs gives its interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LoggedMargin:
    """One logged pair's realized margin in the offer's window, and how it was assigned."""

    sent: bool
    propensity: float
    margin: float  # the sale's margin if the shopper bought, less the discount taken and the offer's cost


@dataclass(frozen=True)
class Estimate:
    value: float  # incremental margin per sent offer
    low: float
    high: float
    pairs: int


def incremental_margin_per_offer(
    logs: list[LoggedMargin], chooses: np.ndarray, draws: int = 1000, seed: int = 0
) -> Estimate:
    """The estimate over the logged pairs where `chooses` is True (the new allocation sends them)."""
    chosen = [row for row, keep in zip(logs, chooses, strict=True) if keep]
    if not chosen:
        return Estimate(0.0, 0.0, 0.0, 0)
    sent = np.array([row.sent for row in chosen], dtype=float)
    p = np.array([row.propensity for row in chosen])
    margin = np.array([row.margin for row in chosen])
    terms = sent / p * margin - (1.0 - sent) / (1.0 - p) * margin
    rng = np.random.default_rng(seed)
    boot = terms[rng.integers(len(terms), size=(draws, len(terms)))].mean(axis=1)
    return Estimate(float(terms.mean()), *np.percentile(boot, [2.5, 97.5]).tolist(), pairs=len(terms))
