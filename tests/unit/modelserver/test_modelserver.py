"""The local model server over TF Serving's gRPC API, with real SavedModels."""

import asyncio
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from services.modelserver.app import build
from services.modelserver.batching import Batcher
from services.modelserver.servicer import MAX_INPUT_ELEMENTS
from tests.support import ServerThread, make_settings

ITEMS = 6


class TopItems(tf.Module):
    """history (batch x items) -> the 3 best-scored items and their scores."""

    def __init__(self, weights: np.ndarray) -> None:
        super().__init__()
        self.weights = tf.Variable(weights.astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, ITEMS], tf.float32, name="history")])
    def serve(self, history):
        top = tf.math.top_k(tf.matmul(history, self.weights), k=3)
        return {"item_indices": top.indices, "scores": top.values}


def save(model_dir: Path, version: int, seed: int) -> Path:
    weights = np.random.default_rng(seed).random((ITEMS, ITEMS))
    module = TopItems(weights)
    staging = model_dir / "toy" / f".staging-{version}"
    tf.saved_model.save(module, str(staging), signatures={"serving_default": module.serve})
    staging.rename(model_dir / "toy" / str(version))
    return model_dir / "toy" / str(version)


def predict_request(history: np.ndarray, **spec) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = spec.get("name", "toy")
    request.inputs["history"].CopyFrom(tf.make_tensor_proto(history.astype(spec.get("dtype", np.float32))))
    return request


@pytest.fixture
def served(tmp_path: Path):
    settings = make_settings(str(tmp_path), RECSYS_MODEL_POLL_S="0.1")
    save(settings.model_dir, 1, seed=1)
    server = ServerThread(build, settings)
    channel = grpc.insecure_channel(server.address)
    yield settings, prediction_service_pb2_grpc.PredictionServiceStub(channel), channel
    channel.close()
    server.stop()


def test_predict_over_grpc_matches_the_savedmodel_in_process(served) -> None:
    settings, stub, _ = served
    history = np.eye(ITEMS)[[0, 3]]
    response = stub.Predict(predict_request(history), timeout=10)
    local = tf.saved_model.load(str(settings.model_dir / "toy" / "1")).signatures["serving_default"](
        history=tf.constant(history, tf.float32)
    )
    assert response.model_spec.version.value == 1
    assert np.array_equal(tf.make_ndarray(response.outputs["item_indices"]), local["item_indices"].numpy())
    assert np.allclose(tf.make_ndarray(response.outputs["scores"]), local["scores"].numpy())


