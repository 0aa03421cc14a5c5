"""The named policies and the deterministic bucketing of shoppers between them."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from services.policy.settings import PolicySettings
from services.policy.slates import BANDIT, EPSILON_GREEDY, GREEDY, Fusion, SlateRule

BUCKETS = 1000


@dataclass(frozen=True)
class NamedPolicy:
    name: str
    rule: SlateRule
    learns: bool


def named_policies(settings: PolicySettings) -> dict[str, NamedPolicy]:
    """Every policy by name; RECSYS_POLICIES decides which ones shoppers are bucketed into."""
    return {
        GREEDY: NamedPolicy(GREEDY, SlateRule(GREEDY, category_cap=settings.category_cap), learns=False),
        EPSILON_GREEDY: NamedPolicy(
            EPSILON_GREEDY,
            SlateRule(EPSILON_GREEDY, epsilon=settings.epsilon, category_cap=settings.category_cap),
            learns=False,
        ),
        BANDIT: NamedPolicy(
            BANDIT,
            SlateRule(
                BANDIT,
                temperature=settings.temperature,
                diversity=settings.diversity,
                category_cap=settings.category_cap,
            ),
            learns=True,
        ),
    }


def fusion(settings: PolicySettings) -> Fusion:
    weights = settings.fusion_weights
    return Fusion(weights["ranker"], weights["generator"], weights["margin"], weights["bandit"])


def bucket_of(user_id: str, salt: str) -> int:
    """A stable bucket in 0..999: the same shopper always lands in the same one."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def assigned(bucket: int, shares: Mapping[str, float]) -> str:
    """The policy whose slice of the buckets holds `bucket` (slices in the configured order)."""
    edge = 0.0
    for name, share in shares.items():
        edge += share * BUCKETS
        if bucket < round(edge):
            return name
    return next(name for name, share in reversed(list(shares.items())) if share > 0)
