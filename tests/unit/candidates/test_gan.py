"""The candidate GAN: it learns shoppers' tastes on simulator data, and its SavedModel serves
the same top N through the local model server as in process."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from scipy import sparse
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc

from ml.gan.export import WARMUP_FILE
from ml.gan.model import CFGAN, GanConfig
from ml.gan.train import (
    FirstInteractions,
    first_interactions,
    fit_gan,
    fit_gan_on_carve,
    held_out_recall_of,
    hold_out_recent,
    refit_affordable,
    refit_gan,
    stopping_rows,
)
from ml.metrics import held_out_recall
from services.modelserver.app import build as build_modelserver
from tests.support import ServerThread
from tests.unit.candidates.simulated import hold_out, simulated, snapshot_of


def aligned_scores(trained, items: list[str], history: np.ndarray) -> np.ndarray:
    """The GAN's scores in the column order of `items` (-1 where the GAN never saw an item)."""
    columns = {item: i for i, item in enumerate(trained.item_ids.tolist())}
    inputs = np.zeros((len(history), len(columns)), np.float32)
    for j, item in enumerate(items):
        if item in columns:
            inputs[:, columns[item]] = history[:, j]
    generated = trained.gan.scores(inputs)
    scores = np.full(history.shape, -1.0, np.float32)
    for j, item in enumerate(items):
        if item in columns:
            scores[:, j] = generated[:, columns[item]]
    return scores


def test_the_gan_beats_most_popular_on_held_out_simulated_purchases() -> None:
    users, items, matrix = simulated(shoppers=800, items=300)
    train, test = hold_out(matrix, 0.2, seed=99)
    trained = fit_gan(snapshot_of(users, items, train), GanConfig(seed=7, batch_size=32))
    gan = held_out_recall(aligned_scores(trained, items, train), train, test, 20).mean()
    popular = held_out_recall(np.tile(train.sum(axis=0), (len(train), 1)), train, test, 20).mean()
    assert trained.epochs >= 2
    assert gan > 1.15 * popular, (gan, popular)


def test_export_writes_the_serving_layout(exported) -> None:
    _, folder, _ = exported
    assert (folder / "saved_model.pb").exists()
    signature = tf.saved_model.load(str(folder)).signatures["serving_default"]
    assert signature.structured_input_signature[1]["history"].dtype == tf.string
    assert set(signature.structured_outputs) == {"item_ids", "scores", "realism"}
    record = next(iter(tf.data.TFRecordDataset(str(folder / "assets.extra" / WARMUP_FILE))))
    log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
    assert log.predict_log.request.model_spec.name == "candidate_gan"


def test_model_server_returns_the_same_top_n_as_the_savedmodel_in_process(exported) -> None:
    settings, folder, trained = exported
    known = trained.item_ids.tolist()
    history = np.array([[known[0], known[5], known[7], ""], [known[3], "never-seen", "", ""]], object)
    local = tf.saved_model.load(str(folder)).signatures["serving_default"](history=tf.constant(history))
    server = ServerThread(build_modelserver, settings)
    try:
        with grpc.insecure_channel(server.address) as channel:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "candidate_gan"
            request.inputs["history"].CopyFrom(tf.make_tensor_proto(history))
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=10)
    finally:
        server.stop()
    served = tf.make_ndarray(response.outputs["item_ids"])
    assert np.array_equal(served, local["item_ids"].numpy())
    assert np.allclose(tf.make_ndarray(response.outputs["scores"]), local["scores"].numpy())
    assert served.shape == (2, 30)
    assert not {known[0], known[5], known[7]} & {i.decode() for i in served[0]}  # own items never returned
    assert known[3] not in {i.decode() for i in served[1]}
    realism = tf.make_ndarray(response.outputs["realism"])
    assert realism.shape == (2,) and np.all((realism >= 0) & (realism <= 1))


def test_validation_holds_out_what_shoppers_first_bought_after_one_moment() -> None:
    inf = np.inf
    first = np.array(
        [
            [3.0, 1.0, 2.0, inf, 9.0],
            [inf, 8.0, inf, inf, inf],
            [4.0, inf, 7.0, inf, 5.0],
            [10.0, inf, inf, 6.0, inf],
        ]
    )
    rows, columns = np.nonzero(np.isfinite(first))
    pairs = FirstInteractions(
        np.array(list("abcde")), np.array(["u0", "u1", "u2", "u3"]), rows, columns, first[rows, columns]
    )
    kept, held = hold_out_recent(pairs, 0.4)  # 10 first purchases: the latest 4 are at 7 and later
    kept, held = kept.toarray(), held.toarray()
    assert kept.tolist() == [[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 1], [0, 0, 0, 1, 0]]
    # user 1 bought nothing before the cutoff: nothing to predict from, not validated
    assert held.tolist() == [[0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 1, 0, 0], [1, 0, 0, 0, 0]]


