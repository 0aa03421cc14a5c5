"""Wires the local model server: registry of SavedModels, batcher, TF Serving servicers.

Health turns SERVING once every configured model (RECSYS_MODELSERVER_MODELS, or
every model folder found) has a version loaded.
"""

from __future__ import annotations

from tensorflow_serving.apis import (
    model_service_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2,
    prediction_service_pb2_grpc,
)

from services.modelserver.batching import Batcher
from services.modelserver.registry import ModelRegistry
from services.modelserver.servicer import ModelServicer, PredictionServicer
from services.modelserver.settings import read_model_server_settings
from shared.config import MODEL_SERVER, Settings, load_section
from shared.server import NotReadyYet, ServiceApp

NAME = MODEL_SERVER


def build(settings: Settings) -> ServiceApp:
    registry = ModelRegistry(
        settings.model_dir, load_section(settings, read_model_server_settings).models, settings.model_poll_s
    )
    prediction = PredictionServicer(registry, Batcher())
    status = ModelServicer(registry)

    async def startup() -> None:
        await registry.refresh()
        missing = registry.unavailable()
        if missing:
            raise NotReadyYet(f"no loadable version yet for: {', '.join(missing)}")

    return ServiceApp(
        name=NAME,
        servicers=[
            (
                prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"],
                lambda server: prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
                    prediction, server
                ),
            ),
            (
                model_service_pb2.DESCRIPTOR.services_by_name["ModelService"],
                lambda server: model_service_pb2_grpc.add_ModelServiceServicer_to_server(status, server),
            ),
        ],
        startup=startup,
        background=[registry.watch],
    )
