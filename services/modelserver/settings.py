"""The model server's own settings section."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import EnvReader


@dataclass(frozen=True)
class ModelServerSettings:
    models: tuple[str, ...] = ()  # names served from the model folder; empty: every one found


def read_model_server_settings(read: EnvReader) -> ModelServerSettings:
    return ModelServerSettings(models=read.names("RECSYS_MODELSERVER_MODELS"))