def test_the_carve_gan_ends_at_its_best_epoch_and_the_refit_trains_that_many_on_everything() -> None:
    users, items, matrix = simulated(shoppers=300, items=100)
    train, test = hold_out(matrix, 0.2, seed=3)
    fit = snapshot_of(users, items, train)
    held = {
        user: {items[j] for j in np.flatnonzero(test[u])} for u, user in enumerate(users) if test[u].any()
    }
    recalls: list[float] = []
    config = GanConfig(max_epochs=6, min_epochs=6, hidden=32, seed=7)
    chosen = fit_gan_on_carve(fit, held, config, on_epoch=lambda *args: recalls.append(args[4]))

    assert len(recalls) == 6 and chosen.epochs == int(np.argmax(recalls)) + 1
    first = first_interactions(fit)
    row = {user: r for r, user in enumerate(first.user_ids.tolist())}
    column = {item: c for c, item in enumerate(first.item_ids.tolist())}
    expected = np.zeros(first.shape, np.float32)
    for user, bought in held.items():
        for item in bought:
            if user in row and item in column:
                expected[row[user], column[item]] = 1.0
    rescored = held_out_recall_of(chosen.gan, first.matrix(), sparse.csr_matrix(expected), 20)
    assert rescored == pytest.approx(max(recalls)) and chosen.validation_recall == max(recalls)

    everything = snapshot_of(users, items, matrix)
    served = refit_gan(everything, chosen, config)
    assert served.epochs == chosen.epochs and len(served.item_ids) > len(chosen.item_ids) - 5
    assert served.pairs == int((matrix > 0).sum()) and served.seconds > chosen.seconds
    one_epoch_s = chosen.seconds_per_epoch * served.pairs / chosen.pairs
    assert refit_affordable(everything, chosen, one_epoch_s * 1.01)
    assert not refit_affordable(everything, chosen, one_epoch_s * 0.99)


def test_early_stopping_reads_a_fixed_sample_of_the_shoppers_with_held_items(monkeypatch) -> None:
    held = sparse.csr_matrix(np.eye(40, 10, k=-30, dtype=np.float32))  # rows 30-39 hold one item each
    assert stopping_rows(held, seed=1).tolist() == list(range(30, 40))
    monkeypatch.setattr("ml.gan.train.STOPPING_SHOPPERS", 4)
    sample = stopping_rows(held, seed=1)
    assert len(sample) == 4 and set(sample) <= set(range(30, 40)) and sorted(sample) == sample.tolist()
    assert sample.tolist() == stopping_rows(held, seed=1).tolist()


def test_mixed_precision_computes_in_float16_and_still_learns() -> None:
    users, items, matrix = simulated(shoppers=120, items=60)
    config = GanConfig(max_epochs=3, min_epochs=1, hidden=32, mixed_precision=True)
    trained = fit_gan(snapshot_of(users, items, matrix), config)
    hidden = trained.gan.generator.layers[-2]
    assert hidden.compute_dtype == "float16" and hidden.variable_dtype == "float32"
    assert trained.gan.generator.output.dtype == "float32"
    assert np.isfinite(trained.gan.scores(np.zeros((5, trained.gan.items), np.float32))).all()
    assert trained.validation_recall > 0
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # the policy does not leak


MIRRORED = """
import tensorflow as tf
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)
from ml.gan.model import CFGAN, GanConfig
from ml.gan.train import fit_gan
from tests.unit.candidates.simulated import hold_out, simulated, snapshot_of
users, items, matrix = simulated(shoppers=120, items=60)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
trained = fit_gan(snapshot_of(users, items, matrix), GanConfig(max_epochs=3, min_epochs=1, hidden=32), strategy=strategy)
print("replicas", trained.replicas, "recall", trained.validation_recall)
"""


def test_mirrored_strategy_trains_one_model_on_two_replicas() -> None:
    """Two logical CPU devices stand in for two GPUs (devices must be set before TensorFlow starts)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    replicas, recall = done.stdout.split()[1], float(done.stdout.split()[3])
    assert replicas == "2" and recall > 0


def test_without_its_adversarial_term_the_generator_ignores_the_discriminator() -> None:
    """At adversarial weight 0 the generator learns the same whatever the discriminator thinks (a
    denoising autoencoder, the served ablation); at 1 the discriminator moves it."""
    history = tf.constant((np.random.default_rng(0).random((16, 30)) < 0.2).astype(np.float32))

    def generator_after_a_step(adversarial: float, verdict_bias: float) -> list[np.ndarray]:
        gan = CFGAN(30, GanConfig(hidden=8, noise=2, adversarial=adversarial, seed=3))
        real = gan.discriminator.get_layer("real")
        real.bias.assign(tf.fill(real.bias.shape, verdict_bias))
        tf.random.set_seed(5)
        gan.train_step(history)
        return [w.numpy() for w in gan.generator.trainable_variables]

    def same(first: list[np.ndarray], second: list[np.ndarray]) -> bool:
        return all(np.allclose(a, b) for a, b in zip(first, second, strict=True))

    assert same(generator_after_a_step(0.0, -4.0), generator_after_a_step(0.0, 4.0))
    assert not same(generator_after_a_step(1.0, -4.0), generator_after_a_step(1.0, 4.0))
