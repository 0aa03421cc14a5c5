"""The uplift model learns who is moved from randomized logs, and says when the logs are too few."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from ml.promotions.features import FEATURES
from ml.promotions.uplift import LoggedOutcome, NotEnoughLogs, UpliftModel

SENSITIVE = FEATURES.index("log_typical_price")


def _logs(rows: int, seed: int = 0) -> tuple[list[LoggedOutcome], np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES)))
    x[:, 0] = 1.0
    base = 1 / (1 + np.exp(-(-1.0 + 0.8 * x[:, 1])))
    uplift = 0.25 / (1 + np.exp(3 * x[:, SENSITIVE]))  # the cheaper a shopper buys, the more they are moved
    sent = rng.random(rows) < 0.5
    bought = rng.random(rows) < base + sent * uplift
    return [LoggedOutcome(x[n], bool(sent[n]), 0.5, bool(bought[n])) for n in range(rows)], uplift


def test_predicted_uplift_follows_the_true_one(tmp_path: Path) -> None:
    logs, uplift = _logs(6000)
    model = UpliftModel.fit(logs)
    without, with_offer = model.chances(np.stack([row.features for row in logs]))
    assert spearmanr(with_offer - without, uplift)[0] > 0.6
    model.save(tmp_path)
    again = UpliftModel.load(tmp_path)
    assert np.allclose(again.chances(logs[0].features), model.chances(logs[0].features))


def test_too_few_logs_are_refused_with_counts() -> None:
    logs, _ = _logs(150)
    with pytest.raises(NotEnoughLogs, match="outcomes with"):
        UpliftModel.fit(logs)
