"""`make k8s-validate`: every overlay renders, passes the API schemas strictly and the house rules;
each rule is shown to catch a manifest that breaks it."""

from __future__ import annotations

import copy

import pytest

from tests.k8s.manifests import (
    K8S_DIR,
    OVERLAYS,
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
    assert {"Job/migrate", "CronJob/retrain", "NetworkPolicy/default-deny-all"} <= names


def test_prod_runs_tf_serving_on_a_gpu_and_local_has_none() -> None:
    prod = {name(obj): obj for obj in render(K8S_DIR / "overlays" / "prod")}
    container = pod_spec(prod["Deployment/tf-serving"])["containers"][0]
    assert container["image"].startswith("tensorflow/serving:") and container["image"].endswith("-gpu")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    local = {name(obj) for obj in render(K8S_DIR / "overlays" / "local")}
    assert "Deployment/tf-serving" not in local
    assert "StatefulSet/postgres" in local


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
        lambda o: _container(o, "Job/migrate")["securityContext"].update(readOnlyRootFilesystem=False),
        "Job/migrate container migrate: securityContext.readOnlyRootFilesystem must be true",
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
