# The usual targets. `make run` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
INSTALLED := $(VENV)/.installed
PROTOS := $(shell find protos -name '*.proto' | sort)
GENERATED := shared/gen/.generated
BUF := node_modules/.bin/buf

.PHONY: install proto run test lint format bench bench-load bench-rpc bench-candidates bench-ranking bench-served bench-policy bench-policy-ope bench-push bench-import bench-wide-catalog bench-scale chaos dashboard-check images base-image pin-images image-start k8s k8s-validate clean

install: $(GENERATED)

$(INSTALLED): requirements.txt requirements-ml.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# Python stubs and type stubs from the contracts; the generated tree is never edited.
$(GENERATED): $(INSTALLED) $(PROTOS)
	rm -rf shared/gen && mkdir -p shared/gen
	$(PY) -m grpc_tools.protoc -I protos \
		--python_out=shared/gen --pyi_out=shared/gen --grpc_python_out=shared/gen \
		--plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc --mypy_grpc_out=shared/gen \
		$(PROTOS) 2> >(grep -v '^Writing mypy' >&2)
	find shared/gen/recsys -type d -exec touch {}/__init__.py \;
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

proto: $(GENERATED)

run: install
	$(BIN)/recsys up

test: install $(BUF)
	$(BIN)/pytest -q

# The buf CLI and the Node client example's gRPC packages.
$(BUF): package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	@touch $@

# The contracts of the last release as a buf image (0.1.0, the first to name Go and Java packages;
# `buf build -o protos/releases/<version>.binpb` at each release): `make lint` fails on any change to
# protos/ that breaks a client built from them (buf's FILE rules).
PROTO_RELEASE := protos/releases/v0.1.0.binpb

lint: install $(BUF)
	$(BUF) lint
	$(BUF) breaking --against $(PROTO_RELEASE)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Render every overlay, validate it against the Kubernetes schemas and the house rules
# (also part of `make test`); `make k8s` writes the rendered overlays to var/k8s/.
k8s-validate: install
	k8s/overlays/local/secrets.sh
	$(BIN)/pytest -q tests/k8s

# The two container images with podman (or CONTAINER_ENGINE=docker); PYTHON_IMAGE picks the base.
# Without a registry: `make base-image` makes one from Debian's packages (root, debootstrap).
images:
	deploy/build-images.sh

base-image:
	deploy/base-image.sh

# The third-party images pinned to the digests their registry serves now (skopeo; MIRROR=host
# looks them up in, and pulls them from, your own registry): writes k8s/components/image-digests,
# which the prod overlay includes. Rerun to move to new digests; commit the result.
pin-images: install
	$(PY) -m tools.deploy.pin_images $(if $(MIRROR),--mirror $(MIRROR))

# Every Job, Deployment and CronJob of the prod overlay started from the built images against the
# local PostgreSQL, as tests/k8s/test_image_start.py does from venvs (RECSYS_CONTAINER_ENGINE and
# RECSYS_CONTAINER_RUN_OPTIONS pass what this machine's engine needs).
image-start: install
	RECSYS_TEST_IMAGES=1 $(PY) -m pytest -q tests/k8s/test_image_start.py -k real_image

