"""SavedModels in TF Serving's layout, `<model dir>/<name>/<version>/saved_model.pb`.

The newest version of each model is served. A newer version is loaded beside
the current one and swapped in only once loaded, so requests in flight finish
on the version they started with and none fails during a switch.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from shared.errors import NotFound
from shared.models import versions

log = logging.getLogger(__name__)


@dataclass
class ServedModel:
    name: str
    version: int
    path: Path
    module: Any
    signature_defs: dict[str, meta_graph_pb2.SignatureDef]

    def signature(self, name: str) -> Any:
        try:
            return self.module.signatures[name]
        except KeyError as error:
            available = ", ".join(sorted(self.module.signatures)) or "none"
            raise NotFound(
                f'serving signature name: "{name}" not found in signature def (have {available})'
            ) from error


def _signature_defs(path: Path) -> dict[str, meta_graph_pb2.SignatureDef]:
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((path / "saved_model.pb").read_bytes())
    return dict(saved.meta_graphs[0].signature_def)


def load_version(name: str, version: int, path: Path) -> ServedModel:
    return ServedModel(name, version, path, tf.saved_model.load(str(path)), _signature_defs(path))


@dataclass
class ModelRegistry:
    """Serves the newest version of every model under `model_dir` (or only of `names`)."""

    model_dir: Path
    names: tuple[str, ...] = ()
    poll_s: float = 2.0
    served: dict[str, ServedModel] = field(default_factory=dict)
    failed: dict[tuple[str, int], str] = field(default_factory=dict)

    def model_names(self) -> list[str]:
        if self.names:
            return list(self.names)
        if not self.model_dir.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.model_dir.iterdir()
            if entry.is_dir() and any((v / "saved_model.pb").exists() for v in entry.iterdir())
        )

    def newest(self, name: str) -> int | None:
        ready = [
            v
            for v in versions(self.model_dir, name)
            if (self.model_dir / name / str(v) / "saved_model.pb").exists()
        ]
        return ready[-1] if ready else None

    async def refresh(self) -> None:
        """Loads any version newer than the one served; a broken version is skipped and kept out."""
        for name in self.model_names():
            version = self.newest(name)
            current = self.served.get(name)
            if version is None or (current and current.version >= version) or (name, version) in self.failed:
                continue
            path = self.model_dir / name / str(version)
            try:
                loaded = await asyncio.to_thread(load_version, name, version, path)
            except Exception as error:
                log.exception("could not load %s version %s", name, version)
                self.failed[(name, version)] = f"{type(error).__name__}: {error}"
                continue
            self.served[name] = loaded
            log.info("serving %s version %s", name, version)

    def unavailable(self) -> list[str]:
        """Configured models without a served version (health is NOT_SERVING while any exist)."""
        return [name for name in self.model_names() if name not in self.served]

    def get(self, name: str, version: int | None) -> ServedModel:
        served = self.served.get(name)
        if served is None:
            raise NotFound(f"Servable not found for request: Latest({name})")
        if version is not None and version != served.version:
            raise NotFound(f"Servable not found for request: Specific({name}, {version})")
        return served

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            await self.refresh()
