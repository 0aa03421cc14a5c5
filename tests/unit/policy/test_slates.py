"""Slate rules and their propensities, without a server."""

import numpy as np
import pytest

from services.policy.slates import (
    BANDIT,
    EPSILON_GREEDY,
    GREEDY,
    SlateRule,
    explored_loss,
    marginals,
    sample_slates,
    served_propensities,
    within_budget,
)

SCORES = np.array([2.0, 1.5, 1.4, 0.3, 0.2, -1.0, -2.0])
CATEGORIES = np.array([0, 0, 1, 1, 2, 2, 3])
RULES = [
    SlateRule(GREEDY),
    SlateRule(EPSILON_GREEDY, epsilon=0.3),
    SlateRule(BANDIT, temperature=0.5, diversity=0.5),
    SlateRule(BANDIT, temperature=0.5, diversity=0.5, category_cap=1),
]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.kind}-cap{r.category_cap}")
def test_marginals_sum_to_one_per_position_and_at_most_one_per_item(rule: SlateRule) -> None:
    slates = sample_slates(rule, SCORES, CATEGORIES, 4, 5000, np.random.default_rng(1))
    shares = marginals(slates, len(SCORES))
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert np.all(shares.sum(axis=0) <= 1.0 + 1e-9)
    assert all(len(set(slate)) == len(slate) for slate in slates.tolist())


def test_epsilon_greedy_propensities_are_exact_and_match_the_draws() -> None:
    rule = SlateRule(EPSILON_GREEDY, epsilon=0.3)
    slates = sample_slates(rule, SCORES, CATEGORIES, 3, 20000, np.random.default_rng(2))
    shares = marginals(slates, len(SCORES))
    expected = np.full((3, len(SCORES)), 0.3 / len(SCORES))
    expected[[0, 1, 2], [0, 1, 2]] += 0.7
    np.testing.assert_allclose(shares, expected, atol=0.01)
    logged = served_propensities(rule, slates, SCORES)
    np.testing.assert_allclose(logged, [expected[k, j] for k, j in enumerate(slates[0])])


def test_the_bandits_draws_follow_its_scores_and_spread_categories() -> None:
    rule = SlateRule(BANDIT, temperature=0.5, diversity=2.0)
    slates = sample_slates(rule, SCORES, CATEGORIES, 2, 5000, np.random.default_rng(3))
    first = np.bincount(slates[:, 0], minlength=len(SCORES)) / len(slates)
    softmax = np.exp(SCORES / 0.5) / np.exp(SCORES / 0.5).sum()
    np.testing.assert_allclose(first, softmax, atol=0.02)
    # item 1 shares item 0's category: after item 0 it is pushed below item 2
    after_top = slates[slates[:, 0] == 0, 1]
    assert np.mean(after_top == 2) > np.mean(after_top == 1)
    served = served_propensities(rule, slates, SCORES)
    assert served[0] == pytest.approx(first[slates[0, 0]])


def test_category_caps_hold_in_every_draw() -> None:
    rule = SlateRule(BANDIT, temperature=1.0, category_cap=1)
    slates = sample_slates(rule, SCORES, CATEGORIES, 4, 2000, np.random.default_rng(4))
    assert all(len(set(CATEGORIES[slate])) == 4 for slate in slates)


def test_the_explored_loss_runs_from_the_greedy_slate_to_none_of_its_items() -> None:
    greedy = np.array([0, 1, 2])
    assert explored_loss(np.array([[0, 1, 2]] * 4), greedy) == pytest.approx(0.0)
    assert explored_loss(np.array([[3, 4, 5]] * 4), greedy) == pytest.approx(1.0)
    # a draw keeping the first place gives up less than one keeping only a later one
    assert 0 < explored_loss(np.array([[0, 2, 1]]), greedy) < explored_loss(np.array([[2, 1, 0]]), greedy) < 1
    assert explored_loss(np.array([[1, 0, 2], [0, 1, 2]]), greedy) == pytest.approx(
        explored_loss(np.array([[1, 0, 2]]), greedy) / 2
    )


def test_exploration_within_a_budget_serves_the_bandits_draw_on_budget_over_loss_of_requests() -> None:
    rule = SlateRule(BANDIT, temperature=2.0)
    greedy = sample_slates(SlateRule(GREEDY), SCORES, CATEGORIES, 4, 1, np.random.default_rng(0))[0]
    rng = np.random.default_rng(3)
    served_greedy, expected_loss, shares = 0, [], []
    for _ in range(2000):
        slates = sample_slates(rule, SCORES, CATEGORIES, 4, 300, rng)
        budgeted = within_budget(slates, greedy, 0.05, rng, len(SCORES))
        assert budgeted.share == pytest.approx(0.05 / budgeted.loss)
        served_greedy += bool((budgeted.slate == greedy).all())
        expected_loss.append(budgeted.share * budgeted.loss)
        shares.append(budgeted.share)
        assert all(0 < p <= 1 for p in budgeted.propensities)
    # the budget bounds the expected loss; the greedy slate is served on (1 - share) of requests or more
    assert np.mean(expected_loss) == pytest.approx(0.05)
    assert np.mean(shares) < 0.5 and served_greedy / 2000 >= 1 - np.mean(shares) - 0.02
    loose = within_budget(slates, greedy, 1.0, rng, len(SCORES))
    assert loose.share == 1.0 and (loose.slate == slates[0]).all()
