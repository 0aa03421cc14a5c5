"""`recsys up`: the whole suite as local processes, with the bundled demo data and the candidate
GAN trained in the background on first start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ml.artifacts import CANDIDATE_GAN
from pipelines.progress import console, errors
from shared.auth import ensure_key_file, read_key
from shared.config import MODEL_SERVER, SERVICES, Settings
from shared.models import latest_version
from tools.cli.common import ask_recommend, print_recommendations, settings, with_clients
from tools.cli.data import import_demo
from tools.cli.supervisor import Suite, SuiteError

DEMO_CUSTOMERS = ("17850", "13047", "12583")
DEMO_MARKER = "demo-online-retail.imported"
# Where `recsys up` logs the candidate GAN's first training, under the log folder.
GAN_TRAINING_LOG = "train-candidates.log"


def ensure_demo_data(config: Settings) -> None:
    """Imports the bundled data once per home and trains when a model is missing."""
    from pipelines import train as pipeline
    from tools.cli import training

    marker = config.home / DEMO_MARKER
    if not marker.exists():
        console.print("importing the bundled Online Retail data (first start only)")
        import_demo(config)
        marker.write_text("imported\n")
    if any(not (config.model_dir / pipeline.TRAINERS[name].model).exists() for name in pipeline.SERVED):
        training.run_training(config, pipeline.SERVED)


def _serve_demo(config: Settings) -> None:
    ensure_demo_data(config)
    key = read_key(config)
    for user_id in DEMO_CUSTOMERS:
        response = with_clients(lambda c, u=user_id: ask_recommend(c, key, u, 5, "home"), config)
        print_recommendations(response, user_id)


def up(
    demo: Annotated[
        bool | None,
        typer.Option(
            "--demo/--no-demo",
            help="Import the bundled data and print sample recommendations (default: RECSYS_DEMO, on).",
        ),
    ] = None,
    gan: Annotated[
        bool | None,
        typer.Option(
            "--gan/--no-gan",
            help="Serve the candidate GAN through the local model server (default: on with the demo "
            "data, which trains it in the background on first start; otherwise on when "
            "RECSYS_CANDIDATES_GAN is set or `recsys train candidates` has published a version).",
        ),
    ] = None,
) -> None:
    """Start every service as a local process, wait until all are healthy, serve until Ctrl-C."""
    base = settings()
    with_demo = base.demo if demo is None else demo
    config = with_gan(base, gan if gan is not None else (True if with_demo else None))
    ensure_key_file(config.api_key_file)
    suite = Suite(config)
    for signum in (signal.SIGTERM, signal.SIGINT):  # SIGINT may be ignored when started in the background
        signal.signal(signum, _interrupt)
    started = time.perf_counter()
    failed = False
    trainer: subprocess.Popen[bytes] | None = None
    try:
        suite.start()
        # The model server becomes ready with its first GAN version; the suite serves without it.
        # With a version published it is ready within seconds: awaited, so that the first answers
        # (the demo's) ask the GAN too.
        gan_published = config.candidate_gan and latest_version(config.model_dir, CANDIDATE_GAN) is not None
        suite.wait_ready(only=(MODEL_SERVER, *SERVICES) if gan_published else SERVICES)
        table = Table(title=f"recsys is up ({time.perf_counter() - started:.1f}s)", title_justify="left")
        table.add_column("service")
        table.add_column("address")
        for name in suite.names:
            table.add_row(name, config.addresses[name])
        console.print(table)
        console.print(f"state in {config.home} · logs in {config.log_dir} · API key in {config.api_key_file}")
        if with_demo:
            _serve_demo(config)
        if config.candidate_gan and latest_version(config.model_dir, CANDIDATE_GAN) is None:
            trainer = _train_gan_in_background(config)
        console.print("serving; press Ctrl-C to stop")
        _watch(suite, trainer)
    except SuiteError as error:
        errors.print(f"[red]{error}[/red]")
        failed = True
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        if trainer is not None and trainer.poll() is None:
            trainer.terminate()
            trainer.wait(timeout=30)
        codes = suite.stop()
        console.print("stopped: " + ", ".join(f"{n}={c}" for n, c in codes.items()))
    if failed:
        raise typer.Exit(1)


def _train_gan_in_background(config: Settings) -> subprocess.Popen[bytes]:
    """`recsys train candidates` as a child process: the model server serves the GAN once it is
    published, and candidates starts asking it, without a restart."""
    log = config.log_dir / GAN_TRAINING_LOG
    console.print(
        f"training the candidate GAN in the background (minutes on CPU; {log}); it is served as soon "
        "as it is published, and `recsys status` shows its version"
    )
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tools.cli", "train", "candidates"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "RECSYS_HOME": str(config.home), "RECSYS_CANDIDATES_GAN": "1"},
            start_new_session=True,
        )


def with_gan(config: Settings, wanted: bool | None) -> Settings:
    """The settings with the GAN on when asked, or by default when it is configured or trained."""
    if wanted is None:
        wanted = config.candidate_gan or latest_version(config.model_dir, CANDIDATE_GAN) is not None
    return config.overriding(RECSYS_CANDIDATES_GAN="1" if wanted else "0")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _watch(suite: Suite, trainer: subprocess.Popen[bytes] | None) -> None:
    """Serves until Ctrl-C: a service that exits is restarted with backoff (said, with the end of
    its log); says once how the background training ended."""
    while True:
        suite.supervise(lambda message: errors.print(f"[yellow]{escape(message)}[/yellow]"))
        if trainer is not None and trainer.poll() is not None:
            if trainer.returncode == 0:
                console.print("candidate GAN published: the model server serves it now")
            else:
                errors.print(
                    f"[red]candidate GAN training failed (exit code {trainer.returncode}); see "
                    f"{suite.settings.log_dir / GAN_TRAINING_LOG}; the suite serves without it[/red]"
                )
            trainer = None
        time.sleep(0.5)
