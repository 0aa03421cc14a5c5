"""Evaluation results: a row per model, written as markdown, JSON and a PNG of metric@K curves."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

TABLE_KS = (10, 20)
TABLE_METRICS = ("precision", "recall", "ndcg", "mrr", "hitrate")
SHORT = {"precision": "P", "recall": "R", "ndcg": "NDCG", "mrr": "MRR", "hitrate": "HR"}


@dataclass
class ModelResult:
    name: str
    params: dict[str, float] = field(default_factory=dict)
    at_k: dict[int, dict[str, float]] = field(default_factory=dict)
    beyond: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    # Recall@200, for rankings that deep (candidate lists, the offline baselines).
    recall_deep: float | None = None


BASELINE_MARK = "baseline"


@dataclass
class Report:
    protocol: str
    split: dict[str, int]
    results: list[ModelResult]
    command: str
    # Where the figures come from: commit, seeds, the data's SHA-256 (results files keep it).
    provenance: dict[str, str] = field(default_factory=dict)

    def best_baseline(self) -> ModelResult | None:
        """The baseline with the best NDCG@20 in this run."""
        found = [r for r in self.results if BASELINE_MARK in r.name]
        return max(found, key=lambda r: r.at_k[20]["ndcg"]) if found else None

    def against_best_baseline(self) -> list[str]:
        """One line per non-baseline row: its NDCG@20 as a multiple of the best baseline's."""
        best = self.best_baseline()
        if best is None or not best.at_k[20]["ndcg"]:
            return []
        reference = best.at_k[20]["ndcg"]
        return [
            f"- {r.name}: {r.at_k[20]['ndcg'] / reference:.3f} x the best baseline ({best.name}, "
            f"NDCG@20 {reference:.4f})"
            for r in self.results
            if BASELINE_MARK not in r.name
        ]

    def markdown(self) -> str:
        columns = [f"{SHORT[m]}@{k}" for k in TABLE_KS for m in TABLE_METRICS]
        beyond = ["R@200", "coverage@20", "ILD@20", "novelty@20"]
        lines = [
            f"Protocol `{self.protocol}`: "
            + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in self.split.items()),
            "",
            "| model | " + " | ".join(columns + beyond) + " |",
            "| --- | " + " | ".join("---" for _ in columns + beyond) + " |",
        ]
        for result in self.results:
            cells = [f"{result.at_k[k][m]:.4f}" for k in TABLE_KS for m in TABLE_METRICS]
            cells += [
                "n/a" if result.recall_deep is None else f"{result.recall_deep:.4f}",
                f"{result.beyond['coverage']:.3f}",
                f"{result.beyond['ild']:.3f}",
                f"{result.beyond['novelty']:.2f}",
            ]
            lines.append(f"| {_label(result)} | " + " | ".join(cells) + " |")
        comparisons = self.against_best_baseline()
        if comparisons:
            lines += ["", *comparisons]
        lines += ["", f"Reproduce: `{self.command}`"]
        if self.provenance:
            lines.append(", ".join(f"{key}: {value}" for key, value in self.provenance.items()))
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        return json.dumps(
            {
                "protocol": self.protocol,
                "split": self.split,
                "command": self.command,
                "provenance": self.provenance,
                "results": [asdict(r) for r in self.results],
            },
            indent=2,
        )

    def plot(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for axis, metric in zip(axes, ("ndcg", "recall"), strict=True):
            for result in self.results:
                ks = sorted(result.at_k)
                axis.plot(ks, [result.at_k[k][metric] for k in ks], marker=".", label=result.name)
            axis.set_xlabel("K")
            axis.set_ylabel(f"{SHORT[metric]}@K")
            axis.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        figure.suptitle(f"{self.protocol}: metric@K")
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)

    def write(self, folder: Path) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = {
            "markdown": folder / "results.md",
            "json": folder / "results.json",
            "plot": folder / "curves.png",
        }
        paths["markdown"].write_text(self.markdown())
        paths["json"].write_text(self.to_json())
        self.plot(paths["plot"])
        return paths


def mean_of_seeds(results: list[ModelResult]) -> ModelResult:
    """One result whose metrics are the means over `results` (one per seed); the spread of NDCG@20 is
    kept in its params. A single result is returned as it is."""
    first = results[0]
    if len(results) == 1:
        return first
    ndcg = [r.at_k[20]["ndcg"] for r in results]
    return ModelResult(
        name=first.name,
        params={"seeds": len(results), "ndcg@20 min": min(ndcg), "ndcg@20 max": max(ndcg)},
        at_k={
            k: {metric: float(np.mean([r.at_k[k][metric] for r in results])) for metric in first.at_k[k]}
            for k in first.at_k
        },
        beyond={name: float(np.mean([r.beyond[name] for r in results])) for name in first.beyond},
        seconds=float(np.sum([r.seconds for r in results])),
        recall_deep=first.recall_deep,
    )


def _label(result: ModelResult) -> str:
    """The model's name, and for a mean over seeds how many and the spread of NDCG@20."""
    seeds = result.params.get("seeds")
    if not seeds:
        return result.name
    low, high = result.params["ndcg@20 min"], result.params["ndcg@20 max"]
    return f"{result.name}, mean of {seeds:g} seeds (NDCG@20 {low:.4f} to {high:.4f})"
