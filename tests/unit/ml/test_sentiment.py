"""The review sentiment classifier: taught by ratings, it orders texts by tone, scores the same in
NumPy as it was trained, and says when the ratings are too few to learn from."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from ml.cooccurrence import fit_cooccurrence
from ml.ranking.features import COLUMN, ItemTable, RankCandidate, Shopper, candidate_features, item_table
from ml.sentiment import SentimentModel, TooFewReviews, scored_reviews, terms, weak_labels
from ml.sentiment_train import fit_sentiment
from ml.snapshot import PURCHASE, REVIEW, Snapshot
from tests.support import purchases_snapshot
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


def _reviewed_shop() -> Snapshot:
    """Two purchases, three reviews of "mug" (rated 5, unrated and warm, unrated and silent) and
    one rated review of "tea" (1 star)."""
    snapshot = purchases_snapshot({"u1": ["mug", "tea"]})
    types = np.array([PURCHASE, PURCHASE, REVIEW, REVIEW, REVIEW, REVIEW], dtype=np.int8)
    return dataclasses.replace(
        snapshot,
        user_ids=np.array(["u1"] * 6),
        item_ids=np.array(["mug", "tea", "mug", "mug", "mug", "tea"]),
        types=types,
        timestamps=np.arange(6, dtype=np.float64),
        quantities=np.ones(6, dtype=np.int32),
        ratings=np.array([0, 0, 5, 0, 0, 1]),
        review_rows=np.array([3, 4]),
        review_texts=np.array(["Lovely, great mug", "It arrived on Tuesday"]),
    )


def test_reviews_are_scored_by_rating_else_by_text_and_other_events_have_none() -> None:
    scored = scored_reviews(_reviewed_shop(), None).sentiments
    assert scored[2] == 1.0 and scored[3] == 1.0 and scored[5] == -1.0  # 5 stars; two opinion words; 1 star
    assert np.isnan(scored[[0, 1, 4]]).all()  # purchases, and a text without an opinion
    texts, ratings, _ = _reviews(600)
    model = fit_sentiment(texts, ratings)
    by_model = scored_reviews(_reviewed_shop(), model).sentiments
    assert by_model[3] == pytest.approx(model.scores(["Lovely, great mug"])[0], abs=1e-6)
    assert by_model[2] == 1.0  # a rating is what the shopper said: the text model does not override it
    later = scored_reviews(_reviewed_shop(), None).events_where(np.arange(6) >= 3).sentiments
    assert later[0] == 1.0 and np.isnan(later[1]) and later[2] == -1.0  # sliced with the events


def test_the_ranker_reads_each_items_reviews_shrunk_towards_neutral() -> None:
    snapshot = scored_reviews(_reviewed_shop(), None)
    table = item_table(snapshot, fit_cooccurrence(snapshot), 0.0)
    candidates = [RankCandidate("mug"), RankCandidate("tea"), RankCandidate("unknown")]
    matrix = candidate_features(table, Shopper([]), candidates).matrix
    sentiment, reviews = matrix[:, COLUMN["review_sentiment"]], matrix[:, COLUMN["reviews"]]
    assert sentiment.tolist() == pytest.approx([2 / 3, -1 / 2, 0.0])  # sum / (reviews + 1)
    assert reviews.tolist() == pytest.approx([np.log1p(2), np.log1p(1), 0.0])


def test_an_item_table_saved_before_reviews_were_read_loads_with_none(tmp_path: Path) -> None:
    snapshot = purchases_snapshot({"u1": ["mug", "tea"]})
    table = item_table(snapshot, fit_cooccurrence(snapshot), 0.0)
    table.save(tmp_path)
    with np.load(tmp_path / "items.npz") as saved:
        older = {name: saved[name] for name in saved.files if name not in ("review_sentiment", "reviews")}
    np.savez(tmp_path / "items.npz", **older)
    loaded = ItemTable.load(tmp_path)
    assert loaded.reviews.tolist() == [0.0, 0.0] and loaded.review_sentiment.tolist() == [0.0, 0.0]
