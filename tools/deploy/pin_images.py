"""Pins the manifests' third-party images to the digests their registry serves now.

Every image the manifests name except the suite's own (recsys and recsys-ml, pinned by
release version) is looked up with `skopeo inspect --raw`: the digest is the SHA-256 of the
manifest the tag names (the multi-platform index where there is one, so every node pulls its
own platform's image of exactly that index). The digests are written, beside the tags, as a
kustomize component, k8s/components/image-digests, which the prod overlay includes: from then
on the cluster pulls `name:tag@sha256:...` (the digest decides) and a moved tag changes
nothing until this is rerun.

`--mirror HOST` looks the images up in your own registry (HOST/prom/prometheus for Docker Hub's
prom/prometheus, HOST/library/postgres for postgres) and points the manifests at it. skopeo
reads registry credentials from `skopeo login` (or docker's config). Needs `skopeo` (Debian:
apt-get install skopeo).

    python -m tools.deploy.pin_images [--mirror registry.example.com] [--insecure]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
COMPONENT = K8S / "components" / "image-digests" / "kustomization.yaml"
OWN_IMAGES = ("recsys", "recsys-ml")
SKOPEO_MESSAGE = re.compile(r'msg="((?:[^"\\]|\\.)*)"')  # its log line: time=... level=fatal msg="..."
HEADER = """\
# Third-party images pinned to digests: written by `make pin-images` (tools/deploy/pin_images.py);
# rerun it to move to new digests or a new --mirror, do not edit by hand. The prod overlay
# includes this component; an empty list leaves the images at their tags.
"""


class PinError(Exception):
    """A lookup that failed, with the tool's own message."""


@dataclass(frozen=True)
class Pin:
    """One image as the manifests name it, where it is pulled from, and its digest there."""

    name: str  # as the manifests spell it, without tag: "prom/prometheus"
    tag: str
    pulled_from: str  # repository the cluster pulls: "prom/prometheus" or "mirror.example/prom/prometheus"
    digest: str  # "sha256:..."


def split_reference(image: str) -> tuple[str, str]:
    """("prom/prometheus", "v3.0.1") from "prom/prometheus:v3.0.1"; a digest or no tag is an error."""
    if "@" in image:
        raise PinError(f"{image} is already pinned by digest")
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon <= slash:
        raise PinError(f"{image} names no tag")
    return image[:colon], image[colon + 1 :]


def third_party_images(k8s: Path = K8S) -> list[str]:
    """Every distinct third-party image the manifests name, with its tag, as written in them
    (their sources, not the rendered overlays: once pinned, those no longer show the tag)."""
    found: set[str] = set()
    for path in sorted(k8s.rglob("*.yaml")):
        for line in path.read_text().splitlines():
            key, _, value = line.strip().removeprefix("- ").partition(":")
            image = value.strip().strip("\"'")
            if (
                key == "image"
                and image
                and image.split("@")[0].rsplit(":", 1)[0].rsplit("/", 1)[-1] not in OWN_IMAGES
            ):
                found.add(image)
    return sorted(found)


def source_repository(name: str, mirror: str) -> str:
    """Where `name` is pulled from: the mirror when one is given, else its own registry (Docker
    Hub for names without a registry host)."""
    if not mirror:
        return name
    first, _, rest = name.partition("/")
    if not rest:
        path = f"library/{name}"  # Docker Hub's official images, as mirrors of it name them
    elif "." in first or ":" in first or first == "localhost":
        path = rest  # the image's own registry is replaced by the mirror
    else:
        path = name
    return f"{mirror.rstrip('/')}/{path}"


def manifest_digest(repository: str, tag: str, insecure: bool) -> str:
    """The digest of the manifest `repository:tag` names in its registry (skopeo inspect --raw)."""
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise PinError("skopeo not found (Debian: apt-get install skopeo)")
    command = [skopeo, "inspect", "--raw", "--retry-times", "2"]
    if insecure:
        command.append("--tls-verify=false")
    result = subprocess.run([*command, f"docker://{repository}:{tag}"], capture_output=True, check=False)
    if result.returncode != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        raise PinError(f"{repository}:{tag}: {_skopeo_error(lines[-1] if lines else 'skopeo failed')}")
    json.loads(result.stdout)  # a manifest, not an error page
    return "sha256:" + hashlib.sha256(result.stdout).hexdigest()


def _skopeo_error(line: str) -> str:
    logged = SKOPEO_MESSAGE.search(line)
    return logged.group(1).replace('\\"', '"') if logged else line


def pin(image: str, mirror: str = "", insecure: bool = False) -> Pin:
    """`image` (name:tag as the manifests write it) with the digest its tag names where it is pulled from."""
    name, tag = split_reference(image)
    pulled_from = source_repository(name, mirror)
    return Pin(name, tag, pulled_from, manifest_digest(pulled_from, tag, insecure))


def component(pins: list[Pin]) -> str:
    """The kustomize component that points each image at its digest (and mirror)."""
    lines = [HEADER, "apiVersion: kustomize.config.k8s.io/v1alpha1", "kind: Component"]
    if not pins:
        return "\n".join([*lines, "images: []", ""])
    lines.append("images:")
    for found in pins:
        lines.append(f"  - name: {found.name}")
        if found.pulled_from != found.name:
            lines.append(f"    newName: {found.pulled_from}")
        lines.append(f'    newTag: "{found.tag}"  # kept beside the digest, for people and checks to read')
        lines.append(f'    digest: "{found.digest}"')
    return "\n".join([*lines, ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.deploy.pin_images",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
        epilog="Writes k8s/components/image-digests/kustomization.yaml (the prod overlay includes it).",
    )
    parser.add_argument("--mirror", default="", help="registry host (and path) to pull every image from")
    parser.add_argument("--insecure", action="store_true", help="plain HTTP / unverified TLS to the registry")
    parser.add_argument("--out", type=Path, default=COMPONENT, help="the component file to write")
    args = parser.parse_args(argv)
    try:
        images = third_party_images()
        pins = []
        for image in images:
            found = pin(image, args.mirror, args.insecure)
            print(f"{image} -> {found.pulled_from}@{found.digest}")
            pins.append(found)
    except PinError as error:
        print(f"pin-images: {error}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(component(pins))
    print(f"pinned {len(pins)} images in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
