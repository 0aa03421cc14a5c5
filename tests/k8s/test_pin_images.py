"""`make pin-images` against a real registry (Debian's docker-registry, the reference
implementation of the distribution API) holding small images under the manifests' names."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s.manifests import K8S_DIR, policy_violations, render
from tools.cli.supervisor import free_port
from tools.deploy import pin_images

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        message = f"{tool} not found (Debian: apt-get install skopeo docker-registry)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running registry on a free port: its host:port."""
    binary = _require("docker-registry")
    _require("skopeo")
    home = tmp_path_factory.mktemp("registry")
    address = f"127.0.0.1:{free_port()}"
    config = home / "config.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {home / 'data'}\n"
        f"http:\n  addr: {address}\nlog:\n  level: error\n"
    )
    process = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://{address}/v2/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("the registry did not start")
        yield address
    finally:
        process.terminate()
        process.wait(timeout=10)


def _blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def oci_image(layout: Path, label: str) -> None:
    """A one-layer OCI image layout (one file saying `label`), tagged "latest"."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        content = label.encode()
        info = tarfile.TarInfo("label.txt")
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
    layer = tar.getvalue()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"image": label}},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            **_blob(layout, json.dumps(config).encode()),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                **_blob(layout, gzip.compress(layer)),
            }
        ],
    }
    described = {"mediaType": OCI_MANIFEST, **_blob(layout, json.dumps(manifest).encode())}
    described["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [described]}))


def push(registry: str, image: str, tmp_path: Path) -> None:
    """The image pushed to the registry under the name `pin-images --mirror` looks it up by."""
    name, tag = pin_images.split_reference(image)
    layout = tmp_path / hashlib.sha256(image.encode()).hexdigest()[:12]
    oci_image(layout, image)
    target = f"{pin_images.source_repository(name, registry)}:{tag}"
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            f"oci:{layout}:latest",
            f"docker://{target}",
        ],
        check=True,
        capture_output=True,
    )


def served_digest(registry: str, repository: str, tag: str) -> str:
    """The digest the registry itself reports for a tag (its Docker-Content-Digest header)."""
    path = repository.removeprefix(f"{registry}/")
    request = urllib.request.Request(
        f"http://{registry}/v2/{path}/manifests/{tag}", method="HEAD", headers={"Accept": OCI_MANIFEST}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.headers["Docker-Content-Digest"]


def test_every_third_party_image_is_pinned_to_the_digest_its_registry_serves(
    registry: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = pin_images.third_party_images()
    assert {"prom/prometheus", "tensorflow/serving", "postgres"} <= {i.rsplit(":", 1)[0] for i in images}
    for image in images:
        push(registry, image, tmp_path)
    component = tmp_path / "k8s" / "components" / "image-digests" / "kustomization.yaml"
    shutil.copytree(K8S_DIR, tmp_path / "k8s")

    assert pin_images.main(["--mirror", registry, "--insecure", "--out", str(component)]) == 0

    expected = {}
    for image in images:
        name, tag = pin_images.split_reference(image)
        repository = pin_images.source_repository(name, registry)
        expected[name] = f"{repository}:{tag}@{served_digest(registry, repository, tag)}"
    assert len(set(expected.values())) == len(images)  # one image each, so a mix-up shows
    for overlay in ("local", "prod"):
        rendered = render(tmp_path / "k8s" / "overlays" / overlay)
        if overlay == "prod":  # the overlay that includes the pins
            found = {
                container["image"]
                for obj in rendered
                for spec in [obj.get("spec", {}).get("template", {}).get("spec")]
                if spec
                for container in spec.get("containers", [])
            }
            third_party = {image for image in found if "/recsys/" not in image}
            assert third_party and third_party <= set(expected.values()), third_party
            assert policy_violations(rendered) == []
    assert "pinned 6 images" in capsys.readouterr().out


def test_a_tag_the_registry_does_not_hold_fails_with_one_line_and_writes_nothing(
    registry: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "kustomization.yaml"
    assert pin_images.main(["--mirror", f"{registry}/empty", "--insecure", "--out", str(out)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("pin-images: ") and len(error.strip().splitlines()) == 1, error
    assert "empty/" in error
    assert not out.exists()
