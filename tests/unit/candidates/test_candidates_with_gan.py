"""The candidates service with the GAN behind the local model server, over real gRPC: it serves
its other sources until the model is there, then merges the generator's candidates with them,
and degrades to them again when the model server is gone."""

import os
import shutil
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
from prometheus_client import REGISTRY

from ml.artifacts import CANDIDATE_GAN, CANDIDATE_ORDER, COOCCURRENCE, POPULARITY, SERVING, ServingConfig
from ml.cooccurrence import fit_cooccurrence
from ml.popularity import fit_popularity
from ml.retrieval import DEFAULT_QUOTAS, DEFAULT_WEIGHTS
from recsys.candidates.v1 import candidates_pb2, candidates_pb2_grpc
from services.candidates.app import build as build_candidates
from services.items.app import build as build_items
from services.modelserver.app import build as build_modelserver
from shared import sources
from shared.models import publish
from tests.support import ServerThread, make_settings, suite_env
from tests.unit.candidates.simulated import simulated, snapshot_of
from tools.cli.supervisor import check_health


def generate(address: str, **fields) -> candidates_pb2.GenerateResponse:
    with grpc.insecure_channel(address) as channel:
        return candidates_pb2_grpc.CandidatesServiceStub(channel).Generate(
            candidates_pb2.GenerateRequest(user_id="u", **fields), timeout=10
        )


@pytest.fixture
def home(tmp_path, exported):
    """A model folder with item-kNN and popularity models, and the GAN kept aside until published."""
    _, gan_folder, _ = exported
    users, items, matrix = simulated(shoppers=200, items=120)
    snapshot = snapshot_of(users, items, matrix)
    settings = make_settings(
        str(tmp_path),
        **suite_env(
            RECSYS_CANDIDATES_GAN="1", RECSYS_MODELSERVER_MODELS=CANDIDATE_GAN, RECSYS_MODEL_POLL_S="0.2"
        ),
    )
    publish(settings.model_dir, COOCCURRENCE, fit_cooccurrence(snapshot).save)
    publish(settings.model_dir, POPULARITY, fit_popularity(snapshot).save)
    return settings, gan_folder, items, matrix


def _until_generated(address: str, deadline_s: float, **fields) -> candidates_pb2.GenerateResponse:
    deadline = time.monotonic() + deadline_s
    while True:
        response = generate(address, **fields)
        if sources.GENERATOR in dict(response.source_counts) or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_serves_before_the_gan_then_merges_sources_and_degrades_without_it(home) -> None:
    settings, gan_folder, items, matrix = home
    address = settings.addresses["candidates"]
    catalog = ServerThread(build_items, settings, settings.ports["items"])
    # the model server answers at once but has no version of the GAN yet (a fresh cluster)
    model_server = ServerThread(build_modelserver, settings, settings.ports["modelserver"], wait_ready=False)
    candidates = ServerThread(build_candidates, settings, settings.ports["candidates"])
    history = [items[i] for i in np.flatnonzero(matrix[0])]
    bought = history[:2]
    try:
        assert check_health(address) == "SERVING"
        before = generate(address, history_item_ids=history, exclude_item_ids=bought, count=40)
        assert list(before.degraded_sources) == [sources.GENERATOR]
        assert len(before.candidates) == 40

        shutil.copytree(gan_folder, settings.model_dir / CANDIDATE_GAN / "1")
        response = _until_generated(address, 30, history_item_ids=history, exclude_item_ids=bought, count=40)
        counts = dict(response.source_counts)
        assert counts[sources.GENERATOR] >= 4  # at least its guaranteed tenth of 40
        assert set(counts) <= {sources.GENERATOR, sources.ITEM_KNN, sources.POPULAR}
        fusion = [c.fusion_score for c in response.candidates]
        assert fusion == sorted(fusion, reverse=True)
        ids = [c.item_id for c in response.candidates]
        assert len(ids) == len(set(ids)) == 40
        assert not set(bought) & set(ids)
        generated = [c for c in response.candidates if c.source == sources.GENERATOR]
        assert all(0 < c.realism < 1 for c in generated)
        assert {v.name: v.version for v in response.model_versions}[CANDIDATE_GAN] == 1
        assert list(response.degraded_sources) == []

        # a shopper with no history: nothing to condition the generator on, so it is not asked
        stranger = generate(address, count=10)
        assert {c.source for c in stranger.candidates} == {sources.POPULAR}
        assert CANDIDATE_GAN not in {v.name for v in stranger.model_versions}
    finally:
        model_server.stop()
    try:
        # a history not asked before (one asked lately may be given its kept list for a few seconds)
        other = [items[i] for i in np.flatnonzero(matrix[1])]
        response = generate(address, history_item_ids=other, count=40)
        assert list(response.degraded_sources) == [sources.GENERATOR]
        assert len(response.candidates) == 40
        assert sources.GENERATOR not in dict(response.source_counts)
        assert CANDIDATE_GAN not in {v.name for v in response.model_versions}

        # training dropped the generator (no weight, no quota): it is not asked, so its absence is no
        # degradation
        weights = {**DEFAULT_WEIGHTS, sources.GENERATOR: 0.0}
        quotas = {**DEFAULT_QUOTAS, sources.GENERATOR: 0.0}
        publish(settings.model_dir, SERVING, ServingConfig(weights, quotas, CANDIDATE_ORDER).save)
        deadline = time.monotonic() + 30
        while True:
            dropped = generate(address, history_item_ids=history, exclude_item_ids=bought, count=40)
            versions = {v.name for v in dropped.model_versions}
            if SERVING in versions or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert SERVING in versions and CANDIDATE_GAN not in versions
        assert sources.GENERATOR not in dict(dropped.source_counts)
        assert len(dropped.candidates) == 40 and list(dropped.degraded_sources) == []
    finally:
        candidates.stop()
        catalog.stop()


