"""Splits and baselines on a tiny purchase log whose answers are known."""

import numpy as np
import pytest

from ml.baselines import EASE, ItemKNN, MostPopular
from tools.evaluation.offline import rank
from tools.evaluation.protocols import Interactions, leave_last_out, random_holdout, retail_temporal

LOG = [
    ("u1", "a", "2011-10-01 10:00:00"),
    ("u1", "b", "2011-10-02 10:00:00"),
    ("u2", "a", "2011-10-03 10:00:00"),
    ("u2", "b", "2011-10-04 10:00:00"),
    ("u2", "c", "2011-10-05 10:00:00"),
    ("u3", "c", "2011-10-06 10:00:00"),
    ("u1", "c", "2011-11-02 10:00:00"),  # new item for u1 after the cutoff: test
    ("u1", "a", "2011-11-03 10:00:00"),  # bought before: not a test item
    ("u3", "z", "2011-11-04 10:00:00"),  # unknown in training: not evaluated
    ("u9", "a", "2011-11-05 10:00:00"),  # unknown user: not evaluated
]


def interactions() -> Interactions:
    users, items, times = (np.array(column) for column in zip(*LOG, strict=True))
    return Interactions(users, items, times)


def test_retail_temporal_keeps_only_new_known_items_of_known_users() -> None:
    split = retail_temporal(interactions())
    assert list(split.user_ids) == ["u1", "u2", "u3"]
    assert list(split.item_ids) == ["a", "b", "c"]
    assert split.stats == {
        "train_users": 3,
        "train_items": 3,
        "train_pairs": 6,
        "test_pairs": 1,
        "test_users": 1,
    }
    assert split.test == {0: {2}}


def test_leave_last_out_holds_each_users_newest_item() -> None:
    split = leave_last_out(interactions())
    held = {split.user_ids[u]: {split.item_ids[i] for i in items} for u, items in split.test.items()}
    assert held["u1"] == {"c"}
    assert held["u2"] == {"c"}
    assert "u3" not in held  # u3's newest item, z, is unknown to the training part


def test_random_holdout_is_seeded_and_disjoint_from_training() -> None:
    first, again = random_holdout(interactions(), 0.5, seed=3), random_holdout(interactions(), 0.5, seed=3)
    assert first.test == again.test
    for user, items in first.test.items():
        assert all(first.train[user, item] == 0 for item in items)


def test_baselines_rank_unseen_items_in_the_expected_order() -> None:
    split = retail_temporal(interactions())
    popular = rank(MostPopular().fit(split.train), split, 1)
    assert popular[0].tolist() == [2]  # u1 has a and b: c is all that is left
    # c shares one of two buyers with a and with b: cosine 1/2 each. With k=1, c keeps one
    # neighbour; u1 bought both a and b, so c scores exactly that one similarity.
    knn = ItemKNN(k=1).fit(split.train)
    assert knn.scores(split.train, np.array([0]))[0, 2] == pytest.approx(0.5)
    assert (knn.similarity[:, 2] != 0).sum() == 1
    ease = EASE(l2=1.0).fit(split.train)
    assert np.allclose(np.diag(ease.weights), 0.0)
    gram = (split.train.T @ split.train).toarray() + np.eye(3)
    inverse = np.linalg.inv(gram)
    assert ease.weights[0, 1] == pytest.approx(-inverse[0, 1] / inverse[1, 1])
