"""Choosing shopper x offer pairs within a budget, with a randomized holdout.

The walk goes over candidate pairs in the policy's order and sends each one that still fits: the
budget counts every sent offer's committed cost (a coupon's maximum discount, an activity's cost
per invitation), so it holds even if every coupon is redeemed; each shopper receives at most
`per_shopper_cap` offers and each activity at most its capacity. A share of shoppers, drawn from
the plan id and the shopper id alone, is held out: the pairs the walk reaches for them are logged,
not sent. Every reached pair therefore had the same known chance of being sent (the propensity),
and the logs are a randomized trial among the pairs the policy chooses, which is what the uplift
model learns from.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ml.promotions.offers import ACTIVITY, Offer

UPLIFT = "uplift"
TRIAL = "trial"  # no model yet: pairs in random order, nothing assumed about who is moved
# Baselines for comparison, named as such: random pairs, and the usual mistake of sending offers
# to the shoppers most likely to buy.
RANDOM_BASELINE = "random-baseline"
LIKELY_BUYERS_BASELINE = "likely-buyers-baseline"
POLICIES = (UPLIFT, TRIAL, RANDOM_BASELINE, LIKELY_BUYERS_BASELINE)


def incremental_margin(
    without: float, with_offer: float, margin: float, discount: float, cost: float
) -> float:
    """Expected margin of sending an offer, against not sending it: the extra sales' `margin`, less
    the `discount` every redeeming buyer takes (those who would have bought anyway too), less the
    invitation's `cost`."""
    return (with_offer - without) * margin - with_offer * discount - cost


@dataclass(frozen=True)
class Candidate:
    """A pair the plan may send, with the model's chances (p0 without, p1 with the offer)."""

    user_id: str
    offer: Offer
    basket_price: float
    without: float
    with_offer: float

    def expected_incremental_margin(self, margin_rate: float) -> float:
        return incremental_margin(
            self.without,
            self.with_offer,
            margin_rate * self.basket_price,
            self.offer.discount(self.basket_price),
            self.offer.cost if self.offer.kind == ACTIVITY else 0.0,
        )


@dataclass(frozen=True)
class Decision:
    candidate: Candidate
    sent: bool  # False: the shopper is in the holdout; logged, not sent
    propensity: float  # the chance the pair had of being sent once the walk reached it
    expected_incremental_margin: float


@dataclass(frozen=True)
class Rules:
    budget: float
    per_shopper_cap: int = 1
    holdout_share: float = 0.1
    margin_rate: float = 0.3
    explore_share: float = 0.1  # uplift plans: this share of the budget goes to random pairs

    def __post_init__(self) -> None:
        if not (self.budget >= 0 and np.isfinite(self.budget)):
            raise ValueError(f"the budget must be a finite amount >= 0, not {self.budget}")
        if self.per_shopper_cap < 1:
            raise ValueError(f"per_shopper_cap must be at least 1, not {self.per_shopper_cap}")
        if not 0 <= self.holdout_share < 1:
            raise ValueError(f"holdout_share must be in [0, 1), not {self.holdout_share}")
        if not 0 <= self.explore_share <= 1:
            raise ValueError(f"explore_share must be in [0, 1], not {self.explore_share}")


def held_out(plan_id: str, user_id: str, share: float) -> bool:
    """The holdout draw: a fixed function of the plan and the shopper, so a resumed plan repeats it."""
    digest = hashlib.sha256(f"{plan_id}\0{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def _order(
    policy: str, candidates: list[Candidate], rules: Rules, rng: np.random.Generator
) -> list[Candidate]:
    if policy in (TRIAL, RANDOM_BASELINE):
        return [candidates[i] for i in rng.permutation(len(candidates))]
    if policy == LIKELY_BUYERS_BASELINE:
        return sorted(candidates, key=lambda c: -c.with_offer)
    if policy != UPLIFT:
        raise ValueError(f"unknown allocation policy {policy!r}; choose one of {', '.join(POLICIES)}")
    worth = [c for c in candidates if c.expected_incremental_margin(rules.margin_rate) > 0]
    return sorted(
        worth,
        key=lambda c: -c.expected_incremental_margin(rules.margin_rate) / max(c.offer.committed_cost, 1e-9),
    )


def allocate(
    plan_id: str,
    policy: str,
    candidates: Iterable[Candidate],
    rules: Rules,
    seed: int = 0,
) -> list[Decision]:
    """The plan's decisions, in the order they were taken."""
    pool = list(candidates)
    rng = np.random.default_rng([seed, int.from_bytes(hashlib.sha256(plan_id.encode()).digest()[:4], "big")])
    decisions: list[Decision] = []
    spent = [0.0]
    per_shopper: Counter[str] = Counter()
    per_offer: Counter[str] = Counter()
    taken: set[tuple[str, str]] = set()

    def walk(order: list[Candidate], budget: float) -> None:
        for candidate in order:
            key = (candidate.user_id, candidate.offer.offer_id)
            cost = candidate.offer.committed_cost
            capacity = candidate.offer.capacity
            if key in taken or per_shopper[candidate.user_id] >= rules.per_shopper_cap:
                continue
            if capacity and per_offer[candidate.offer.offer_id] >= capacity:
                continue
            holdout = held_out(plan_id, candidate.user_id, rules.holdout_share)
            if not holdout and spent[0] + cost > budget + 1e-9:
                continue
            taken.add(key)
            per_shopper[candidate.user_id] += 1
            if not holdout:
                spent[0] += cost
                per_offer[candidate.offer.offer_id] += 1
            decisions.append(
                Decision(
                    candidate,
                    sent=not holdout,
                    propensity=1.0 - rules.holdout_share,
                    expected_incremental_margin=candidate.expected_incremental_margin(rules.margin_rate),
                )
            )

    if policy == UPLIFT and rules.explore_share > 0:
        walk(_order(TRIAL, pool, rules, rng), rules.budget * rules.explore_share)
    walk(_order(policy, pool, rules, rng), rules.budget)
    return decisions


def spent(decisions: Iterable[Decision]) -> float:
    """The committed cost of the sent offers."""
    return sum(d.candidate.offer.committed_cost for d in decisions if d.sent)