def _reused() -> float:
    return REGISTRY.get_sample_value("recsys_candidates_generated_lists_total", {"outcome": "reused"}) or 0.0


def test_a_history_asked_again_reuses_its_list_until_the_model_server_serves_a_new_version(home) -> None:
    settings, gan_folder, items, matrix = home
    shutil.copytree(gan_folder, settings.model_dir / CANDIDATE_GAN / "1")
    catalog = ServerThread(build_items, settings, settings.ports["items"])
    model_server = ServerThread(build_modelserver, settings, settings.ports["modelserver"])
    candidates = ServerThread(build_candidates, settings, settings.ports["candidates"])
    address = settings.addresses["candidates"]
    history = [items[i] for i in np.flatnonzero(matrix[2])]
    try:
        first = _until_generated(address, 30, history_item_ids=history, count=40)
        assert {v.name: v.version for v in first.model_versions}[CANDIDATE_GAN] == 1
        before, deadline = _reused(), time.monotonic() + 10
        while _reused() == before:  # once the served version has been read
            assert time.monotonic() < deadline, "the kept list was never reused"
            again = generate(address, history_item_ids=history, count=40)
        assert list(again.candidates) == list(first.candidates)
        # a purchase changes the history: its list is generated
        before = _reused()
        changed = generate(address, history_item_ids=[items[0], *history], count=40)
        assert _reused() == before and sources.GENERATOR in dict(changed.source_counts)

        shutil.copytree(gan_folder, settings.model_dir / CANDIDATE_GAN / "2")
        deadline = time.monotonic() + 30
        while {v.name: v.version for v in again.model_versions}[CANDIDATE_GAN] != 2:
            assert time.monotonic() < deadline, "the new version's lists were never served"
            time.sleep(0.2)
            again = generate(address, history_item_ids=history, count=40)
        assert list(again.degraded_sources) == []
    finally:
        candidates.stop()
        model_server.stop()
        catalog.stop()


def test_the_service_process_serves_generated_candidates(home) -> None:
    """As `recsys up` runs it: its own process, built before its event loop starts."""
    settings, gan_folder, items, matrix = home
    shutil.copytree(gan_folder, settings.model_dir / CANDIDATE_GAN / "1")
    model_server = ServerThread(build_modelserver, settings, settings.ports["modelserver"])
    env = {
        **os.environ,
        "RECSYS_HOME": str(settings.home),
        "RECSYS_CANDIDATES_GAN": "1",
        "RECSYS_CANDIDATES_PORT": str(settings.ports["candidates"]),
        "RECSYS_MODELSERVER_ADDR": settings.addresses["modelserver"],
        "RECSYS_ITEMS_ADDR": settings.addresses["items"],
        "RECSYS_METRICS_PORT": "0",
        "RECSYS_TLS": "off",  # as the in-process servers beside it
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.candidates"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    address = settings.addresses["candidates"]
    try:
        deadline = time.monotonic() + 60
        while check_health(address) != "SERVING":
            assert process.poll() is None and time.monotonic() < deadline, "candidates did not become ready"
            time.sleep(0.2)
        history = [items[i] for i in np.flatnonzero(matrix[1])]
        response = generate(address, history_item_ids=history, count=20)
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode(errors="replace")
        model_server.stop()
    assert sources.GENERATOR in dict(response.source_counts), output[-3000:]
    assert sources.GENERATOR not in list(response.degraded_sources)
