"""TensorFlow Serving's gRPC API over the model registry: PredictionService.Predict and
GetModelMetadata, ModelService.GetModelStatus. Errors use TF Serving's codes, so a
client cannot tell this server from the real one."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import any_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    status_pb2,
)

from services.modelserver.batching import Batcher, Tensors
from services.modelserver.registry import ModelRegistry, ServedModel
from shared.errors import InvalidArgument, Unimplemented, require

DEFAULT_SIGNATURE = "serving_default"
# The largest input tensor a request may ask for (elements), checked before it is built: a request of
# a few bytes can otherwise name a shape of gigabytes that a single repeated value fills.
MAX_INPUT_ELEMENTS = 1 << 22
AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
END = get_model_status_pb2.ModelVersionStatus.END


def _version(spec: Any) -> int | None:
    if spec.version_label:
        raise InvalidArgument("version labels are not supported by this server; use version or latest")
    return spec.version.value if spec.HasField("version") else None


def _inputs(model: ServedModel, signature: str, request: predict_pb2.PredictRequest) -> Tensors:
    definition = model.signature_defs[signature]
    expected, given = set(definition.inputs), set(request.inputs)
    if expected != given:
        raise InvalidArgument(
            f"input keys do not match the signature {signature!r}: "
            f"expected {sorted(expected)}, got {sorted(given)}"
        )
    tensors = {}
    for name, proto in request.inputs.items():
        wanted = definition.inputs[name].dtype
        if proto.dtype != wanted:
            raise InvalidArgument(
                f"input {name!r} expects {types_pb2.DataType.Name(wanted)} "
                f"but {types_pb2.DataType.Name(proto.dtype)} was provided"
            )
        _check_shape(name, [d.size for d in proto.tensor_shape.dim], definition.inputs[name].tensor_shape)
        try:
            tensors[name] = tf.make_ndarray(proto)
        except (ValueError, TypeError) as error:
            raise InvalidArgument(f"input {name!r} is not a valid tensor: {error}") from error
    return tensors


def _check_shape(name: str, dims: list[int], expected: Any) -> None:
    """INVALID_ARGUMENT unless the shape fits the signature (rank and fixed sizes, where it says)
    and holds at most MAX_INPUT_ELEMENTS elements."""
    if any(size < 0 for size in dims):
        raise InvalidArgument(f"input {name!r} has a negative dimension: {dims}")
    if not expected.unknown_rank:
        fixed = [d.size for d in expected.dim]
        if len(fixed) != len(dims) or any(f >= 0 and f != d for f, d in zip(fixed, dims, strict=False)):
            raise InvalidArgument(f"input {name!r} has shape {dims}; the signature expects {fixed} (-1: any)")
    elements = 1
    for size in dims:
        elements *= size
    if elements > MAX_INPUT_ELEMENTS:
        raise InvalidArgument(
            f"input {name!r} has shape {dims}: {elements:,} elements, "
            f"more than the {MAX_INPUT_ELEMENTS:,} allowed"
        )


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, registry: ModelRegistry, batcher: Batcher) -> None:
        self.registry = registry
        self.batcher = batcher

    async def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> predict_pb2.PredictResponse:
        spec = request.model_spec
        require(bool(spec.name), "Missing ModelSpec: model_spec.name is empty")
        model = self.registry.get(spec.name, _version(spec))
        signature = spec.signature_name or DEFAULT_SIGNATURE
        function = model.signature(signature)
        inputs = _inputs(model, signature, request)
        wanted = list(request.output_filter)
        unknown = sorted(set(wanted) - set(model.signature_defs[signature].outputs))
        if unknown:
            raise InvalidArgument(f"output_filter names outputs the signature lacks: {unknown}")

        def compute(tensors: Tensors) -> Tensors:
            try:
                results = function(**{name: tf.constant(value) for name, value in tensors.items()})
            except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
                raise InvalidArgument(f"the model rejected the input: {error}") from error
            return {name: np.asarray(value) for name, value in results.items()}

        outputs = await self.batcher.run((model.name, model.version, signature), compute, inputs)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = model.name
        response.model_spec.version.value = model.version
        response.model_spec.signature_name = signature
        for name, value in outputs.items():
            if not wanted or name in wanted:
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

    async def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        require(bool(request.model_spec.name), "Missing ModelSpec: model_spec.name is empty")
        fields = list(request.metadata_field)
        if fields != ["signature_def"]:
            raise InvalidArgument(f"Metadata field(s) {fields} not supported: ask for ['signature_def']")
        model = self.registry.get(request.model_spec.name, _version(request.model_spec))
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for name, definition in model.signature_defs.items():
            signatures.signature_def[name].CopyFrom(definition)
        packed = any_pb2.Any()
        packed.Pack(signatures)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = model.name
        response.model_spec.version.value = model.version
        response.metadata["signature_def"].CopyFrom(packed)
        return response

    async def Classify(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise Unimplemented("Classify is not supported by this server; use Predict")

    async def Regress(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise Unimplemented("Regress is not supported by this server; use Predict")

    async def MultiInference(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise Unimplemented("MultiInference is not supported by this server; use Predict")


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    async def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.aio.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        name = request.model_spec.name
        require(bool(name), "Missing ModelSpec: model_spec.name is empty")
        version = _version(request.model_spec)
        response = get_model_status_pb2.GetModelStatusResponse()
        served = self.registry.served.get(name)
        if served is not None and version in (None, served.version):
            response.model_version_status.add(
                version=served.version, state=AVAILABLE, status=status_pb2.StatusProto()
            )
        for (failed_name, failed_version), message in sorted(self.registry.failed.items()):
            if failed_name == name and version in (None, failed_version):
                response.model_version_status.add(
                    version=failed_version,
                    state=END,
                    status=status_pb2.StatusProto(error_code=13, error_message=message),
                )
        if not response.model_version_status:
            self.registry.get(name, version)  # raises NOT_FOUND with TF Serving's message
        return response

    async def HandleReloadConfigRequest(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise Unimplemented("this server serves the newest version of each model folder; no config to reload")
