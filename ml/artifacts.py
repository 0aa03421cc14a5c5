"""Formats of the baseline model artifacts, shared by their trainers and the services serving them.

Both are plain NumPy files inside a version folder (see shared/models.py):
- popularity/<v>/popularity.npz: item ids, scores and distinct buyers, most popular first;
  segments.npz: the same for each shopper segment (Event.segment) with enough buyers;
- cooccurrence/<v>/neighbours.npz: for every item its top-k co-bought items
  with cosine scores (-1 marks an empty neighbour slot).
- ease/<v>/neighbours.npz: EASE's weights in the same layout, with ease.json (ml/ease.py);
- serving/<v>/serving.json: the configuration training chose on validation (ServingConfig).
The learned ranker is `ranker/<v>/` (ml/ranking/ranker.py). The candidate GAN is a
SavedModel served through TF Serving's API, `candidate_gan/<v>/`
(see ml/gan/export.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

POPULARITY = "popularity"
COOCCURRENCE = "cooccurrence"
CANDIDATE_GAN = "candidate_gan"
RANKER = "ranker"
SERVING = "serving"
# What orders the candidates: the published learned ranker, or the fused candidate order itself.
LEARNED = "learned"
CANDIDATE_ORDER = "candidate-order"
ORDERS = (LEARNED, CANDIDATE_ORDER)


@dataclass(frozen=True)
class PopularityModel:
    """Items by popularity score (recency-weighted buyers), with their distinct buyers."""

    item_ids: np.ndarray
    scores: np.ndarray
    buyers: np.ndarray
    # The same ranking among each segment's buyers, for segments with enough of them.
    segments: dict[str, PopularityModel] = field(default_factory=dict, compare=False)

    def save(self, folder: Path) -> None:
        np.savez(folder / "popularity.npz", item_ids=self.item_ids, scores=self.scores, buyers=self.buyers)
        names = sorted(self.segments)
        if names:
            models = [self.segments[name] for name in names]
            np.savez(
                folder / "segments.npz",
                segment=np.repeat(np.array(names, dtype=str), [len(m.item_ids) for m in models]),
                item_ids=np.concatenate([m.item_ids for m in models]),
                scores=np.concatenate([m.scores for m in models]),
                buyers=np.concatenate([m.buyers for m in models]),
            )

    @classmethod
    def load(cls, folder: Path) -> PopularityModel:
        with np.load(folder / "popularity.npz") as data:
            buyers = data["buyers"] if "buyers" in data else data["scores"].astype(np.int64)
            model = cls(item_ids=data["item_ids"], scores=data["scores"], buyers=buyers)
        if (folder / "segments.npz").exists():
            with np.load(folder / "segments.npz") as data:
                segment = data["segment"]
                for name in np.unique(segment).tolist():
                    rows = segment == name
                    model.segments[name] = cls(
                        data["item_ids"][rows], data["scores"][rows], data["buyers"][rows]
                    )
        return model

    def in_segment(self, segment: str) -> tuple[PopularityModel, str]:
        """The ranking among `segment`'s buyers and its name, or everyone's and "" when the model
        does not know the segment."""
        found = self.segments.get(segment)
        return (found, segment) if found is not None else (self, "")

    def top(self, count: int, exclude: set[str]) -> list[tuple[str, float, int]]:
        """(item id, score, buyers) of the `count` most popular items outside `exclude`."""
        chosen: list[tuple[str, float, int]] = []
        # the rows are in popularity order: `count` of them lie within the first count + |exclude|
        end = count + len(exclude)
        rows = zip(
            self.item_ids[:end].tolist(), self.scores[:end].tolist(), self.buyers[:end].tolist(), strict=True
        )
        for item_id, score, buyers in rows:
            if item_id not in exclude:
                chosen.append((item_id, score, buyers))
                if len(chosen) == count:
                    break
        return chosen


@dataclass(frozen=True)
class CooccurrenceModel:
    item_ids: np.ndarray
    neighbours: np.ndarray
    scores: np.ndarray
    index: dict[str, int] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.index.update({item_id: i for i, item_id in enumerate(self.item_ids.tolist())})

    def save(self, folder: Path) -> None:
        np.savez(
            folder / "neighbours.npz",
            item_ids=self.item_ids,
            neighbours=self.neighbours,
            scores=self.scores,
        )

    @classmethod
    def load(cls, folder: Path) -> CooccurrenceModel:
        with np.load(folder / "neighbours.npz") as data:
            return cls(item_ids=data["item_ids"], neighbours=data["neighbours"], scores=data["scores"])

    def similar(self, item_id: str) -> list[tuple[str, float]]:
        """Co-bought items of `item_id`, best first; empty for an unknown item."""
        row = self.index.get(item_id)
        if row is None:
            return []
        return [
            (str(self.item_ids[j]), float(score))
            for j, score in zip(self.neighbours[row], self.scores[row], strict=True)
            if j >= 0
        ]


@dataclass(frozen=True)
class ServingConfig:
    """What the pipeline serves, as training chose it on validation: the fusion of the candidate
    sources, what orders the candidates (`ranker`, one of ORDERS), the neighbour sources' recency
    decays (ml/retrieval.py; absent: 1.0), and the report behind the choice."""

    weights: Mapping[str, float]
    quotas: Mapping[str, float]
    ranker: str
    report: Mapping[str, object] = field(default_factory=dict, compare=False)
    recency_decays: Mapping[str, float] = field(default_factory=dict)

    def save(self, folder: Path) -> None:
        body = {
            "weights": dict(self.weights),
            "quotas": dict(self.quotas),
            "ranker": self.ranker,
            "recency_decays": dict(self.recency_decays),
        }
        (folder / "serving.json").write_text(json.dumps({**body, "report": self.report}, indent=2))

    @classmethod
    def load(cls, folder: Path) -> ServingConfig:
        data = json.loads((folder / "serving.json").read_text())
        if data["ranker"] not in ORDERS:
            raise ValueError(f"{folder}: ranker must be one of {', '.join(ORDERS)}, got {data['ranker']!r}")
        decays = data.get("recency_decays", {})
        if not all(0.0 < float(decay) <= 1.0 for decay in decays.values()):
            raise ValueError(f"{folder}: every recency decay must be in (0, 1], got {decays}")
        return cls(data["weights"], data["quotas"], data["ranker"], data.get("report", {}), decays)
