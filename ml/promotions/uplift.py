"""Uplift from randomized logs: the chance to buy without the offer (p0) and with it (p1).

Why both chances rather than a transformed outcome, which estimates only their difference: the
discount is paid by every recipient who buys, including those who would have bought anyway, so
the value of sending an offer is (p1 - p0) x margin - p1 x discount, and p1 enters on its own.
One L2-regularized logistic regression over FEATURES and FEATURES x sent gives both (a two-model
learner whose models share what both arms show): the interaction terms, the uplift, carry a
heavier penalty, because the allocation picks the pairs with the largest predicted uplift and so
favours exactly the estimates that noise inflated. Each logged row is weighted by the inverse of
the probability it had of landing in its arm, so logs of plans with different holdout shares
combine without bias.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from ml.promotions.features import FEATURES

MODEL = "promotion_uplift"
# Below this many logged rows (or purchases) in either arm, the logs cannot tell uplift from noise:
# the plan stays a randomized trial (the conservative prior: no offer is assumed to move anyone).
MIN_ROWS_PER_ARM = 200
MIN_PURCHASES_PER_ARM = 20
L2 = 1.0
# The difference between the arms is held to more evidence than what they share (see above).
DIFFERENCE_L2 = 10.0


@dataclass(frozen=True)
class LoggedOutcome:
    """One logged (shopper, offer) decision and what followed within the offer's window."""

    features: np.ndarray
    sent: bool
    propensity: float  # the probability the plan had of sending it (the holdout draw's complement)
    bought: bool


class NotEnoughLogs(ValueError):
    """Too few randomized outcomes to learn uplift from; the message says how many there are."""


def _fit_logistic(x: np.ndarray, y: np.ndarray, weights: np.ndarray, penalties: np.ndarray) -> np.ndarray:
    scale = weights / weights.mean()

    def loss(beta: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ beta
        p = 1.0 / (1.0 + np.exp(-z))
        value = -np.sum(scale * (y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12)))
        gradient = x.T @ (scale * (p - y)) + penalties * beta
        return value + 0.5 * float(np.sum(penalties * beta**2)), gradient

    result = minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B")
    return result.x


@dataclass(frozen=True)
class UpliftModel:
    """Chances to buy in an offer's window, without (p0) and with (p1) the offer."""

    mean: np.ndarray
    std: np.ndarray
    control: np.ndarray
    treated: np.ndarray
    rows: tuple[int, int]  # (control, treated) rows it learned from

    @classmethod
    def fit(cls, logs: list[LoggedOutcome]) -> UpliftModel:
        sent = np.array([row.sent for row in logs], dtype=bool)
        bought = np.array([row.bought for row in logs], dtype=float)
        for arm, name in ((~sent, "held-out"), (sent, "sent")):
            if arm.sum() < MIN_ROWS_PER_ARM or bought[arm].sum() < MIN_PURCHASES_PER_ARM:
                raise NotEnoughLogs(
                    f"{int(arm.sum())} {name} outcomes with {int(bought[arm].sum())} purchases; uplift needs "
                    f"{MIN_ROWS_PER_ARM} and {MIN_PURCHASES_PER_ARM} in each arm"
                )
        x = np.stack([row.features for row in logs])
        mean, std = x.mean(axis=0), x.std(axis=0)
        mean[0], std[0] = 0.0, 1.0
        std[std == 0] = 1.0
        z = (x - mean) / std
        propensity = np.clip(np.array([row.propensity for row in logs]), 0.01, 0.99)
        weights = np.where(sent, 1.0 / propensity, 1.0 / (1.0 - propensity))
        both = np.hstack([z, z * sent[:, None]])
        width = z.shape[1]
        penalties = np.concatenate([np.full(width, L2), np.full(width, L2 * DIFFERENCE_L2)])
        penalties[0] = 0.0
        beta = _fit_logistic(both, bought, weights, penalties)
        return cls(
            mean=mean,
            std=std,
            control=beta[:width],
            treated=beta[:width] + beta[width:],
            rows=(int((~sent).sum()), int(sent.sum())),
        )

    def chances(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p0, p1) for each row of `x` (rows in the order of FEATURES)."""
        z = (np.atleast_2d(x) - self.mean) / self.std
        return 1.0 / (1.0 + np.exp(-(z @ self.control))), 1.0 / (1.0 + np.exp(-(z @ self.treated)))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(
            folder / "uplift.npz", mean=self.mean, std=self.std, control=self.control, treated=self.treated
        )
        (folder / "uplift.json").write_text(json.dumps({"features": list(FEATURES), "rows": list(self.rows)}))

    @classmethod
    def load(cls, folder: Path) -> UpliftModel:
        meta = json.loads((folder / "uplift.json").read_text())
        if tuple(meta["features"]) != FEATURES:
            raise ValueError(f"{folder}: the model was fitted on other features than this code computes")
        arrays = np.load(folder / "uplift.npz")
        return cls(
            mean=arrays["mean"],
            std=arrays["std"],
            control=arrays["control"],
            treated=arrays["treated"],
            rows=(int(meta["rows"][0]), int(meta["rows"][1])),
        )
