"""Client of TensorFlow Serving's gRPC API, without TensorFlow installed.

The messages are `recsys.tfserving.v1`, wire-compatible with TF Serving's own
(protos/recsys/tfserving/v1/tfserving.proto), sent on TF Serving's method paths.
The same code talks to the real TF Serving in Kubernetes and to the local model
server: Predict and GetModelStatus with the suite's default deadline, keepalive,
tracing, and retries on UNAVAILABLE (TF Serving's read-only methods are safe to
retry, though its protos do not declare it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import grpc
import numpy as np

from recsys.tfserving.v1 import tfserving_pb2
from services.candidates.tensors import to_array, to_tensor
from shared.clients import Renewal, open_channel
from shared.tls import ClientCertificate

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
READ_ONLY_METHODS = (
    (PREDICTION_SERVICE, "Predict"),
    (PREDICTION_SERVICE, "GetModelMetadata"),
    (MODEL_SERVICE, "GetModelStatus"),
)
PREDICT = f"/{PREDICTION_SERVICE}/Predict"
GET_MODEL_STATUS = f"/{MODEL_SERVICE}/GetModelStatus"
AVAILABLE = 30  # tensorflow.serving.ModelVersionStatus.State.AVAILABLE


@dataclass(frozen=True)
class Prediction:
    """A Predict answer: the signature's outputs as arrays (strings as `str`) and the version."""

    outputs: dict[str, np.ndarray]
    version: int


@dataclass(frozen=True)
class _Calls:
    """TF Serving's two methods on one channel."""

    predict: grpc.aio.UnaryUnaryMultiCallable
    get_model_status: grpc.aio.UnaryUnaryMultiCallable


class ModelServerClient:
    """Predict and model status of one named model on a TF Serving endpoint."""

    def __init__(
        self,
        address: str,
        model: str,
        deadline_s: float,
        signature: str = "serving_default",
        credentials: grpc.ChannelCredentials | None = None,
        certificate: ClientCertificate | None = None,
    ) -> None:
        """`credentials` for a short-lived caller; `certificate` (renewing) for a service."""
        self.address = address
        self._renewal = Renewal(credentials, certificate)
        self.model = model
        self.signature = signature
        self.deadline_s = deadline_s
        self._channel: grpc.aio.Channel | None = None
        self._calls: _Calls | None = None

    def _open(self) -> _Calls:
        """The channel and its two methods, made once on first use: inside the event loop that will
        use them; opened again, the old one retired, once the certificate was renewed."""
        credentials, renewed = self._renewal.current([self._channel] if self._channel else [])
        if renewed:
            self._channel, self._calls = None, None
        if self._calls is None:
            self._channel = open_channel(
                self.address, (), self.deadline_s, also_retry=READ_ONLY_METHODS, credentials=credentials
            )
            self._calls = _Calls(
                predict=self._channel.unary_unary(
                    PREDICT,
                    request_serializer=tfserving_pb2.PredictRequest.SerializeToString,
                    response_deserializer=tfserving_pb2.PredictResponse.FromString,
                ),
                get_model_status=self._channel.unary_unary(
                    GET_MODEL_STATUS,
                    request_serializer=tfserving_pb2.GetModelStatusRequest.SerializeToString,
                    response_deserializer=tfserving_pb2.GetModelStatusResponse.FromString,
                ),
            )
        return self._calls

    async def predict(self, inputs: Mapping[str, np.ndarray], timeout: float | None = None) -> Prediction:
        """Raises grpc.aio.AioRpcError as TF Serving answers (NOT_FOUND, INVALID_ARGUMENT...)."""
        request = tfserving_pb2.PredictRequest(
            model_spec=tfserving_pb2.ModelSpec(name=self.model, signature_name=self.signature),
            inputs={name: to_tensor(value) for name, value in inputs.items()},
        )
        response = await self._open().predict(request, timeout=timeout)
        return Prediction(
            {name: to_array(tensor) for name, tensor in response.outputs.items()},
            response.model_spec.version.value,
        )

    async def available_version(self) -> int | None:
        """The newest AVAILABLE version, or None while there is none (unknown model, still loading)."""
        request = tfserving_pb2.GetModelStatusRequest(model_spec=tfserving_pb2.ModelSpec(name=self.model))
        try:
            response = await self._open().get_model_status(request)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        ready = [status.version for status in response.model_version_status if status.state == AVAILABLE]
        return max(ready) if ready else None

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel, self._calls = None, None
        await self._renewal.close()
