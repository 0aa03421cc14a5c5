"""Review sentiment: a linear classifier over a review's words and word pairs, scored in NumPy.

It is trained in TensorFlow (ml/sentiment_train.py), weakly labelled by the ratings shoppers gave
(4-5 stars positive, 1-3 negative), and serves as plain arrays, so a service can score reviews
without TensorFlow. The score is in [-1, 1], like a rating mapped to that range.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.text_encoder import words

MODEL = "review_sentiment"


def terms(text: str) -> list[str]:
    """The review's words and adjacent word pairs."""
    found = words(text)
    return found + [f"{a} {b}" for a, b in itertools.pairwise(found)]


@dataclass(frozen=True)
class SentimentModel:
    vocabulary: np.ndarray  # terms, in column order
    weights: np.ndarray
    bias: float

    def columns(self, texts: list[str]) -> np.ndarray:
        """Multi-hot rows over the vocabulary (terms it does not know are left out)."""
        index = {term: n for n, term in enumerate(self.vocabulary.tolist())}
        rows = np.zeros((len(texts), len(index)), dtype=np.float32)
        for row, text in enumerate(texts):
            for term in terms(text):
                if term in index:
                    rows[row, index[term]] = 1.0
        return rows

    def scores(self, texts: list[str]) -> np.ndarray:
        """Each review's sentiment in [-1, 1]: 2 x P(positive) - 1."""
        logits = self.columns(texts) @ self.weights + self.bias
        return 2.0 / (1.0 + np.exp(-logits)) - 1.0

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "sentiment.npz", weights=self.weights)
        (folder / "sentiment.json").write_text(
            json.dumps({"vocabulary": self.vocabulary.tolist(), "bias": self.bias})
        )

    @classmethod
    def load(cls, folder: Path) -> SentimentModel:
        meta = json.loads((folder / "sentiment.json").read_text())
        weights = np.load(folder / "sentiment.npz")["weights"]
        return cls(np.array(meta["vocabulary"], dtype=str), weights, float(meta["bias"]))
