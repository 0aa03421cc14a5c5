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
CERT_MANAGER = "cert-manager.io/"
TLS_DIR = "/var/run/recsys/tls"
# The certificate identity (shared/authz.py) each workload runs as, where it differs from its name.
WORKLOAD_IDENTITY = {"CronJob/retrain": "trainer", "Deployment/tf-serving": "modelserver"}

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
            if obj["apiVersion"].startswith(CERT_MANAGER):
                continue  # no schema ships with Kubernetes: tls_violations checks these

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
        if obj["kind"] in SERVING_WORKLOADS and container in spec.get("containers", []):
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
    violations.extend(tls_violations(objects))
    policies = [obj for obj in objects if obj["kind"] == "NetworkPolicy"]
    for service in (obj for obj in objects if obj["kind"] == "Service"):
        selector = service["spec"].get("selector", {})
        if not any(_selects(policy, selector) for policy in policies):
            violations.append(f"{name(service)}: no NetworkPolicy selects its pods")
    return violations


def _config(objects: list[Manifest]) -> dict[str, str]:
    """The suite's settings (the generated ConfigMap's name carries a hash)."""
    found = next((o for o in objects if name(o).startswith("ConfigMap/recsys-config")), None)
    return found.get("data", {}) if found else {}


def _identity_of(obj: Manifest) -> str | None:
    """The identity a workload calls or serves as under mTLS (None: it speaks no gRPC)."""
    where = name(obj)
    if where in WORKLOAD_IDENTITY:
        return WORKLOAD_IDENTITY[where]
    labels = obj["metadata"].get("labels", {})
    if obj["kind"] == "Deployment" and labels.get("app.kubernetes.io/component") == "service":
        return obj["metadata"]["name"]
    return None


def tls_violations(objects: list[Manifest]) -> list[str]:
    """With RECSYS_TLS on: every gRPC workload mounts its own identity's Secret at
    TLS_DIR/<identity>, issued by a Certificate of that common name, for client and server use,
    from an Issuer of the same manifests; servers' certificates name their Service."""
    if _config(objects).get("RECSYS_TLS") != "on":
        return []
    violations = []
    certificates = {
        o["spec"]["secretName"]: o
        for o in objects
        if o["kind"] == "Certificate" and not o["spec"].get("isCA")
    }
    issuers = {o["metadata"]["name"] for o in objects if o["kind"] in ("Issuer", "ClusterIssuer")}
    services = {o["metadata"]["name"] for o in objects if o["kind"] == "Service"}
    for obj in objects:
        spec, identity = pod_spec(obj), _identity_of(obj)
        if spec is None or identity is None:
            continue
        volumes = {v["name"]: v.get("secret", {}).get("secretName") for v in spec.get("volumes", [])}
        mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0].get("volumeMounts", [])}
        wanted = f"{TLS_DIR}/{identity}"
        secret = volumes.get(mounts.get(wanted, ""))
        if obj["metadata"]["name"] == "tf-serving":
            init = {
                m["mountPath"]: m["name"] for c in spec.get("initContainers", []) for m in c["volumeMounts"]
            }
            secret = volumes.get(init.get("/tls", ""))
            if not any("--ssl_config_file" in arg for arg in spec["containers"][0].get("args", [])):
                violations.append(f"{name(obj)}: TF Serving without --ssl_config_file under mTLS")
            wanted = "/tls (its init container)"
        if secret is None:
            violations.append(f"{name(obj)}: no certificate Secret mounted at {wanted}")
            continue
        certificate = certificates.get(secret)
        if certificate is None:
            violations.append(f"{name(obj)}: Secret {secret} is issued by no Certificate")
            continue
        cert = certificate["spec"]
        if cert.get("commonName") != identity:
            violations.append(
                f"{name(certificate)}: commonName must be {identity!r}, the identity of {name(obj)}"
            )
        if not {"server auth", "client auth"} <= set(cert.get("usages", [])):
            violations.append(f"{name(certificate)}: usages must include server auth and client auth")
        if cert.get("issuerRef", {}).get("name") not in issuers:
            violations.append(f"{name(certificate)}: its issuer is not in the manifests")
        service = obj["metadata"]["name"]
        if service in services and service not in cert.get("dnsNames", []):
            violations.append(f"{name(certificate)}: dnsNames must include the Service name {service!r}")
    return violations
