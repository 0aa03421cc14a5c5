"""The candidate GAN: it learns shoppers' tastes on simulator data, and its SavedModel serves
the same top N through the local model server as in process."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc

from services.candidates.gan import GanConfig, recall_at
from services.candidates.gan_export import WARMUP_FILE, item_ids
from services.candidates.gan_train import fit_gan, hold_out
from services.modelserver.app import build as build_modelserver
from shared.models import publish
from shared.synth.sessions import CLICK, PURCHASE, shopper_events
from shared.synth.shop import make_shop
from shared.synth.shoppers import shopper
from shared.synth.writer import START
from tests.support import ServerThread, make_settings, purchases_snapshot


def simulated(shoppers: int, items: int, seed: int = 5) -> tuple[list[str], list[str], np.ndarray]:
    """Users, items and the clicked-or-bought matrix of simulated shoppers."""
    shop = make_shop(items, seed)
    item_ids = [str(i) for i in shop.item_ids]
    position = {item: i for i, item in enumerate(item_ids)}
    users, rows = [], []
    for number in range(shoppers):
        person = shopper(seed, number)
        row = np.zeros(items, np.float32)
        for event in shopper_events(seed, person, shop, START, 30):
            if event.type in (CLICK, PURCHASE):
                row[position[event.item_id]] = 1.0
        if row.any():
            users.append(person.user_id)
            rows.append(row)
    return users, item_ids, np.array(rows)


def snapshot_of(users: list[str], items: list[str], matrix: np.ndarray):
    return purchases_snapshot(
        {
            user: [items[i] for i in np.flatnonzero(matrix[u])]
            for u, user in enumerate(users)
            if matrix[u].any()
        }
    )


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
    trained = fit_gan(snapshot_of(users, items, train), GanConfig(seed=7))
    gan = recall_at(aligned_scores(trained, items, train), train, test, 20)
    popular = recall_at(np.tile(train.sum(axis=0), (len(train), 1)), train, test, 20)
    assert trained.epochs >= 2
    assert gan > 1.15 * popular, (gan, popular)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    users, items, matrix = simulated(shoppers=200, items=120)
    trained = fit_gan(snapshot_of(users, items, matrix), GanConfig(max_epochs=2, min_epochs=1, top_n=10))
    settings = make_settings(str(tmp_path_factory.mktemp("gan")), RECSYS_MODEL_POLL_S="0.2")
    version = publish(settings.model_dir, "candidate_gan", trained.save)
    return settings, settings.model_dir / "candidate_gan" / str(version), trained


def test_export_writes_the_serving_layout(exported) -> None:
    _, folder, trained = exported
    assert (folder / "saved_model.pb").exists()
    assert item_ids(folder) == trained.item_ids.tolist()
    record = next(iter(tf.data.TFRecordDataset(str(folder / "assets.extra" / WARMUP_FILE))))
    log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
    assert log.predict_log.request.model_spec.name == "candidate_gan"


def test_model_server_returns_the_same_top_n_as_the_savedmodel_in_process(exported) -> None:
    settings, folder, _ = exported
    history = np.array([[0, 5, 7, -1], [3, -1, -1, -1]], np.int32)
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
    served = tf.make_ndarray(response.outputs["item_indices"])
    assert np.array_equal(served, local["item_indices"].numpy())
    assert np.allclose(tf.make_ndarray(response.outputs["scores"]), local["scores"].numpy())
    assert served.shape == (2, 10)
    assert not {0, 5, 7} & set(served[0].tolist())  # the shopper's own items are never returned
    assert 3 not in served[1].tolist()
    realism = tf.make_ndarray(response.outputs["realism"])
    assert realism.shape == (2,) and np.all((realism >= 0) & (realism <= 1))
