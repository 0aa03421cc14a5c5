"""Client of TensorFlow Serving's gRPC API, through the `tensorflow-serving-api` stubs.

The same code talks to the real TF Serving in Kubernetes and to the local model
server: Predict and GetModelStatus with the suite's default deadline, keepalive,
tracing, and retries on UNAVAILABLE (TF Serving's read-only methods are safe to
retry, though its protos do not declare it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from shared.clients import open_channel

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
READ_ONLY_METHODS = (
    (PREDICTION_SERVICE, "Predict"),
    (PREDICTION_SERVICE, "GetModelMetadata"),
    (MODEL_SERVICE, "GetModelStatus"),
)
AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE


@dataclass(frozen=True)
class Prediction:
    """A Predict answer: the signature's outputs as arrays (strings as `str`) and the version."""

    outputs: dict[str, np.ndarray]
    version: int


def _array(proto: object) -> np.ndarray:
    value = tf.make_ndarray(proto)
    if value.dtype == object:
        return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(value)
    return value


class ModelServerClient:
    """Predict and model status of one named model on a TF Serving endpoint."""

    def __init__(
        self, address: str, model: str, deadline_s: float, signature: str = "serving_default"
    ) -> None:
        self.address = address
        self.model = model
        self.signature = signature
        self.deadline_s = deadline_s
        self._channel: grpc.aio.Channel | None = None

    def _open(self) -> grpc.aio.Channel:
        """The channel, opened on first use: inside the event loop that will use it."""
        if self._channel is None:
            self._channel = open_channel(self.address, (), self.deadline_s, also_retry=READ_ONLY_METHODS)
        return self._channel

    async def predict(self, inputs: Mapping[str, np.ndarray], timeout: float | None = None) -> Prediction:
        """Raises grpc.aio.AioRpcError as TF Serving answers (NOT_FOUND, INVALID_ARGUMENT...)."""
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=self.model, signature_name=self.signature)
        )
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        stub = prediction_service_pb2_grpc.PredictionServiceStub(self._open())
        response = await stub.Predict(request, timeout=timeout)
        return Prediction(
            {name: _array(tensor) for name, tensor in response.outputs.items()},
            response.model_spec.version.value,
        )

    async def available_version(self) -> int | None:
        """The newest AVAILABLE version, or None while there is none (unknown model, still loading)."""
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name=self.model))
        try:
            response = await model_service_pb2_grpc.ModelServiceStub(self._open()).GetModelStatus(request)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        ready = [status.version for status in response.model_version_status if status.state == AVAILABLE]
        return max(ready) if ready else None

    async def wait_available(self, poll_s: float, timeout_s: float) -> int:
        """Polls GetModelStatus until a version is AVAILABLE; raises TimeoutError naming the model."""
        deadline = time.monotonic() + timeout_s
        last_problem = "no version AVAILABLE"
        while True:
            try:
                version = await self.available_version()
                if version is not None:
                    return version
            except grpc.aio.AioRpcError as error:
                last_problem = f"{error.code().name}: {error.details()}"
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"model {self.model!r} at {self.address} is not AVAILABLE after {timeout_s:g}s "
                    f"({last_problem})"
                )
            await asyncio.sleep(poll_s)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
