"""Slate rules and their propensities, without a server."""

import numpy as np
import pytest

from services.policy.slates import (
    BANDIT,
    EPSILON_GREEDY,
    GREEDY,
    SlateRule,
    marginals,
    sample_slates,
    served_propensities,
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
