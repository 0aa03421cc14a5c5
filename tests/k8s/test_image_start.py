"""Every Deployment, Job and CronJob of the production overlay starts from a venv built from exactly
its image's requirement files: the migration Job exits 0, every service becomes SERVING (TF Serving
absent, as on a fresh cluster), and the retraining job runs against them.

The venvs are built once per set of pins under var/image-venvs/ (about two minutes the first time).
"""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
import time
from pathlib import Path
from typing import Protocol

import pytest

from shared.authz import TRAINER
from shared.config import SERVICES, load_settings
from shared.tls import channel_credentials
from shared.version import VERSION
from tests.k8s.images import ROOT, Workload, image_python, local_env, project_workloads
from tests.k8s.manifests import K8S_DIR, render
from tools.certs import ensure_certificates
from tools.cli.supervisor import check_health, free_ports_env

READY_TIMEOUT_S = 180
JOB_TIMEOUT_S = 600


def _tail(path: Path, lines: int = 25) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def workloads() -> list[Workload]:
    found = project_workloads(render(K8S_DIR / "overlays" / "prod"))
    kinds = {w.kind for w in found}
    assert {"Deployment", "Job", "CronJob"} <= kinds, kinds
    return found


def _overrides(home: Path, database_url: str) -> dict[str, str]:
    ports = free_ports_env()
    # What cert-manager writes into each pod's Secret volume (k8s/components/mtls).
    ensure_certificates(home / "tls")
    return {
        **ports,
        **{f"RECSYS_{s.upper()}_ADDR": f"127.0.0.1:{ports[f'RECSYS_{s.upper()}_PORT']}" for s in SERVICES},
        "RECSYS_HOME": str(home),
        "RECSYS_BIND_HOST": "127.0.0.1",
        "RECSYS_METRICS_PORT": "",
        "RECSYS_SHUTDOWN_DELAY_S": "0",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "",
        # From the recsys-database and recsys-api-keys Secrets in the cluster.
        "RECSYS_DATABASE_URL": database_url,
        "RECSYS_API_KEYS": secrets.token_urlsafe(24),
        "RECSYS_TLS_DIR": str(home / "tls"),
    }


class Launcher(Protocol):
    """How a workload's command runs here: in a venv of its image's requirements, or in the image."""

    def __call__(self, workload: Workload, overrides: dict[str, str]) -> tuple[list[str], dict[str, str]]: ...