def test_status_and_metadata_as_tf_serving_reports_them(served) -> None:
    _, stub, channel = served
    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
        get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "toy"}), timeout=5
    )
    assert [(s.version, s.state) for s in status.model_version_status] == [
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)
    ]
    metadata = stub.GetModelMetadata(
        get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec={"name": "toy"}, metadata_field=["signature_def"]
        ),
        timeout=5,
    )
    signatures = get_model_metadata_pb2.SignatureDefMap()
    metadata.metadata["signature_def"].Unpack(signatures)
    serving = signatures.signature_def["serving_default"]
    assert set(serving.inputs) == {"history"}
    assert set(serving.outputs) == {"item_indices", "scores"}
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_bad_requests_get_tf_serving_status_codes(served) -> None:
    _, stub, channel = served
    history = np.eye(ITEMS)[[0]]
    cases = [
        (predict_request(history, name="nope"), grpc.StatusCode.NOT_FOUND),
        (predict_request(history, dtype=np.int32), grpc.StatusCode.INVALID_ARGUMENT),
        (predict_request(np.ones((1, ITEMS + 2))), grpc.StatusCode.INVALID_ARGUMENT),
    ]
    # a few bytes naming more rows than the bound, filled by one value: refused before it is built
    huge = predict_request(history)
    huge.inputs["history"].ClearField("tensor_content")
    huge.inputs["history"].float_val.append(1.0)
    huge.inputs["history"].tensor_shape.dim[0].size = MAX_INPUT_ELEMENTS // ITEMS + 1
    with pytest.raises(grpc.RpcError) as raised:
        stub.Predict(huge, timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"more than the {MAX_INPUT_ELEMENTS:,} allowed" in raised.value.details()
    wide = predict_request(history)
    wide.inputs["history"].tensor_shape.dim[1].size = ITEMS + 1
    cases.append((wide, grpc.StatusCode.INVALID_ARGUMENT))
    negative = predict_request(history)
    negative.inputs["history"].tensor_shape.dim[0].size = -3
    cases.append((negative, grpc.StatusCode.INVALID_ARGUMENT))
    wrong_input = predict_pb2.PredictRequest()
    wrong_input.model_spec.name = "toy"
    wrong_input.inputs["story"].CopyFrom(tf.make_tensor_proto(history.astype(np.float32)))
    cases.append((wrong_input, grpc.StatusCode.INVALID_ARGUMENT))
    for request, code in cases:
        with pytest.raises(grpc.RpcError) as raised:
            stub.Predict(request, timeout=5)
        assert raised.value.code() == code, raised.value.details()
    with pytest.raises(grpc.RpcError) as raised:
        model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "nope"}), timeout=5
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_version_switch_under_concurrent_predicts_fails_none(served) -> None:
    settings, stub, _ = served
    stop = threading.Event()
    versions: list[int] = []
    errors: list[Exception] = []

    def hammer() -> None:
        while not stop.is_set():
            try:
                versions.append(
                    stub.Predict(predict_request(np.eye(ITEMS)[[1]]), timeout=10).model_spec.version.value
                )
            except grpc.RpcError as error:
                errors.append(error)

    with ThreadPoolExecutor(max_workers=6) as pool:
        for _ in range(6):
            pool.submit(hammer)
        threading.Event().wait(0.3)
        save(settings.model_dir, 2, seed=2)
        for _ in range(100):
            if versions and versions[-1] == 2:
                break
            threading.Event().wait(0.05)
        threading.Event().wait(0.3)
        stop.set()
    assert errors == []
    assert versions[0] == 1 and versions[-1] == 2
    assert set(versions) == {1, 2}


def test_a_broken_version_is_reported_and_the_good_one_kept(served) -> None:
    settings, stub, channel = served
    broken = settings.model_dir / "toy" / "5"
    shutil.copytree(settings.model_dir / "toy" / "1", broken)
    (broken / "saved_model.pb").write_bytes(b"not a saved model")
    threading.Event().wait(0.5)
    assert stub.Predict(predict_request(np.eye(ITEMS)[[0]]), timeout=5).model_spec.version.value == 1
    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
        get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "toy"}), timeout=5
    )
    states = {s.version: s.state for s in status.model_version_status}
    assert states == {
        1: get_model_status_pb2.ModelVersionStatus.AVAILABLE,
        5: get_model_status_pb2.ModelVersionStatus.END,
    }


def test_health_waits_for_the_configured_models(tmp_path: Path) -> None:
    settings = make_settings(str(tmp_path), RECSYS_MODELSERVER_MODELS="toy")
    server = ServerThread.__new__(ServerThread)
    # Start without waiting for readiness: no version of "toy" exists yet.
    from shared.server import RunningServer

    server.loop = asyncio.new_event_loop()
    server.thread = threading.Thread(target=server.loop.run_forever, daemon=True)
    server.thread.start()
    server.settings = settings

    async def start():
        running = RunningServer(build(settings), settings, 0)
        await running.start()
        return running

    server.running = server.run(start())
    try:
        with grpc.insecure_channel(server.address) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check
            assert (
                check(health_pb2.HealthCheckRequest(), timeout=5).status
                == health_pb2.HealthCheckResponse.NOT_SERVING
            )
    finally:
        server.stop()


def test_concurrent_calls_are_batched_and_split_back() -> None:
    calls: list[int] = []

    def compute(tensors):
        calls.append(len(tensors["x"]))
        return {"double": tensors["x"] * 2, "count": np.array(len(tensors["x"]))}

    async def run():
        batcher = Batcher(max_batch=64, max_wait_s=0.01)
        parts = [np.full((n, 2), n, dtype=np.float32) for n in (1, 2, 3)]
        return await asyncio.gather(*(batcher.run(("m", 1, "s"), compute, {"x": p}) for p in parts))

    results = asyncio.run(run())
    assert calls == [6]
    assert [r["double"].tolist() for r in results] == [[[2, 2]], [[4, 4]] * 2, [[6, 6]] * 3]
