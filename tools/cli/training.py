"""`recsys train`: runs the training pipeline against a running suite, then waits until the
gateway serves the new versions."""

from __future__ import annotations

import asyncio
import time

import grpc

from ml.artifacts import CANDIDATE_GAN
from pipelines.progress import console
from pipelines.train import SERVED, TRAINERS, export_snapshot, fit_and_publish
from shared.auth import read_key
from shared.clients import SuiteClients
from shared.config import Settings
from tools.cli.common import ask_recommend, training, with_clients


async def _wait_for_versions(
    clients: SuiteClients, key: str, user_id: str, wanted: dict[str, int], timeout: float
) -> str:
    """ "" once a Recommend answer reports every wanted model at its new version or later; else what
    the last answer lacked."""
    deadline = time.monotonic() + timeout
    missing = "no answer"
    while time.monotonic() < deadline:
        try:
            response = await ask_recommend(clients, key, user_id, 1, "home")
            # A model several services load (cooccurrence) counts once every one of them has it.
            seen: dict[str, int] = {}
            for reported in response.model_versions:
                seen[reported.name] = min(seen.get(reported.name, reported.version), reported.version)
            behind = sorted(name for name, version in wanted.items() if seen.get(name, 0) < version)
            if not behind:
                return ""
            missing = (
                f"not yet {', '.join(behind)}; degraded stages: {list(response.degraded_stages) or 'none'}"
            )
        except grpc.aio.AioRpcError as error:
            missing = f"Recommend failed: {error.code().name} {error.details()}"
        await asyncio.sleep(0.25)
    return missing


def run_training(config: Settings, names: list[str]) -> None:
    """Exports a snapshot from the running suite, fits and publishes `names`, and waits until the
    gateway reports the new versions of the models a Recommend answer uses."""

    training(config)  # a bad training setting stops before the export

    async def work(clients: SuiteClients) -> None:
        started = time.monotonic()  # the time budget (RECSYS_TRAIN_MAX_MINUTES) counts the export in
        snapshot = await export_snapshot(clients, config.snapshot_dir)
        console.print(
            f"snapshot {snapshot.folder}: {snapshot.event_count} events, "
            f"{len(snapshot.catalog_item_ids)} items"
        )
        if len(snapshot.interactions()[0]) == 0:
            # A fresh shop (or the nightly job on a fresh cluster): not an error, nothing to learn.
            console.print("no purchases yet: nothing to train; the models in place keep serving")
            return
        published = await asyncio.to_thread(fit_and_publish, snapshot, config, names, started)
        for name, (version, seconds) in published.items():
            console.print(f"published {name} version {version} ({seconds:.1f}s)")
        if CANDIDATE_GAN in published:
            console.print(
                "a running model server switches to the new GAN version by itself; "
                "`recsys up` starts the suite with the GAN whenever a version exists"
            )
        served = {TRAINERS[name].model for name in SERVED if TRAINERS[name].in_recommend}
        wanted = {name: version for name, (version, _) in published.items() if name in served}
        if not wanted:
            return
        user_id = str(snapshot.user_ids[0])
        missing = await _wait_for_versions(
            clients, read_key(config), user_id, wanted, 4 * config.model_poll_s + 30
        )
        if not missing:
            console.print("the running services now serve the new versions")
        else:
            console.print(f"[yellow]the gateway does not report the new versions yet ({missing})[/yellow]")

    with_clients(work, config)
