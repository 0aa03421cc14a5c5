"""The ranking service's NumPy network scores and explains as the TensorFlow network it was trained as."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from ml.ranking.config import RankerConfig
from ml.ranking.ensemble import RankerEnsemble
from ml.ranking.features import FEATURES, GROUPS
from ml.ranking.model import RankerNet
from ml.ranking.serving import META, load_serving, save_weights


def _net(config: RankerConfig, items: int = 30) -> RankerNet:
    rng = np.random.default_rng(3)
    features = len(FEATURES)
    net = RankerNet(items, config, rng.normal(size=features), rng.uniform(0.5, 2.0, size=features))
    weights = net.weights()
    # trained-looking weights: vectors and biases far from their zero start
    net.assign(
        {**weights, "vec": rng.normal(0, 0.5, weights["vec"].shape), "bias": rng.normal(size=items + 1)}
    )
    return net


@pytest.mark.parametrize(
    "config",
    [RankerConfig(dim=8, hidden=(16, 8)), RankerConfig(dim=4, hidden=(12,), removed=("item", "profile"))],
)
def test_numpy_scores_and_gradients_equal_the_tensorflow_network(config: RankerConfig, tmp_path) -> None:
    net = _net(config)
    rng = np.random.default_rng(5)
    features = rng.normal(size=(40, len(FEATURES))).astype(np.float32)
    items = rng.integers(0, 31, size=40)
    history = np.array([0, 3, 7, 7, 12])
    z = net.standardize(tf.constant(features))
    with tf.GradientTape() as tape:
        tape.watch(z)
        parts = net.parts(z, tf.constant(items), tf.constant(history))
        total = tf.add_n(list(parts.values()))
    expected_gradient = tape.gradient(total, z).numpy()

    save_weights(net.weights(), config, tmp_path, {})
    served, meta = load_serving(tmp_path)
    out = served.outputs(features, items, history)
    np.testing.assert_allclose(out["total"], total.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["gradient"], expected_gradient, rtol=1e-5, atol=1e-5)
    for name, part in parts.items():
        np.testing.assert_allclose(out[name], part.numpy(), rtol=1e-5, atol=1e-5)
    assert meta["items"] == 30
    assert sorted(out) == sorted([*parts, "total", "z", "gradient"])


def test_a_list_without_known_history_scores_without_the_latent_part() -> None:
    served = _net(RankerConfig(dim=8, hidden=(16,))).serving()
    features = np.zeros((3, len(FEATURES)), np.float32)
    out = served.outputs(features, np.array([1, 2, 0]), np.array([0, 0]))
    assert not out["latent_factors"].any()
    assert out["item_bias"][2] == 0.0  # the unknown item has no bias


def test_an_ensemble_serves_the_mean_of_its_networks_scores_and_gradients(tmp_path) -> None:
    config = RankerConfig(dim=4, hidden=(12, 6), members=3)
    first = _net(config)
    members = [first]
    for seed in (1, 2):
        net = RankerNet(30, dataclasses.replace(config, seed=seed), first.mean.numpy(), first.std.numpy())
        net.assign({**net.weights(), "bias": np.random.default_rng(seed).normal(size=31)})
        members.append(net)
    ensemble = RankerEnsemble(members)
    rng = np.random.default_rng(7)
    features = rng.normal(size=(25, len(FEATURES))).astype(np.float32)
    items = rng.integers(0, 31, size=25)
    history = np.array([2, 5, 0])
    z = first.standardize(tf.constant(features))
    with tf.GradientTape() as tape:
        tape.watch(z)
        total = tf.add_n([tf.add_n(list(m.parts(z, items, history).values())) for m in members]) / 3.0
    expected_gradient = tape.gradient(total, z).numpy()

    ensemble.save(tmp_path, {})
    served, meta = load_serving(tmp_path)
    out = served.outputs(features, items, history)
    np.testing.assert_allclose(out["total"], total.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        out["total"], ensemble.scores(features, items, history).numpy(), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(out["gradient"], expected_gradient, rtol=1e-5, atol=1e-5)
    assert meta["members"] == 3 and len(served.members) == 3 and meta["items"] == 30
    alone = members[1].serving().outputs(features, items, history)["total"]
    assert not np.allclose(out["total"], alone)  # the members differ: the mean is not any one of them


def test_a_ranker_trained_before_a_feature_was_added_keeps_serving_on_its_own_columns(tmp_path) -> None:
    config = RankerConfig(dim=4, hidden=(8,))
    older = tuple(name for name in FEATURES if name not in GROUPS["sentiment"])
    rng = np.random.default_rng(11)
    net = RankerNet(30, config, rng.normal(size=len(older)), rng.uniform(0.5, 2.0, size=len(older)), older)
    save_weights(net.weights(), config, tmp_path, {})
    meta = json.loads((tmp_path / META).read_text())
    (tmp_path / META).write_text(json.dumps({**meta, "features": list(older)}))

    served, _ = load_serving(tmp_path)
    wide = rng.normal(size=(12, len(FEATURES))).astype(np.float32)
    columns = [FEATURES.index(name) for name in older]
    items, history = rng.integers(0, 31, size=12), np.array([1, 4])
    expected = tf.add_n(
        list(net.parts(net.standardize(tf.constant(wide[:, columns])), items, history).values())
    )
    np.testing.assert_allclose(
        served.outputs(wide, items, history)["total"], expected.numpy(), rtol=1e-5, atol=1e-5
    )
    explained = served.explain(wide, items, history, top=3, best=4)
    assert {name for found in explained.contributions.values() for name, _ in found} <= {
        *older,
        "latent_factors",
        "item_bias",
    }

    (tmp_path / META).write_text(json.dumps({**meta, "features": [*older, "a_feature_from_the_future"]}))
    with pytest.raises(ValueError, match="a_feature_from_the_future"):
        load_serving(tmp_path)
