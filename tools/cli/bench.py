"""`recsys bench`: Recommend, Rank and Predict latency on the local suite, each beside its baseline."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ml.artifacts import CANDIDATE_GAN, POPULARITY, RANKER, PopularityModel
from pipelines.progress import console, errors
from recsys.common.v1 import common_pb2
from shared.auth import ensure_key_file, read_key
from shared.config import MODEL_SERVER, Settings
from shared.models import latest_version
from tools.bench.latency import measure, measure_predict, measure_rank, rank_requests
from tools.certs import ensure_certificates
from tools.cli.common import ask_recommend, credentials, settings, with_clients
from tools.cli.supervisor import Suite, SuiteError, check_health, free_port
from tools.cli.up import ensure_demo_data, with_gan
from tools.importers import online_retail

RANK_CANDIDATES = 500


def _print_latencies(title: str, results: list) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("call", "p50 ms", "p99 ms", "mean ms"):
        table.add_column(column)
    for result in results:
        mean = statistics.fmean(result.samples_ms)
        table.add_row(result.name, f"{result.p50:.2f}", f"{result.p99:.2f}", f"{mean:.2f}")
    console.print(table)


@contextmanager
def _service_on_free_port(config: Settings, service: str, env: dict[str, str]) -> Iterator[str]:
    """Runs one more process of `service` on a free port (no metrics endpoint) until the block ends:
    a private copy on the loopback interface, measured without TLS."""
    port = free_port()
    overrides = {
        "RECSYS_HOME": str(config.home),
        "RECSYS_TLS": "off",
        f"RECSYS_{service.upper()}_PORT": str(port),
        f"RECSYS_{service.upper()}_METRICS_PORT": "0",
        **env,
    }
    config.log_dir.mkdir(parents=True, exist_ok=True)
    with (config.log_dir / f"{service}-bench.log").open("ab") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            env={**os.environ, **overrides},
            stdout=log,
            stderr=log,
        )
        try:
            address = f"127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while check_health(address) != "SERVING":
                if server.poll() is not None or time.monotonic() > deadline:
                    errors.print(f"[red]{service} did not come up; see {log.name}[/red]")
                    raise typer.Exit(1)
                time.sleep(0.5)
            yield address
        finally:
            server.terminate()
            server.wait(timeout=30)


def _bench_model_server(config: Settings, folder: Path, calls: int) -> list:
    """Starts a local model server for the newest candidate_gan and times Predict."""
    with _service_on_free_port(config, MODEL_SERVER, {"RECSYS_MODELSERVER_MODELS": CANDIDATE_GAN}) as address:
        results = measure_predict(folder, address, calls)
    _print_latencies(f"candidate_gan Predict over {calls} sequential calls (history of 20 items)", results)
    return results


def _bench_rank(config: Settings, histories: list[list[str]], calls: int, candidates: int) -> None:
    """Rank with the learned ranker beside the co-occurrence baseline: same requests, fresh processes."""
    popularity = latest_version(config.model_dir, POPULARITY)
    if latest_version(config.model_dir, RANKER) is None or popularity is None:
        console.print("no ranker model yet: `recsys train ranking` adds the Rank measurement")
        return
    items = PopularityModel.load(config.model_dir / POPULARITY / str(popularity)).item_ids.tolist()
    requests = rank_requests(histories, items, calls, candidates)
    with (
        _service_on_free_port(config, "ranking", {"RECSYS_RANKER": "learned"}) as learned,
        _service_on_free_port(config, "ranking", {"RECSYS_RANKER": "baseline"}) as baseline,
    ):
        results = measure_rank(
            {"Rank, co-occurrence baseline": baseline, "Rank, learned ranker (in process)": learned}, requests
        )
    _print_latencies(
        f"Rank over {calls} sequential calls, {len(requests[0].candidates)} candidates each", results
    )
    console.print(f"learned Rank p50 is {results[1].p50 / results[0].p50:.1f}x the baseline's")


def _histories(events: Iterable[common_pb2.Event]) -> list[list[str]]:
    """Each customer's distinct items, most recent first."""
    found: dict[str, dict[str, None]] = {}
    for event in events:
        found.setdefault(event.user_id, {}).pop(event.item_id, None)
        found[event.user_id][event.item_id] = None
    return [list(reversed(items)) for items in found.values()]


def bench(
    calls: Annotated[int, typer.Option(help="Sequential calls per measurement.")] = 1000,
    count: Annotated[int, typer.Option(help="Items per Recommend.")] = 10,
) -> None:
    """Recommend latency p50/p99 over sequential calls, beside a plain gRPC round trip; Rank with
    500 candidates, learned ranker beside the co-occurrence baseline; with a trained candidate_gan,
    also Predict through the local model server beside the in-process call.

    Uses the running suite if the gateway answers; otherwise starts one on
    RECSYS_HOME with the demo data (and the GAN once trained) and stops it afterwards.
    """
    config = with_gan(settings(), None)
    if config.tls:
        ensure_certificates(config.tls_dir)
    presented = credentials(config)
    suite = None
    if check_health(config.addresses["gateway"], credentials=presented) != "SERVING":
        ensure_key_file(config.api_key_file)
        suite = Suite(config)
        suite.start()
    try:
        if suite is not None:
            suite.wait_ready()
            ensure_demo_data(config)
        users = sorted(
            {event.user_id for event in online_retail.read_events(online_retail.DEFAULT_PATH, 50_000)}
        )
        results = measure(config.addresses["gateway"], read_key(config), users, calls, count, presented)
        histories = _histories(online_retail.read_events(online_retail.DEFAULT_PATH, 50_000))
        answer = with_clients(lambda c: ask_recommend(c, read_key(config), users[0], count, "home"), config)
        uses_gan = any(v.name == CANDIDATE_GAN for v in answer.model_versions)
    except SuiteError as error:
        errors.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    finally:
        if suite is not None:
            suite.stop()
    pipeline = "with the candidate GAN" if uses_gan else "without the candidate GAN"
    _print_latencies(f"latency over {calls} sequential calls, {len(users)} customers, {pipeline}", results)
    floor, recommend = results
    console.print(f"Recommend p50 is {recommend.p50 / floor.p50:.1f}x the bare gRPC round trip")
    _bench_rank(config, histories, calls, RANK_CANDIDATES)
    version = latest_version(config.model_dir, CANDIDATE_GAN)
    if version is not None:
        local, served = _bench_model_server(config, config.model_dir / CANDIDATE_GAN / str(version), calls)
        console.print(
            f"Predict p50 through the model server is {served.p50 / local.p50:.1f}x the in-process call"
        )
    else:
        console.print("no candidate_gan model yet: `recsys train candidates` adds the Predict measurement")
    console.print(f"reproduce: recsys bench --calls {calls} --count {count}  (or: make bench)")
