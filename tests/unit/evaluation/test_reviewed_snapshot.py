"""The ranking ablation's training snapshot holds only the reviews a shop would have at its end."""

from datetime import UTC, datetime

import numpy as np

from ml.snapshot import REVIEW
from tests.unit.evaluation.test_protocols_and_baselines import interactions
from tools.evaluation.datasets import Reviews
from tools.evaluation.protocols import retail_temporal
from tools.evaluation.ranking import reviewed_snapshot


def _at(day: str) -> float:
    return datetime.fromisoformat(f"{day} 12:00:00").replace(tzinfo=UTC).timestamp()


def test_reviews_of_training_purchases_written_before_its_end_are_kept_and_scored() -> None:
    split = retail_temporal(interactions())
    reviews = Reviews(
        users=np.array(["u1", "u2", "u1", "u3"]),
        items=np.array(["a", "c", "c", "a"]),
        timestamps=np.array([_at("2011-10-03"), _at("2011-10-05"), _at("2011-10-04"), _at("2011-10-05")]),
        ratings=np.array([5, 0, 4, 2]),
        texts=np.array(["", "Lovely", "Great", "Awful"]),
    )
    snapshot = reviewed_snapshot(split, [], reviews)
    kept = snapshot.types == REVIEW
    # u1 bought c after the cut (held out) and u3 never bought a: only two reviews are the shop's
    assert sorted(zip(snapshot.user_ids[kept].tolist(), snapshot.item_ids[kept].tolist(), strict=True)) == [
        ("u1", "a"),
        ("u2", "c"),
    ]
    assert snapshot.sentiments[kept].tolist() == [1.0, 1.0]  # 5 stars; an unrated "Lovely"
    assert len(snapshot.interactions()[0]) == split.train.nnz  # reviews are not purchases
    assert reviewed_snapshot(split, [], None).event_count == split.train.nnz
