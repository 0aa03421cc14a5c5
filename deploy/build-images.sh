#!/usr/bin/env bash
# Builds the suite's two images from deploy/Dockerfile: recsys (every service, the CLI) and
# recsys-ml (TensorFlow: the model server and the retraining job).
#   CONTAINER_ENGINE  podman (default) or docker, with any global options this machine needs
#   PYTHON_IMAGE      the base (default: the Dockerfile's python:3.11-slim; deploy/base-image.sh
#                     makes one from Debian's packages where no registry is reachable)
#   BUILD_OPTIONS     more options for the build, e.g. a CA bundle to mount where egress re-signs TLS
#   TAG               image version (default: the package's)
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE=${CONTAINER_ENGINE:-podman}
TAG=${TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)}
BASE=()
if [[ -n "${PYTHON_IMAGE:-}" ]]; then BASE=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE"); fi
# shellcheck disable=SC2086  # the options are words on purpose
$ENGINE build ${BUILD_OPTIONS:-} "${BASE[@]}" -f deploy/Dockerfile -t "recsys:$TAG" .
# shellcheck disable=SC2086
$ENGINE build ${BUILD_OPTIONS:-} "${BASE[@]}" --build-arg REQUIREMENTS=requirements-ml.txt \
  -f deploy/Dockerfile -t "recsys-ml:$TAG" .
echo "built recsys:$TAG and recsys-ml:$TAG"
