"""The plan's rules hold whatever the candidates: budget, caps, capacities, and the holdout."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.promotions.allocate import (
    LIKELY_BUYERS_BASELINE,
    POLICIES,
    UPLIFT,
    Candidate,
    Rules,
    allocate,
    held_out,
    spent,
)
from ml.promotions.offers import ACTIVITY, COUPON, Offer

OFFERS = [
    Offer("C10", COUPON, "Home>Kitchen", "10% off Kitchen", percent_off=0.1, max_discount=2.0),
    Offer("C30", COUPON, "Garden>Tools", "30% off Tools", percent_off=0.3, max_discount=5.0),
    Offer("A1", ACTIVITY, "Kids>Crafts", "Crafts workshop", cost=1.5, capacity=3),
]

chance = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
candidates = st.lists(
    st.builds(
        Candidate,
        user_id=st.sampled_from([f"U{n}" for n in range(12)]),
        offer=st.sampled_from(OFFERS),
        basket_price=st.floats(min_value=0.5, max_value=50.0, allow_nan=False),
        without=chance,
        with_offer=chance,
    ),
    max_size=60,
)
rules = st.builds(
    Rules,
    budget=st.floats(min_value=0.0, max_value=60.0, allow_nan=False),
    per_shopper_cap=st.integers(min_value=1, max_value=3),
    holdout_share=st.floats(min_value=0.0, max_value=0.9),
    margin_rate=st.floats(min_value=0.05, max_value=0.8),
    explore_share=st.floats(min_value=0.0, max_value=1.0),
)


@settings(max_examples=300, deadline=None)
@given(candidates, rules, st.sampled_from(POLICIES), st.text(min_size=1, max_size=8))
def test_no_plan_exceeds_its_budget_a_cap_or_a_capacity(pool, plan_rules, policy, plan_id) -> None:
    decisions = allocate(plan_id, policy, pool, plan_rules)
    assert spent(decisions) <= plan_rules.budget + 1e-6
    per_shopper = Counter(d.candidate.user_id for d in decisions)
    assert all(count <= plan_rules.per_shopper_cap for count in per_shopper.values())
    sent_per_offer = Counter(d.candidate.offer.offer_id for d in decisions if d.sent)
    assert all(sent_per_offer[o.offer_id] <= o.capacity for o in OFFERS if o.capacity)
    assert len({(d.candidate.user_id, d.candidate.offer.offer_id) for d in decisions}) == len(decisions)
    for d in decisions:
        assert d.sent != held_out(plan_id, d.candidate.user_id, plan_rules.holdout_share)
        assert d.propensity == pytest.approx(1 - plan_rules.holdout_share)
    if policy == UPLIFT and plan_rules.explore_share == 0:
        assert all(d.expected_incremental_margin > 0 for d in decisions)


def test_uplift_sends_to_the_shoppers_the_offer_moves_and_likely_buyers_to_those_who_buy_anyway() -> None:
    coupon = OFFERS[1]
    sure_thing = Candidate("U-sure", coupon, 20.0, without=0.9, with_offer=0.92)
    persuadable = Candidate("U-moved", coupon, 20.0, without=0.1, with_offer=0.5)
    lost_cause = Candidate("U-never", coupon, 20.0, without=0.01, with_offer=0.02)
    pool = [sure_thing, persuadable, lost_cause]
    one_coupon = Rules(budget=coupon.max_discount, holdout_share=0.0, margin_rate=0.4, explore_share=0.0)
    [chosen] = allocate("p", UPLIFT, pool, one_coupon)
    assert chosen.candidate.user_id == "U-moved" and chosen.expected_incremental_margin > 0
    [mistake] = allocate("p", LIKELY_BUYERS_BASELINE, pool, one_coupon)
    assert mistake.candidate.user_id == "U-sure" and mistake.expected_incremental_margin < 0


def test_the_holdout_is_a_fixed_draw_of_about_its_share() -> None:
    drawn = [held_out("plan-1", f"U{n}", 0.2) for n in range(5000)]
    assert drawn == [held_out("plan-1", f"U{n}", 0.2) for n in range(5000)]
    assert 0.18 < sum(drawn) / len(drawn) < 0.22


@pytest.mark.parametrize(
    ("field", "value"),
    [("budget", -1.0), ("budget", float("nan")), ("per_shopper_cap", 0), ("holdout_share", 1.0)],
)
def test_rules_refuse_impossible_settings(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        Rules(**{"budget": 10.0, field: value})
