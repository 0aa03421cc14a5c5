"""Summaries of policy simulations: reward per policy over seeds, lift over greedy with a
95% interval, and the plot of cumulative reward."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from statistics import mean, stdev

import numpy as np

from tools.evaluation.simulation import SessionResult

# Two-sided 97.5% quantiles of Student's t by degrees of freedom (1 to 10), for 95% intervals.
T_QUANTILE = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
BASELINE = "greedy"


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class PolicyRow:
    policy: str
    sessions: int
    reward_per_session: Interval
    lift_over_greedy: Interval | None
    difference_over_greedy: Interval | None


def t_interval(values: list[float]) -> Interval:
    """Mean with a 95% t-interval (zero width for a single value)."""
    centre = mean(values)
    if len(values) < 2:
        return Interval(centre, centre, centre)
    half = T_QUANTILE[min(len(values) - 1, len(T_QUANTILE)) - 1] * stdev(values) / np.sqrt(len(values))
    return Interval(centre, centre - half, centre + half)


def per_session(results: list[SessionResult], policy: str) -> float:
    rewards = [r.reward for r in results if r.policy == policy]
    return mean(rewards) if rewards else float("nan")


def summarize(runs: Mapping[int, list[SessionResult]], policies: list[str]) -> list[PolicyRow]:
    """One row per policy; seeds are the replicates of the intervals."""
    rows = []
    for policy in policies:
        means = [per_session(results, policy) for results in runs.values()]
        lift = difference = None
        if policy != BASELINE and BASELINE in policies:
            baseline = [per_session(results, BASELINE) for results in runs.values()]
            lift = t_interval([m / b - 1.0 for m, b in zip(means, baseline, strict=True)])
            difference = t_interval([m - b for m, b in zip(means, baseline, strict=True)])
        rows.append(
            PolicyRow(
                policy=policy,
                sessions=sum(1 for results in runs.values() for r in results if r.policy == policy),
                reward_per_session=t_interval(means),
                lift_over_greedy=lift,
                difference_over_greedy=difference,
            )
        )
    return rows


def cumulative(results: list[SessionResult], policy: str) -> np.ndarray:
    return np.cumsum([r.reward for r in results if r.policy == policy])


def plot(runs: Mapping[int, list[SessionResult]], policies: list[str], path: Path, title: str) -> None:
    """Cumulative reward against the policy's own session count: the mean over seeds, and the
    band between the lowest and highest seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    for policy in policies:
        curves = [cumulative(results, policy) for results in runs.values()]
        length = min(len(curve) for curve in curves)
        if length == 0:
            continue
        stacked = np.stack([curve[:length] for curve in curves])
        steps = np.arange(1, length + 1)
        axes.plot(steps, stacked.mean(axis=0), label=policy)
        axes.fill_between(steps, stacked.min(axis=0), stacked.max(axis=0), alpha=0.2)
    axes.set_xlabel("sessions served by the policy")
    axes.set_ylabel("cumulative reward")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
