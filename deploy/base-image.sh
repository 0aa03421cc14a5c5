#!/usr/bin/env bash
# A Python 3.11 base image made from Debian's own packages, for machines that reach Debian's mirror
# but no container registry: debootstrap a minimal bookworm with python3 and venv, import it as
# localhost/bookworm-python:3.11, then `make images PYTHON_IMAGE=localhost/bookworm-python:3.11`.
# Needs root, debootstrap and podman (or docker: CONTAINER_ENGINE=docker).
set -euo pipefail
ENGINE=${CONTAINER_ENGINE:-podman}
TAG=${BASE_IMAGE:-localhost/bookworm-python:3.11}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOTFS=$(mktemp -d)
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
  bookworm "$ROOTFS" "$MIRROR"
tar -C "$ROOTFS" -c . | $ENGINE import - "$TAG"
echo "base image: $TAG"
