"""Building slates: the strategy fusion, the three slate rules, and their propensities.

Fusion (docs/policy.md): every candidate j gets one score

    s_j = w_ranker·z(ranker_j) + w_generator·z(generator_j) + w_margin·margin_j + w_bandit·z(ucb_j)

where z() standardizes over the request's candidates (for the bandit's upper
bounds, a spread under 0.05 reward counts as 0.05) and the bandit term is
there only for the bandit. Business rules are hard: out-of-stock items are
never considered, and a slate holds at most `category_cap` items of one
category (0: no cap). Then, position by position:

- greedy takes the best remaining s_j;
- epsilon-greedy serves the greedy slate, except that with probability epsilon
  it serves a uniformly random one (slate-level exploration: every candidate
  can then appear at every position, which off-policy evaluation needs);
- the bandit draws from softmax((s_j - diversity·[j's category already shown]) / temperature),
  a maximal-marginal-relevance term that spreads the slate over categories.

Exploration has a budget: the bandit serves its own draw only on a share of its
requests, min(1, budget / loss), and its exploiting slate otherwise (greedy on its
scores without the exploration bonus: the ranker's order until it has learned
anything), where `loss` is the request's expected relative DCG loss of the draws
against that slate over the whole slate, where a drawn item counts only at its
exact place in that slate (pessimistic, so the served loss stays within the
budget); see docs/validation.md.

Propensities are marginals: the probability that the policy puts an item at a
position. For epsilon-greedy without a category cap they are exact,
(1 - epsilon)·[the greedy slate has it there] + epsilon / n; otherwise they are
estimated from `samples` slates drawn at once (the served slate is the first
of them, so it is always counted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.policy.context import Candidates, standardized
from services.policy.linear import LinearModel

GREEDY = "greedy"
EPSILON_GREEDY = "epsilon-greedy"
BANDIT = "bandit"
# Upper bounds closer than this (in reward units) are treated as about equal.
LEAST_REWARD_SPREAD = 0.05


@dataclass(frozen=True)
class SlateRule:
    kind: str
    epsilon: float = 0.0
    temperature: float = 1.0
    diversity: float = 0.0
    category_cap: int = 0


@dataclass(frozen=True)
class Fusion:
    ranker: float
    generator: float
    margin: float
    bandit: float

    def scores(self, candidates: Candidates, model: LinearModel | None, alpha: float) -> np.ndarray:
        fused = (
            self.ranker * candidates.ranker_z
            + self.generator * candidates.generator_z
            + self.margin * candidates.margin
        )
        if model is not None:
            bounds = model.upper_bounds(candidates.features, alpha)
            fused = fused + self.bandit * standardized(bounds, least_spread=LEAST_REWARD_SPREAD)
        return fused


def sample_slates(
    rule: SlateRule,
    scores: np.ndarray,
    categories: np.ndarray,
    count: int,
    samples: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """`samples` slates of min(count, n) candidate indices each, one row per slate."""
    n = len(scores)
    count = min(count, n)
    if rule.kind == GREEDY:
        samples = 1
    rows = np.arange(samples)
    exploring = rng.random(samples) < rule.epsilon if rule.kind == EPSILON_GREEDY else np.zeros(samples, bool)
    taken = np.zeros((samples, n), dtype=bool)
    per_category = np.zeros((samples, int(categories.max()) + 1), dtype=np.int64)
    slates = np.empty((samples, count), dtype=np.int64)
    for position in range(count):
        allowed = ~taken
        if rule.category_cap:
            capped = allowed & (per_category[:, categories] < rule.category_cap)
            allowed = np.where(capped.any(axis=1, keepdims=True), capped, allowed)
        if rule.kind == BANDIT:
            repeated = per_category[:, categories] > 0
            logits = (scores[None, :] - rule.diversity * repeated) / rule.temperature
            noise = -np.log(-np.log(rng.uniform(1e-12, 1.0, size=(samples, n))))
            pick = np.argmax(np.where(allowed, logits + noise, -np.inf), axis=1)
        else:
            pick = np.argmax(np.where(allowed, scores[None, :], -np.inf), axis=1)
            if exploring.any():
                anyone = np.argmax(np.where(allowed, rng.random((samples, n)), -1.0), axis=1)
                pick = np.where(exploring, anyone, pick)
        slates[:, position] = pick
        taken[rows, pick] = True
        per_category[rows, categories[pick]] += 1
    return slates


def marginals(slates: np.ndarray, n: int) -> np.ndarray:
    """positions by n: the share of slates that hold each candidate at each position."""
    shares = np.zeros((slates.shape[1], n))
    for position in range(slates.shape[1]):
        shares[position] = np.bincount(slates[:, position], minlength=n) / len(slates)
    return shares


def exact_propensities(rule: SlateRule) -> bool:
    """Whether the served propensities follow from the rule alone, without drawing slates."""
    return rule.kind == GREEDY or (rule.kind == EPSILON_GREEDY and not rule.category_cap)


def served_propensities(rule: SlateRule, slates: np.ndarray, scores: np.ndarray) -> list[float]:
    """The marginal propensity of each item of the first slate at its position."""
    served = slates[0]
    if rule.kind == EPSILON_GREEDY and exact_propensities(rule):
        greedy = np.argsort(-scores, kind="stable")[: len(served)]
        uniform = rule.epsilon / len(scores)
        return [float((1 - rule.epsilon) * (j == g) + uniform) for j, g in zip(served, greedy, strict=True)]
    return [float(np.mean(slates[:, k] == served[k])) for k in range(slates.shape[1])]


def _discounts(count: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, count + 2))


def explored_loss(slates: np.ndarray, greedy: np.ndarray) -> float:
    """The mean share of `greedy`'s DCG that `slates` give up, counting a drawn item only where it
    sits exactly at its place in `greedy` (pessimistic: a moved item still has some value): 0 when
    every draw is the greedy slate, 1 when no draw has any item in its greedy place."""
    discounts = _discounts(greedy.shape[0])
    kept = (slates == greedy[None, :]).astype(np.float64) @ discounts
    return float(1.0 - kept.mean() / discounts.sum())


@dataclass(frozen=True)
class Budgeted:
    """The slate served within an exploration budget, its propensities, and the share of requests
    like this one that serve the bandit's draw."""

    slate: np.ndarray
    propensities: list[float]
    share: float
    loss: float


def within_budget(
    slates: np.ndarray, greedy: np.ndarray, budget: float, rng: np.random.Generator, n: int
) -> Budgeted:
    """Serves `slates[0]` (a bandit draw) with probability min(1, budget / loss), else `greedy` (the
    exploiting slate);
    the propensities are the mixture's marginals at the served positions."""
    loss = explored_loss(slates, greedy)
    share = 1.0 if loss <= budget else budget / loss
    served = slates[0] if rng.random() < share else greedy
    mixed = share * marginals(slates, n)
    mixed[np.arange(len(greedy)), greedy] += 1.0 - share
    return Budgeted(served, [float(mixed[k, j]) for k, j in enumerate(served.tolist())], share, loss)
