"""The policy service's own settings section (docs/policy.md), read on top of shared.config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.config import EnvReader

POLICY_KINDS = ("greedy", "epsilon-greedy", "bandit")
DEFAULT_POLICY_SHARES: dict[str, float] = {"bandit": 1.0}
# Reward of each event type that answers a recommendation (DISMISS is negative feedback).
DEFAULT_REWARD_WEIGHTS: dict[str, float] = {
    "view": 0.0,
    "click": 1.0,
    "add_to_cart": 3.0,
    "purchase": 10.0,
    "review": 0.0,
    "like": 1.0,
    "share": 2.0,
    "dismiss": -2.0,
}
# Weights of the strategy fusion (docs/policy.md): each score is standardized over the request's
# candidates first, so the weights compare like with like.
DEFAULT_FUSION_WEIGHTS: dict[str, float] = {"ranker": 0.3, "generator": 0.0, "margin": 0.0, "bandit": 1.0}
DEFAULT_CONSIDER = 50


@dataclass(frozen=True)
class PolicySettings:
    """How the policy service chooses slates and learns (docs/policy.md)."""

    shares: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_POLICY_SHARES))
    salt: str = "recsys"
    reward_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_REWARD_WEIGHTS))
    fusion_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_FUSION_WEIGHTS))
    epsilon: float = 0.2
    bandit_alpha: float = 1.0
    temperature: float = 0.3
    diversity: float = 0.3
    category_cap: int = 0
    consider: int = DEFAULT_CONSIDER
    propensity_samples: int = 300
    # The most the bandit's exploration may cost against greedy, as a share of DCG (slates.py).
    exploration_budget: float = 0.05
    seed: int | None = None  # of the slate draws; None: fresh entropy at each start


def read_consider(read: EnvReader) -> int:
    """How many of the ranked items a slate is chosen from (the gateway sends that many)."""
    return int(read.number("RECSYS_POLICY_CONSIDER", DEFAULT_CONSIDER, 1, 1000))


def read_policy_settings(read: EnvReader) -> PolicySettings:
    shares = read.shares("RECSYS_POLICIES", {}, POLICY_KINDS) or dict(DEFAULT_POLICY_SHARES)
    if abs(sum(shares.values()) - 1.0) > 1e-6:
        read.problems.append(
            f"RECSYS_POLICIES: the shares must sum to 1; they sum to {sum(shares.values()):g}"
        )
    return PolicySettings(
        shares=shares,
        salt=read.text("RECSYS_POLICY_SALT", "recsys"),
        reward_weights=read.shares(
            "RECSYS_REWARD_WEIGHTS",
            DEFAULT_REWARD_WEIGHTS,
            tuple(DEFAULT_REWARD_WEIGHTS),
            most=float("inf"),
            low=-100.0,
            high=100.0,
        ),
        fusion_weights=read.shares(
            "RECSYS_FUSION_WEIGHTS",
            DEFAULT_FUSION_WEIGHTS,
            tuple(DEFAULT_FUSION_WEIGHTS),
            most=float("inf"),
            high=100.0,
        ),
        epsilon=read.number("RECSYS_POLICY_EPSILON", 0.2, 0, 1),
        bandit_alpha=read.number("RECSYS_BANDIT_ALPHA", 1.0, 0, 100),
        temperature=read.number("RECSYS_BANDIT_TEMPERATURE", 0.3, 0.01, 100),
        diversity=read.number("RECSYS_POLICY_DIVERSITY", 0.3, 0, 10),
        category_cap=int(read.number("RECSYS_POLICY_CATEGORY_CAP", 0, 0, 1000)),
        consider=read_consider(read),
        propensity_samples=int(read.number("RECSYS_POLICY_PROPENSITY_SAMPLES", 300, 10, 100_000)),
        exploration_budget=read.number("RECSYS_POLICY_EXPLORATION_BUDGET", 0.05, 0, 1),
        seed=read.seed("RECSYS_POLICY_SEED"),
    )
