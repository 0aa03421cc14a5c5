"""The review sentiment classifier: taught by ratings, it orders texts by tone, scores the same in
NumPy as it was trained, and says when the ratings are too few to learn from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.sentiment import SentimentModel, TooFewReviews, terms, weak_labels
from ml.sentiment_train import fit_sentiment
from tools.synth.reviews import rating_of, review_text


def _reviews(count: int) -> tuple[list[str], list[int], np.ndarray]:
    rng = np.random.default_rng(0)
    satisfaction = rng.normal(2.5, 1.2, size=count)
    texts = [review_text(0, n, n, float(s)) for n, s in enumerate(satisfaction)]
    return texts, [rating_of(float(s)) for s in satisfaction], satisfaction


def test_taught_by_ratings_it_orders_unseen_reviews_by_tone(tmp_path: Path) -> None:
    texts, ratings, _ = _reviews(1500)
    model = fit_sentiment(texts[:1000], ratings[:1000])
    glad, sad = model.scores(
        ["Absolutely love it! Brilliant, buying two more.", "Broke after one use. Awful quality."]
    )
    assert glad > 0.5 and sad < -0.5
    _, _, satisfaction = _reviews(1500)
    scores = model.scores(texts[1000:])
    assert np.corrcoef(scores, satisfaction[1000:])[0, 1] > 0.6
    model.save(tmp_path)
    assert np.allclose(SentimentModel.load(tmp_path).scores(texts[1000:1010]), scores[:10])


def test_terms_are_words_and_word_pairs() -> None:
    assert terms("Love it, truly!") == ["love", "it", "truly", "love it", "it truly"]


def test_weak_labels_and_too_few_ratings() -> None:
    assert weak_labels([5, 4, 3, 1, 0]).tolist() == [1, 1, 0, 0, -1]
    with pytest.raises(TooFewReviews, match="at least 20 of each"):
        fit_sentiment(["Love it"] * 50, [5] * 50)
