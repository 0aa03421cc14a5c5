"""Off-policy evaluation: what a policy would earn per slate, from decisions another logged.

The slate value is taken as the sum of what each position earns, and the item
at a position earns the same whoever put it there (the item-position model).
Then with w = target's marginal propensity / logger's marginal propensity for
the logged item at each position, and r its logged reward:

- IPS: mean over slates of sum_k w_k r_k;
- SNIPS: sum over positions of sum(w_k r_k) / sum(w_k), which trades a little
  bias for much less variance;
- doubly robust: a reward model q (ridge regression on the logged contexts,
  cross-fitted on two halves) predicts every candidate, and IPS corrects its
  error: mean of sum_k [sum_j target_k(j) q(x_jk) + w_k (r_k - q(x_k))].

The target's propensities come from drawing its slates for each logged
request, with the same code that serves it. Intervals are 95% bootstrap
intervals over slates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from services.policy.context import at_position, logged_candidates
from services.policy.linear import LinearModel
from services.policy.policies import NamedPolicy
from services.policy.slates import Fusion, marginals, sample_slates
from services.policy.store import Decision, PolicyStore

RIDGE = 1.0
RESAMPLES = 500


@dataclass(frozen=True)
class Estimate:
    name: str
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Evaluation:
    target: str
    logged_by: str
    decisions: int
    logged_value: float
    estimates: list[Estimate]
    effective_sample_size: float


@dataclass
class _Slate:
    weights: np.ndarray  # per position: target / logger propensity of the logged item
    rewards: np.ndarray
    logged_contexts: np.ndarray  # per position: the logged item's context there
    target_shares: np.ndarray  # positions by candidates
    candidate_features: np.ndarray


def _ridge(contexts: np.ndarray, rewards: np.ndarray) -> np.ndarray:
    gram = contexts.T @ contexts + RIDGE * np.eye(contexts.shape[1])
    return np.linalg.solve(gram, contexts.T @ rewards)


def _slates(
    decisions: list[Decision],
    rewards: dict[tuple[str, str], float],
    target: NamedPolicy,
    fusion: Fusion,
    model: LinearModel | None,
    alpha: float,
    samples: int,
    rng: np.random.Generator,
    advance: Callable[[int], None],
) -> list[_Slate]:
    found = []
    for decision in decisions:
        candidates = logged_candidates(decision.candidate_ids, decision.categories, decision.features)
        scores = fusion.scores(candidates, model, alpha)
        drawn = sample_slates(
            target.rule, scores, candidates.category_codes(), len(decision.item_ids), samples, rng
        )
        shares = marginals(drawn, len(candidates))
        index = {item: n for n, item in enumerate(decision.candidate_ids)}
        positions = [index[item] for item in decision.item_ids]
        found.append(
            _Slate(
                weights=np.array(
                    [shares[k, j] / max(decision.propensities[k], 1e-9) for k, j in enumerate(positions)]
                ),
                rewards=np.array(
                    [rewards.get((decision.request_id, item), 0.0) for item in decision.item_ids]
                ),
                logged_contexts=decision.shown_contexts(),
                target_shares=shares,
                candidate_features=decision.features,
            )
        )
        advance(1)
    return found


def _contributions(slates: list[_Slate], theta: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Per slate: sum of w*r, the direct-method value, the doubly-robust value; per slate and
    position: w*r and w (for SNIPS)."""
    ips, direct, robust = [], [], []
    width = max(len(s.rewards) for s in slates)
    weighted = np.zeros((len(slates), width))
    weights = np.zeros((len(slates), width))
    for n, slate in enumerate(slates):
        coefficients = theta[n % 2]
        predicted_logged = slate.logged_contexts @ coefficients
        model_value = sum(
            slate.target_shares[k] @ (at_position(slate.candidate_features, k) @ coefficients)
            for k in range(len(slate.rewards))
        )
        correction = slate.weights * (slate.rewards - predicted_logged)
        ips.append(float(slate.weights @ slate.rewards))
        direct.append(float(model_value))
        robust.append(float(model_value + correction.sum()))
        weighted[n, : len(slate.rewards)] = slate.weights * slate.rewards
        weights[n, : len(slate.rewards)] = slate.weights
    return np.array(ips), np.array(direct), np.array(robust), weighted, weights


def _snips(weighted: np.ndarray, weights: np.ndarray) -> float:
    totals = weights.sum(axis=0)
    return float(np.sum(np.divide(weighted.sum(axis=0), totals, out=np.zeros_like(totals), where=totals > 0)))


def evaluate(
    store: PolicyStore,
    target: NamedPolicy,
    fusion: Fusion,
    alpha: float,
    logged_by: str,
    samples: int,
    since: datetime | None = None,
    seed: int = 0,
    advance: Callable[[int], None] = lambda _: None,
) -> Evaluation:
    decisions = [d for d in store.decisions_of(logged_by, since) if d.item_ids and d.features.size]
    if not decisions:
        raise ValueError(f"no decisions logged by {logged_by!r} to evaluate from")
    rewards: dict[tuple[str, str], float] = defaultdict(float)
    for reward in store.rewards_of(logged_by, since):
        rewards[(reward.request_id, reward.item_id)] += reward.value
    rng = np.random.default_rng(seed)
    model = store.model(target.name) if target.learns else None
    slates = _slates(decisions, rewards, target, fusion, model, alpha, samples, rng, advance)
    halves = [[s for n, s in enumerate(slates) if n % 2 == half] for half in (0, 1)]
    # each half's reward model is fitted on the other half (cross-fitting)
    theta = [
        _ridge(
            np.concatenate([s.logged_contexts for s in halves[1 - half]]),
            np.concatenate([s.rewards for s in halves[1 - half]]),
        )
        if halves[1 - half]
        else np.zeros(slates[0].logged_contexts.shape[1])
        for half in (0, 1)
    ]
    ips, direct, robust, weighted, weights = _contributions(slates, theta)
    draws = rng.integers(len(slates), size=(RESAMPLES, len(slates)))

    def interval(name: str, value: float, statistic: Callable[[np.ndarray], float]) -> Estimate:
        spread = np.array([statistic(draw) for draw in draws])
        low, high = np.percentile(spread, [2.5, 97.5])
        return Estimate(name, value, float(low), float(high))

    estimates = [
        interval("IPS", float(ips.mean()), lambda d: float(ips[d].mean())),
        interval("SNIPS", _snips(weighted, weights), lambda d: _snips(weighted[d], weights[d])),
        interval("doubly robust", float(robust.mean()), lambda d: float(robust[d].mean())),
        interval("direct method", float(direct.mean()), lambda d: float(direct[d].mean())),
    ]
    first = weights[:, 0]
    return Evaluation(
        target=target.name,
        logged_by=logged_by,
        decisions=len(slates),
        logged_value=float(np.mean([s.rewards.sum() for s in slates])),
        estimates=estimates,
        effective_sample_size=float(first.sum() ** 2 / max(np.sum(first**2), 1e-12)),
    )
