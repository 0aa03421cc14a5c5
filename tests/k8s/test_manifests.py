"""`make k8s-validate`: every overlay renders, passes the API schemas strictly and the house rules;
each rule is shown to catch a manifest that breaks it."""

from __future__ import annotations

import copy

import pytest
import yaml

from tests.k8s.manifests import (
    K8S_DIR,
    OVERLAYS,
    TLS_DIR,
    Manifest,
    name,
    pod_spec,
    policy_violations,
    render,
    schema_errors,
)


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[Manifest]:
    return render(K8S_DIR / "overlays" / request.param)


def test_overlay_passes_the_schemas_in_strict_mode(rendered) -> None:
    assert schema_errors(rendered) == []


def test_overlay_follows_the_house_rules(rendered) -> None:
    assert policy_violations(rendered) == []


def test_overlay_has_every_service_with_probes_and_its_network_policy(rendered) -> None:
    names = {name(obj) for obj in rendered}
    for service in ("gateway", "profile", "items", "candidates", "ranking", "policy"):
        assert {
            f"Deployment/{service}",
            f"Service/{service}",
            f"NetworkPolicy/{service}",
            f"ServiceAccount/{service}",
            f"HorizontalPodAutoscaler/{service}",
            f"PodDisruptionBudget/{service}",
        } <= names
    assert {"Job/migrate-0-1-0", "CronJob/retrain", "NetworkPolicy/default-deny-all"} <= names


