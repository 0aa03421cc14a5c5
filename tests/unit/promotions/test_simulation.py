"""The simulator's shoppers respond to offers in the three ways uplift targeting is about, and the
simulated comparison keeps every plan within its budget."""

from __future__ import annotations

import numpy as np

from ml.promotions.allocate import LIKELY_BUYERS_BASELINE, UPLIFT
from tools.evaluation.promotions import Setup, _truth, run_seed, world


def test_some_buy_anyway_some_only_with_the_offer_and_some_never() -> None:
    w = world(0, Setup(shoppers=600))
    chances = np.array(list(_truth(w).values()))
    without, with_offer = chances[:, 0], chances[:, 1]
    assert ((without > 0.6) & (with_offer - without < 0.05)).any()  # buy anyway
    assert ((without < 0.2) & (with_offer - without > 0.15)).any()  # moved by the offer
    assert (with_offer < 0.05).any()  # never


def test_the_uplift_plan_beats_most_likely_buyers_within_the_budget() -> None:
    setup = Setup(shoppers=3000, trial_budget=6000.0, budget=600.0)
    result = run_seed(0, setup)
    assert all(spent <= setup.budget + 1e-6 for spent in result.spent.values())
    assert result.values[UPLIFT].sum() > result.values[LIKELY_BUYERS_BASELINE].sum()
