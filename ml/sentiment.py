"""Review sentiment: a linear classifier over a review's words and word pairs, scored in NumPy.

It is trained in TensorFlow (ml/sentiment_train.py), weakly labelled by the ratings shoppers gave
(4-5 stars positive, 1-3 negative), and serves as plain arrays, so a service can score reviews
without TensorFlow. The score is in [-1, 1], like a rating mapped to that range.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ml.snapshot import REVIEW, Snapshot
from ml.text_encoder import words

MODEL = "review_sentiment"
MIN_PER_CLASS = 20
# The baseline every classifier must beat: the balance of a few opinion words.
POSITIVE_WORDS = frozenset(
    [
        "love",
        "loved",
        "great",
        "excellent",
        "perfect",
        "lovely",
        "beautiful",
        "good",
        "nice",
        "happy",
        "recommend",
    ]
)
NEGATIVE_WORDS = frozenset(
    ["bad", "broken", "poor", "terrible", "awful", "disappointed", "cheap", "flimsy", "returned", "worst"]
)


class TooFewReviews(ValueError):
    """Not enough rated reviews of both kinds to learn from; the message says how many."""


def opinion_words(text: str) -> float | None:
    """The balance of opinion words in [-1, 1]; None when the text holds none."""
    found = [word.strip(".,!?;:").lower() for word in text.split()]
    positive = sum(word in POSITIVE_WORDS for word in found)
    negative = sum(word in NEGATIVE_WORDS for word in found)
    return (positive - negative) / (positive + negative) if positive + negative else None


def rating_sentiment(rating: int) -> float | None:
    """A rating of 1 to 5 stars mapped to [-1, 1]; None for no rating."""
    return (rating - 3) / 2 if 1 <= rating <= 5 else None


def weak_labels(ratings: list[int]) -> np.ndarray:
    """1 for 4-5 stars, 0 for 1-3 (shoppers rate what they chose to buy: 3 stars is a complaint),
    -1 (unused) for no rating."""
    values = np.array(ratings)
    return np.where(values >= 4, 1, np.where((values >= 1) & (values <= 3), 0, -1))


def check_labels(labels: np.ndarray) -> None:
    """TooFewReviews unless both classes have MIN_PER_CLASS rated reviews."""
    positive, negative = int((labels == 1).sum()), int((labels == 0).sum())
    if min(positive, negative) < MIN_PER_CLASS:
        raise TooFewReviews(
            f"{positive} positive and {negative} negative rated reviews; at least {MIN_PER_CLASS} of each"
        )


def terms(text: str) -> list[str]:
    """The review's words and adjacent word pairs."""
    found = words(text)
    return found + [f"{a} {b}" for a, b in itertools.pairwise(found)]


@dataclass(frozen=True)
class SentimentModel:
    vocabulary: np.ndarray  # terms, in column order
    weights: np.ndarray
    bias: float

    @cached_property
    def index(self) -> dict[str, int]:
        """Each term's column, built once: the profile service scores reviews one at a time."""
        return {term: n for n, term in enumerate(self.vocabulary.tolist())}

    def columns(self, texts: list[str]) -> np.ndarray:
        """Multi-hot rows over the vocabulary (terms it does not know are left out)."""
        index = self.index
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


def scored_reviews(snapshot: Snapshot, model: SentimentModel | None) -> Snapshot:
    """`snapshot` with each event's review sentiment (`Snapshot.sentiments`): the rating's where a
    review is rated, else its text's (`model`'s score, or without one the opinion-word rule), NaN
    for other events and for reviews that say nothing. The portrait reads reviews the same way
    (services/profile/portrait.review_sentiment)."""
    sentiments = np.full(snapshot.event_count, np.nan, dtype=np.float32)
    reviews = snapshot.types == REVIEW
    if snapshot.ratings is not None:
        rated = reviews & (snapshot.ratings >= 1) & (snapshot.ratings <= 5)
        sentiments[rated] = [rating_sentiment(r) for r in snapshot.ratings[rated].tolist()]
    if snapshot.review_rows is not None and snapshot.review_texts is not None and len(snapshot.review_rows):
        unrated = np.isnan(sentiments[snapshot.review_rows])
        open_rows = snapshot.review_rows[unrated]
        texts = snapshot.review_texts[unrated].tolist()
        if model is not None:
            sentiments[open_rows] = model.scores(texts)
        else:
            found = [opinion_words(text) for text in texts]
            sentiments[open_rows] = [np.nan if score is None else score for score in found]
    return dataclasses.replace(snapshot, sentiments=sentiments)