k8s: k8s-validate
	mkdir -p var/k8s
	for overlay in k8s/overlays/*/; do \
		kubectl kustomize $$overlay > var/k8s/$$(basename $$overlay).yaml; \
	done
	@ls var/k8s

bench: install
	$(BIN)/recsys bench
	$(BIN)/recsys eval --protocol retail-temporal --no-baselines --cold-start

# The suite (demo data, GAN, learned ranker, bandit) beside a null pipeline of the same shape under
# one open-loop generator: rps, p50/p99/p99.9, errors, degraded share, CPU ms per Recommend of each
# service, time per stage (needs the models `make run` trains; about 3 minutes). Writes docs/results/.
bench-load: install
	$(BIN)/recsys bench-load --out docs/results

# What one hop between the suite's processes costs apart from the work behind it: an empty Rank
# through bare gRPC and through the suite's server stack and client channel (about a minute; needs
# nothing trained). Writes docs/results/rpc-stack.*.
bench-rpc: install
	$(BIN)/recsys bench-rpc --out docs/results

# The suite under steady load while each process is killed and hung in turn and the policy is down
# for two minutes, then 10,000 fuzzed requests, the certificate and key matrices and 4x overload;
# prints each invariant beside its target (needs the models `make run` trains; about 9 minutes, on
# a copy of the state). Not part of `make test`: its small versions are. Writes docs/results/.
chaos: install
	$(BIN)/recsys chaos --out docs/results

# Every Grafana panel asked of a real Prometheus (the `prometheus` binary: apt-get install prometheus)
# that scrapes a throwaway suite under a minute of mixed load, with the alert rules loaded; needs the
# models `make run` trains. Not part of `make test`. Writes docs/results/dashboard.*.
dashboard-check: install
	$(BIN)/recsys dashboard-check --out docs/results

# Recall@20, NDCG@20 and Recall@200 of each candidate source and of their merge on
# retail-temporal, beside most popular, item-kNN and EASE (trains the GAN: minutes on CPU).
bench-candidates: install
	$(BIN)/recsys eval --protocol retail-temporal --candidates

# The ranker's ablation on retail-temporal: candidates alone, the ranker, the ranker without
# each feature group (trains the GAN twice and the ranker six times: about 20 minutes on CPU).
bench-ranking: install
	$(BIN)/recsys eval --protocol retail-temporal --no-baselines --ranking

# The whole served pipeline over gRPC on each protocol, greedy and with the default policy, three
# seeds, beside every baseline of the same run (a fresh suite per protocol trains every model on the
# training part, without the GAN: about 30 minutes per protocol on CPU); SERVED_PROTOCOLS=... for fewer.
# Writes docs/results/.
SERVED_PROTOCOLS ?= retail-temporal random-holdout leave-last-out sim-popular sim-taste sim-bunched sim-bestseller
bench-served: install
	for protocol in $(SERVED_PROTOCOLS); do \
		$(BIN)/recsys eval --protocol $$protocol --served --no-gan --seeds 3 --out var/eval/$$protocol-served || exit 1; \
		cp var/eval/$$protocol-served/results.md docs/results/$$protocol-served.md; \
		cp var/eval/$$protocol-served/results.json docs/results/$$protocol-served.json; \
	done

# Greedy, epsilon-greedy and the bandit on simulated shoppers through the gateway: 20,000
# sessions x 5 seeds, then an off-policy estimate of the bandit from an epsilon-greedy log
# against what it earns when served (a fresh suite per seed: about an hour on 2 CPU cores).
bench-policy: install
	$(BIN)/recsys policy simulate --sessions 20000 --seeds 5 --out reports/policy-simulation.png

# Off-policy evaluation of the bandit from an epsilon-greedy log (epsilon 0.5), against its simulated value.
bench-policy-ope: install
	$(BIN)/recsys policy simulate --sessions 5000 --seeds 5 --ope-sessions 8000 --epsilon 0.5 --out reports/policy-ope.png

# A push campaign over 100,000 simulated shoppers on a fresh suite: throughput, every push checked
# against the rules, three sample messages per language, and a rerun that plans nobody twice.
bench-push: install
	$(BIN)/recsys push simulate --shoppers 100000 --trained-on 5000 --out reports/push-simulation.jsonl --results docs/results

# `recsys train all` with the GAN on a synthetic 22,000 x 12,000 catalog (200,000 purchases):
# import and training times, peak memory (about 30 minutes on 2 cores).
bench-wide-catalog: install
	tests/bench/wide_catalog.sh

# A million simulated shoppers x 100,000 items x 30 days (about 40M events) imported, trained and
# served on PostgreSQL, with each step's time and peak memory (hours on 2 cores; not in CI).
# SCALE= passes other sizes, e.g. SCALE="--shoppers 50000 --items 10000".
bench-scale: install
	$(BIN)/recsys bench-scale --out docs/results $(SCALE)

# Events/s of the Online Retail import through the gRPC API, SQLite and PostgreSQL.
bench-import: install
	tests/bench/import_throughput.sh

clean:
	rm -rf $(VENV) shared/gen node_modules .pytest_cache .ruff_cache *.egg-info
