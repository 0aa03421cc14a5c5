"""Training the review sentiment classifier, published only where it beats the opinion-word rule.

The rated reviews with a text are split by a hash of their row: the classifier learns from four
fifths and both scorers are judged on the rest by how well they separate 4-5 star reviews from
1-3 star ones (AUC). The classifier is published only when it separates them better than the
opinion-word count the profile service uses without it; otherwise nothing is published and the
portrait keeps the rule.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ml.metrics import auc
from ml.sentiment import SentimentModel, TooFewReviews, check_labels, opinion_words, weak_labels
from ml.snapshot import Snapshot
from pipelines.progress import console

HELD_OUT_SHARE = 0.2


def _held_out(row: int) -> bool:
    return hashlib.sha256(str(row).encode()).digest()[0] < 256 * HELD_OUT_SHARE


def fit_review_sentiment(snapshot: Snapshot) -> SentimentModel | None:
    texts, ratings = snapshot.reviews()
    labels = weak_labels(ratings)
    try:
        check_labels(labels)
    except TooFewReviews as error:
        console.print(f"review sentiment: not trained: {error}")
        return None
    from ml.sentiment_train import fit_sentiment  # loads TensorFlow

    held = np.array([_held_out(n) for n in range(len(texts))])
    fitted = [t for t, h in zip(texts, held.tolist(), strict=True) if not h]
    model = fit_sentiment(fitted, [r for r, h in zip(ratings, held.tolist(), strict=True) if not h])
    judged = held & (labels >= 0)
    judged_texts = [t for t, keep in zip(texts, judged.tolist(), strict=True) if keep]
    truth = labels[judged] == 1
    classifier = auc(model.scores(judged_texts), truth)
    rule = auc(np.array([opinion_words(t) or 0.0 for t in judged_texts]), truth)
    console.print(
        f"review sentiment on {len(judged_texts):,} held-out rated reviews: classifier AUC {classifier:.3f}, "
        f"opinion-word rule {rule:.3f}"
    )
    if not classifier > rule:
        console.print("review sentiment: not published (it does not beat the opinion-word rule here)")
        return None
    return model