def in_venv(workload: Workload, overrides: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    return workload.command(image_python(workload.image)), local_env(workload, overrides)


def in_image(workload: Workload, overrides: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """`<engine> run` of the workload's image (built by `make images`) on the host's network, its
    ConfigMap and values as -e, and the test's home (state, certificates) mounted at the same path."""
    engine = shlex.split(os.environ.get("RECSYS_CONTAINER_ENGINE", "podman"))
    options = shlex.split(os.environ.get("RECSYS_CONTAINER_RUN_OPTIONS", ""))
    home = overrides["RECSYS_HOME"]
    variables = [f"--env={name}={value}" for name, value in {**workload.env, **overrides}.items()]
    command = [
        *engine, "run", "--rm", "--network=host", *options, f"--volume={home}:{home}", *variables,
        f"{workload.image}:{VERSION}", *workload.args,
    ]  # fmt: skip
    return command, dict(os.environ)


def _run_job(job: Workload, launch: Launcher, overrides: dict[str, str], logs: Path) -> None:
    log = logs / f"{job.name.replace('/', '-')}.log"
    command, env = launch(job, overrides)
    with log.open("wb") as out:
        result = subprocess.run(
            command,
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=JOB_TIMEOUT_S,
            check=False,
        )
    assert result.returncode == 0, f"{job.name} ({job.image}) exited {result.returncode}:\n{_tail(log)}"


def _start_every_workload(
    workloads: list[Workload], launch: Launcher, tmp_path: Path, database_url: str
) -> None:
    """The migration Job exits 0, every Deployment turns SERVING (over mTLS, TF Serving absent as on
    a fresh cluster), then the retraining CronJob exits 0 against them."""
    overrides = _overrides(tmp_path / "home", database_url)
    credentials = channel_credentials(load_settings(overrides), TRAINER)
    if launch is in_image:  # the images run as uid 10001
        subprocess.run(["chown", "-R", "10001:10001", overrides["RECSYS_HOME"]], check=True)
    logs = tmp_path / "logs"
    logs.mkdir()
    for job in (w for w in workloads if w.kind == "Job"):
        _run_job(job, launch, overrides, logs)
    deployments = [w for w in workloads if w.kind == "Deployment"]
    assert all(w.env.get("RECSYS_TLS") == "on" for w in deployments), "the prod overlay runs mutual TLS"
    assert {w.name.split("/", 1)[1] for w in deployments} == set(SERVICES)
    processes = {}
    try:
        for deployment in deployments:
            log = (logs / f"{deployment.name.replace('/', '-')}.log").open("wb")
            command, env = launch(deployment, overrides)
            processes[deployment.name] = (
                subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT),
                Path(log.name),
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        waiting = {w.name.split("/", 1)[1]: w for w in deployments}
        while waiting:
            for service, deployment in list(waiting.items()):
                process, log = processes[deployment.name]
                assert process.poll() is None, f"{deployment.name} ({deployment.image}) exited:\n{_tail(log)}"
                address = overrides[f"RECSYS_{service.upper()}_ADDR"]
                if check_health(address, credentials=credentials) == "SERVING":
                    del waiting[service]
            assert time.monotonic() < deadline, f"not SERVING after {READY_TIMEOUT_S}s: {sorted(waiting)}"
            time.sleep(0.5)
        for cron_job in (w for w in workloads if w.kind == "CronJob"):
            _run_job(cron_job, launch, overrides, logs)
    finally:
        for process, _ in processes.values():
            process.terminate()
        for process, _ in processes.values():
            process.wait(timeout=60)


def test_every_workload_starts_from_its_image_requirements(
    workloads: list[Workload], tmp_path: Path, postgres_url: str
) -> None:
    _start_every_workload(workloads, in_venv, tmp_path, postgres_url)


@pytest.mark.images
def test_every_workload_starts_in_its_real_image(
    workloads: list[Workload], tmp_path: Path, postgres_url: str
) -> None:
    """The same from the images themselves (`make images`, then `make image-start`); opt-in, as
    it needs a container engine and the two images built on this machine."""
    if os.environ.get("RECSYS_TEST_IMAGES") != "1":
        pytest.skip("needs the images and a container engine: make images && make image-start")
    tmp_path.chmod(0o755)
    _start_every_workload(workloads, in_image, tmp_path, postgres_url)


# What each image must be able to import: the light image runs these without TensorFlow.
IMAGE_PACKAGES = {
    "recsys": [
        "shared",
        "services.gateway",
        "services.profile",
        "services.items",
        "services.policy",
        "services.candidates",
        "services.ranking",
        "tools.cli",
        "tools.importers",
        "tools.synth",
    ],
    "recsys-ml": ["shared", "ml", "pipelines", "services", "tools"],
}
IMPORT_ALL = """
import importlib, pkgutil, sys
failed = []
for package in sys.argv[1:]:
    root = importlib.import_module(package)
    found = [m.name for m in pkgutil.walk_packages(root.__path__, package + ".")]
    # __main__ modules run their command (a service serves forever): `python -m` starts them
    names = [package] + [name for name in found if not name.endswith(".__main__")]
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as error:
            failed.append(f"{name}: {type(error).__name__}: {error}")
print("\\n".join(failed))
"""


@pytest.mark.parametrize("image", list(IMAGE_PACKAGES))
def test_every_module_of_an_image_imports_from_its_requirements(image: str, tmp_path: Path) -> None:
    """Also the modules a command loads only when it needs them (the GAN's training, the ranker)."""
    result = subprocess.run(
        [str(image_python(image)), "-c", IMPORT_ALL, *IMAGE_PACKAGES[image]],
        env=local_env(Workload("", "", image, [], {}, []), {"RECSYS_HOME": str(tmp_path)}),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "", f"modules that do not import in {image}:\n{result.stdout}"