def test_prod_runs_tf_serving_on_a_gpu_and_local_has_none() -> None:
    prod = {name(obj): obj for obj in render(K8S_DIR / "overlays" / "prod")}
    deployment = prod["Deployment/tf-serving"]
    container = pod_spec(deployment)["containers"][0]
    assert container["image"].startswith("tensorflow/serving:") and container["image"].endswith("-gpu")
    # The server runs the TensorFlow release that exported the models (and whose API stubs we pin).
    version = container["image"].split(":", 1)[1].removesuffix("-gpu")
    assert {
        package: version for package in ("tensorflow", "tensorflow-serving-api")
    }.items() <= _ml_pins().items()
    # One GPU per replica: a rolling update must not start a second pod first.
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    # A fresh cluster has no model yet: starting must not wait for one (it would restart forever).
    assert "tcpSocket" in container["startupProbe"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    local = {name(obj) for obj in render(K8S_DIR / "overlays" / "local")}
    assert "Deployment/tf-serving" not in local
    assert "StatefulSet/postgres" in local


def test_prod_services_request_the_core_their_autoscaler_counts_on() -> None:
    """A Python service uses at most one core; with one CPU requested, the HPA's 70% is 0.7 of it
    (docs/capacity.md), never above the limit."""
    prod = {name(obj): obj for obj in render(K8S_DIR / "overlays" / "prod")}
    for service in ("gateway", "profile", "items", "candidates", "ranking", "policy"):
        container = _container(list(prod.values()), f"Deployment/{service}")
        assert container["name"] == service
        assert container["resources"]["requests"]["cpu"] == "1"
        assert float(container["resources"]["limits"]["cpu"]) >= 1
        target = prod[f"HorizontalPodAutoscaler/{service}"]["spec"]["metrics"][0]["resource"]["target"]
        assert target == {"type": "Utilization", "averageUtilization": 70}


def test_every_service_that_loads_models_mounts_the_model_volume(rendered) -> None:
    """Derived from the code: a service whose app watches model versions needs the volume."""
    services = K8S_DIR.parent / "services"
    loading = {app.parent.name for app in services.glob("*/app.py") if "ModelWatcher(" in app.read_text()}
    assert loading, "no service watches models: the check would prove nothing"
    for service in loading:
        deployment = next((o for o in rendered if name(o) == f"Deployment/{service}"), None)
        assert deployment is not None, service
        mounts = {m["mountPath"] for m in pod_spec(deployment)["containers"][0].get("volumeMounts", [])}
        assert "/var/lib/recsys/models" in mounts, f"{service} loads models but has no model volume"


def _ml_pins() -> dict[str, str]:
    lines = (K8S_DIR.parent / "requirements-ml.txt").read_text().splitlines()
    return dict(line.split("==", 1) for line in lines if "==" in line and not line.startswith("#"))


def _find(objects: list[Manifest], wanted: str) -> Manifest:
    return next(obj for obj in objects if name(obj) == wanted)


def _container(objects: list[Manifest], wanted: str) -> Manifest:
    return pod_spec(_find(objects, wanted))["containers"][0]


BREAKAGES = {
    "readiness probe removed": (
        lambda o: _container(o, "Deployment/ranking").pop("readinessProbe"),
        "Deployment/ranking container ranking: readinessProbe missing",
    ),
    "liveness probe removed": (
        lambda o: _container(o, "StatefulSet/postgres").pop("livenessProbe"),
        "StatefulSet/postgres container postgres: livenessProbe missing",
    ),
    "memory limit removed": (
        lambda o: _container(o, "Deployment/gateway")["resources"]["limits"].pop("memory"),
        "Deployment/gateway container gateway: resources.limits.memory missing",
    ),
    "runs as root": (
        lambda o: pod_spec(_find(o, "CronJob/retrain"))["securityContext"].pop("runAsNonRoot"),
        "CronJob/retrain: pod securityContext.runAsNonRoot must be true",
    ),
    "writable root filesystem": (
        lambda o: _container(o, "Job/migrate-0-1-0")["securityContext"].update(readOnlyRootFilesystem=False),
        "Job/migrate-0-1-0 container migrate: securityContext.readOnlyRootFilesystem must be true",
    ),
    "new release, same migration Job": (
        lambda o: _container(o, "Job/migrate-0-1-0").update(image="recsys:0.2.0"),
        "Job/migrate-0-1-0: a migration Job of image 'recsys:0.2.0' must be named migrate-0-2-0",
    ),
    "capabilities kept": (
        lambda o: _container(o, "Deployment/items")["securityContext"].pop("capabilities"),
        "Deployment/items container items: securityContext.capabilities.drop must contain ALL",
    ),
    "default service account": (
        lambda o: pod_spec(_find(o, "Deployment/policy")).pop("serviceAccountName"),
        "Deployment/policy: needs its own ServiceAccount",
    ),
    "image on latest": (
        lambda o: _container(o, "Deployment/candidates").update(image="recsys:latest"),
        "Deployment/candidates container candidates: image 'recsys:latest' is not pinned to a version or digest",
    ),
    "image without tag": (
        lambda o: _container(o, "Deployment/jaeger").update(image="jaegertracing/all-in-one"),
        "Deployment/jaeger container jaeger: image 'jaegertracing/all-in-one' is not pinned to a version or digest",
    ),
    "certificate Secret not mounted": (
        lambda o: pod_spec(_find(o, "Deployment/policy"))["containers"][0]["volumeMounts"].pop(),
        "Deployment/policy: no certificate Secret mounted at /var/run/recsys/tls/policy",
    ),
    "certificate of another identity": (
        lambda o: _find(o, "Certificate/recsys-ranking")["spec"].update(commonName="gateway"),
        "Certificate/recsys-ranking: commonName must be 'ranking', the identity of Deployment/ranking",
    ),
    "certificate only for servers": (
        lambda o: _find(o, "Certificate/recsys-items")["spec"].update(usages=["server auth"]),
        "Certificate/recsys-items: usages must include server auth and client auth",
    ),
    "service without network policy": (
        lambda o: o.remove(_find(o, "NetworkPolicy/profile")),
        "Service/profile: no NetworkPolicy selects its pods",
    ),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_each_rule_catches_a_manifest_that_breaks_it(breakage: str) -> None:
    objects = copy.deepcopy(render(K8S_DIR / "overlays" / "local"))
    assert policy_violations(objects) == []
    damage, expected = BREAKAGES[breakage]
    damage(objects)
    assert policy_violations(objects) == [expected]


def test_schema_check_rejects_unknown_fields_and_wrong_types() -> None:
    objects = copy.deepcopy(render(K8S_DIR / "overlays" / "local"))
    _container(objects, "Deployment/gateway")["readinessProbe"]["grpcc"] = {"port": 50051}
    _find(objects, "Deployment/profile")["spec"]["replicas"] = "two"
    errors = schema_errors(objects)
    assert len(errors) == 2
    assert errors[0].startswith("Deployment/") and errors[1].startswith("Deployment/")


def test_no_overlay_ships_a_secret_value() -> None:
    """Keys and passwords are generated where the suite runs (secrets.sh), never committed."""
    for kustomization in K8S_DIR.rglob("kustomization.yaml"):
        for generator in yaml.safe_load(kustomization.read_text()).get("secretGenerator", []):
            assert "literals" not in generator, f"{kustomization}: secret {generator['name']} has literals"


def test_both_overlays_run_mutual_tls_with_a_certificate_for_every_identity(rendered) -> None:
    from shared.authz import IDENTITIES

    config = next(o for o in rendered if name(o).startswith("ConfigMap/recsys-config"))["data"]
    assert config["RECSYS_TLS"] == "on" and config["RECSYS_TLS_DIR"] == TLS_DIR
    named = {
        o["spec"]["commonName"] for o in rendered if o["kind"] == "Certificate" and not o["spec"].get("isCA")
    }
    assert named == set(IDENTITIES)
    ca = _find(rendered, "Certificate/recsys-ca")["spec"]
    assert ca["isCA"] and _find(rendered, "Issuer/recsys-ca")["spec"]["ca"]["secretName"] == ca["secretName"]


def test_tf_serving_ssl_config_is_built_from_its_secret(tmp_path) -> None:
    """The init container's script, run here on certificates of tools/certs.py, writes a text-format
    SSLConfig (TF Serving's ssl_config.proto) holding exactly the Secret's PEM files."""
    import subprocess

    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

    from tools.certs import ensure_certificates

    prod = render(K8S_DIR / "overlays" / "prod")
    init = pod_spec(_find(prod, "Deployment/tf-serving"))["initContainers"][0]
    ensure_certificates(tmp_path / "tls", identities=["modelserver"])
    secret, out = tmp_path / "tls" / "modelserver", tmp_path / "ssl"
    out.mkdir()
    script = init["args"][0].replace("/tls/", f"{secret}/").replace("/ssl/", f"{out}/")
    subprocess.run([*init["command"], script], check=True)
    file = descriptor_pb2.FileDescriptorProto(
        name="ssl_config.proto", package="tensorflow.serving", syntax="proto3"
    )
    message = file.message_type.add(name="SSLConfig")
    for number, field in enumerate(("server_key", "server_cert", "custom_ca"), start=1):
        message.field.add(name=field, number=number, type=9, label=1)  # string
    message.field.add(name="client_verify", number=4, type=8, label=1)  # bool
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    config = message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.SSLConfig"))()
    text_format.Parse((out / "ssl.config").read_text(), config)
    assert config.server_key == (secret / "tls.key").read_text()
    assert config.server_cert == (secret / "tls.crt").read_text()
    assert config.custom_ca == (secret / "ca.crt").read_text()
    assert config.client_verify
