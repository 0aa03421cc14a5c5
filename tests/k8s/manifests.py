"""Renders the kustomize overlays, validates them against the Kubernetes schemas, and checks
the house rules that the schemas cannot express."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

K8S_DIR = Path(__file__).resolve().parents[2] / "k8s"
OVERLAYS = ("local", "prod")
KUBERNETES_VERSION = "1.32.0"
WORKLOADS = ("Deployment", "StatefulSet", "Job", "CronJob")
SERVING_WORKLOADS = ("Deployment", "StatefulSet")

Manifest = dict[str, Any]


def render(path: Path) -> list[Manifest]:
    """The objects `kubectl kustomize path` renders (an overlay's generated secrets written first)."""
    secrets = path / "secrets.sh"
    if secrets.exists():
        subprocess.run([str(secrets)], check=True)
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise RuntimeError("kubectl not found: install Debian's kubernetes-client package")
    result = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def name(obj: Manifest) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def schema_errors(objects: list[Manifest], version: str = KUBERNETES_VERSION) -> list[str]:
    """Every object checked against the API schemas in strict mode (unknown fields are errors)."""
    errors = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{name(obj)}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            errors.append(f"{name(obj)}: no schema ({error})")
    return errors


def pod_spec(obj: Manifest) -> Manifest | None:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if obj["kind"] in WORKLOADS:
        return obj["spec"]["template"]["spec"]
    return None


def _containers(spec: Manifest) -> Iterator[Manifest]:
    yield from spec.get("initContainers", [])
    yield from spec.get("containers", [])


def _image_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    tag = last.split(":", 1)[1]
    return tag != "latest" and any(ch.isdigit() for ch in tag)


def _workload_violations(obj: Manifest, spec: Manifest) -> Iterator[str]:
    where = name(obj)
    if not spec.get("securityContext", {}).get("runAsNonRoot"):
        yield f"{where}: pod securityContext.runAsNonRoot must be true"
    if spec.get("serviceAccountName", "default") == "default":
        yield f"{where}: needs its own ServiceAccount"
    for container in _containers(spec):
        here = f"{where} container {container['name']}"
        if not _image_pinned(container.get("image", "")):
            yield f"{here}: image {container.get('image')!r} is not pinned to a version or digest"
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in resources.get(kind, {}):
                    yield f"{here}: resources.{kind}.{resource} missing"
        context = container.get("securityContext", {})
        if context.get("allowPrivilegeEscalation") is not False:
            yield f"{here}: securityContext.allowPrivilegeEscalation must be false"
        if context.get("readOnlyRootFilesystem") is not True:
            yield f"{here}: securityContext.readOnlyRootFilesystem must be true"
        if "ALL" not in context.get("capabilities", {}).get("drop", []):
            yield f"{here}: securityContext.capabilities.drop must contain ALL"
        if obj["kind"] in SERVING_WORKLOADS:
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in container:
                    yield f"{here}: {probe} missing"


def _image_tag(image: str) -> str:
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def _release_violations(obj: Manifest, spec: Manifest) -> Iterator[str]:
    """A migration Job is one per release: named after its image's version, so that applying a
    new release creates a new Job rather than re-applying a finished one."""
    for container in _containers(spec):
        if obj["kind"] == "Job" and "migrate" in container.get("args", []):
            expected = "migrate-" + _image_tag(container["image"]).replace(".", "-").lower()
            if obj["metadata"]["name"] != expected:
                yield f"{name(obj)}: a migration Job of image {container['image']!r} must be named {expected}"


def _selects(policy: Manifest, labels: dict[str, str]) -> bool:
    """True when the policy's pod selector is specific (not the deny-all) and matches `labels`."""
    selector = policy["spec"].get("podSelector", {})
    wanted = selector.get("matchLabels", {})
    return bool(wanted) and all(labels.get(key) == value for key, value in wanted.items())


def policy_violations(objects: list[Manifest]) -> list[str]:
    """The house rules: probes, resources, security context, own ServiceAccount, pinned images,
    a migration Job per release, and a NetworkPolicy of its own for every Service."""
    violations: list[str] = []
    for obj in objects:
        spec = pod_spec(obj)
        if spec is not None:
            violations.extend(_workload_violations(obj, spec))
            violations.extend(_release_violations(obj, spec))
    policies = [obj for obj in objects if obj["kind"] == "NetworkPolicy"]
    for service in (obj for obj in objects if obj["kind"] == "Service"):
        selector = service["spec"].get("selector", {})
        if not any(_selects(policy, selector) for policy in policies):
            violations.append(f"{name(service)}: no NetworkPolicy selects its pods")
    return violations
