"""Review sentiment on simulated reviews, scored against the simulator's true satisfaction.

Per seed: a simulated shop's reviews, split by shopper into halves; the classifier learns from the
first half's ratings (weak labels) and scores the second half's texts. AUC: how often a review of
a more satisfied shopper (true satisfaction above the median review's) scores above one of a less
satisfied shopper. Beside it: the opinion-word count the profile service uses today (a baseline),
and the rating itself, which the classifier never sees for these reviews.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.metrics import auc
from ml.sentiment import opinion_words
from tools.synth.sessions import REVIEW, shopper_events
from tools.synth.shop import make_shop
from tools.synth.shoppers import shopper

START = 1_700_000_000.0
DAYS = 90


@dataclass(frozen=True)
class SentimentResult:
    seed: int
    train_reviews: int
    test_reviews: int
    classifier_auc: float
    word_count_baseline_auc: float
    rating_auc: float


def reviews(seed: int, shoppers: int, items: int) -> list[tuple[int, str, int, float]]:
    """(shopper number, text, rating, true satisfaction) of every simulated review."""
    shop = make_shop(items, seed)
    found = []
    for number in range(shoppers):
        for event in shopper_events(seed, shopper(seed, number), shop, START, DAYS):
            if event.type == REVIEW:
                found.append((number, event.text, event.rating, event.satisfaction))
    return found


def run_seed(seed: int, shoppers: int = 6000, items: int = 400) -> SentimentResult:
    from ml.sentiment_train import fit_sentiment  # loads TensorFlow

    found = reviews(seed, shoppers, items)
    train = [r for r in found if r[0] % 2 == 0]
    test = [r for r in found if r[0] % 2 == 1]
    model = fit_sentiment([r[1] for r in train], [r[2] for r in train])
    satisfaction = np.array([r[3] for r in test])
    truth = satisfaction > np.median(satisfaction)
    baseline = np.array([opinion_words(r[1]) or 0.0 for r in test])
    return SentimentResult(
        seed=seed,
        train_reviews=len(train),
        test_reviews=len(test),
        classifier_auc=auc(model.scores([r[1] for r in test]), truth),
        word_count_baseline_auc=auc(baseline, truth),
        rating_auc=auc(np.array([r[2] for r in test], dtype=float), truth),
    )
