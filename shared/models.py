"""Versioned model artifacts in TF Serving's layout, `<model_dir>/<name>/<version>/`.

Trainers publish a version by writing a hidden temporary folder and renaming
it into place, so a reader never sees half a model. Services watch their
models' folders and switch to a newer version without restart.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from shared import heap
from shared.metrics import model_loaded

log = logging.getLogger(__name__)
Model = TypeVar("Model")
# Versions kept per model: the newest serves; older ones are there to roll back to by hand.
DEFAULT_KEPT = 5


def versions(model_dir: Path, name: str) -> list[int]:
    """Published versions of a model, ascending."""
    folder = model_dir / name
    if not folder.is_dir():
        return []
    return sorted(int(entry.name) for entry in folder.iterdir() if entry.name.isdigit())


def latest_version(model_dir: Path, name: str) -> int | None:
    published = versions(model_dir, name)
    return published[-1] if published else None


def publish(model_dir: Path, name: str, write: Callable[[Path], None], keep: int = DEFAULT_KEPT) -> int:
    """Writes a new version with `write(folder)`, makes it visible atomically, and deletes all but
    the newest `keep` versions (the volume would otherwise grow with every retraining)."""
    latest = latest_version(model_dir, name) or 0
    version = max(int(time.time()), latest + 1)
    staging = model_dir / name / f".staging-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    write(staging)
    staging.rename(model_dir / name / str(version))
    for old in versions(model_dir, name)[:-keep]:
        shutil.rmtree(model_dir / name / str(old), ignore_errors=True)
    return version


class ModelWatcher(Generic[Model]):
    """Holds the newest loaded version of one model and reloads when a newer one appears."""

    def __init__(self, model_dir: Path, name: str, load: Callable[[Path], Model], poll_s: float) -> None:
        self.model_dir = model_dir
        self.name = name
        self.load = load
        self.poll_s = poll_s
        self.model: Model | None = None
        self.version = 0

    async def refresh(self) -> bool:
        """Loads the newest version if it is newer than the one held; True when it switched."""
        latest = latest_version(self.model_dir, self.name)
        if latest is None or latest <= self.version:
            return False
        folder = self.model_dir / self.name / str(latest)
        try:
            model = await asyncio.to_thread(self.load, folder)
        except Exception:
            log.exception("could not load %s version %s; keeping version %s", self.name, latest, self.version)
            self.version = latest
            return False
        self.model, self.version = model, latest
        model_loaded(self.name, latest)
        log.info("loaded model %s version %s", self.name, latest)
        return True

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            if await self.refresh():
                heap.settle()  # the version replaced can be collected; the new one is set aside
