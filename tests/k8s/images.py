"""Each container image's Python environment, built from exactly its requirement files, and the
workloads of the rendered manifests started as their pods would start them."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.k8s.manifests import Manifest, name, pod_spec

ROOT = Path(__file__).resolve().parents[2]
# What deploy/Dockerfile installs for each image (its REQUIREMENTS build argument).
IMAGE_REQUIREMENTS = {"recsys": "requirements.txt", "recsys-ml": "requirements-ml.txt"}
VENVS = ROOT / "var" / "image-venvs"


def image_name(image: str) -> str:
    """`registry.example.com/recsys/recsys-ml:0.1.0` -> `recsys-ml`."""
    return image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]


def image_python(image: str) -> Path:
    """The python of a venv holding exactly the image's pinned requirements (built once per pin set)."""
    requirements = ROOT / IMAGE_REQUIREMENTS[image]
    files = [requirements, *(ROOT / line.split()[1] for line in _includes(requirements))]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:12]
    venv = VENVS / f"{image}-{digest}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                str(requirements),
            ],
            check=True,
            cwd=ROOT,
        )
        (venv / ".complete").touch()
    return python


def _includes(requirements: Path) -> list[str]:
    return [line for line in requirements.read_text().splitlines() if line.startswith("-r ")]


@dataclass(frozen=True)
class Workload:
    """One container of a Deployment, Job or CronJob that runs a project image."""

    kind: str
    name: str
    image: str
    args: list[str]
    env: dict[str, str]
    secrets: list[str]  # variables the pod reads from Secrets: the test supplies them

    def command(self, python: Path) -> list[str]:
        # deploy/Dockerfile: ENTRYPOINT ["python", "-m"]
        return [str(python), "-m", *self.args]


def project_workloads(objects: list[Manifest]) -> list[Workload]:
    """Every container of the rendered objects whose image is one of the project's."""
    config_maps = {
        obj["metadata"]["name"]: obj.get("data", {}) for obj in objects if obj["kind"] == "ConfigMap"
    }
    found = []
    for obj in objects:
        spec = pod_spec(obj)
        if spec is None:
            continue
        for container in spec["containers"]:
            image = image_name(container["image"])
            if image not in IMAGE_REQUIREMENTS:
                continue
            env: dict[str, str] = {}
            for source in container.get("envFrom", []):
                env.update(config_maps[source["configMapRef"]["name"]])
            secrets = []
            for variable in container.get("env", []):
                if "value" in variable:
                    env[variable["name"]] = variable["value"]
                else:
                    secrets.append(variable["name"])
            found.append(Workload(obj["kind"], name(obj), image, container["args"], env, secrets))
    return found


def local_env(workload: Workload, overrides: dict[str, str]) -> dict[str, str]:
    """The pod's environment on this machine: its ConfigMap and values, then `overrides` (ports,
    addresses, home, database, keys), and the image's PYTHONPATH."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        **workload.env,
        **overrides,
        "PYTHONPATH": f"{ROOT}:{ROOT / 'shared' / 'gen'}",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
