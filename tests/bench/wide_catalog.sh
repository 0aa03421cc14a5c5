#!/usr/bin/env bash
# `recsys train all` (GAN included) on a wide synthetic catalog: 22,000 shoppers, 12,000 items,
# 200,000 purchases, imported the documented way into a fresh suite; prints the import and training
# times and the training command's peak memory. Usage: make bench-wide-catalog (about 15 minutes
# on 2 cores with the default RECSYS_TRAIN_MAX_MINUTES of 10).
set -euo pipefail
cd "$(dirname "$0")/../.."
home=$(mktemp -d)
export RECSYS_HOME="$home" RECSYS_DEMO=0
eval "export $(.venv/bin/python -c "from tools.cli.supervisor import free_ports_env; print(' '.join(f'{k}={v}' for k, v in free_ports_env().items()))")"
.venv/bin/python tests/bench/wide_catalog.py "$home/data"
.venv/bin/recsys up --no-gan > "$home/up.log" 2>&1 &
suite=$!
trap 'kill -INT "$suite" 2> /dev/null; wait "$suite" || true' EXIT
until .venv/bin/recsys status > /dev/null 2>&1; do sleep 0.5; done
started=$(date +%s)
.venv/bin/recsys data import csv "$home/data/events.csv.gz" --items "$home/data/items.csv" \
  --mapping '{"event_id": "event_id", "user_id": "user_id", "item_id": "item_id", "type": "type", "timestamp": "timestamp"}' \
  2> /dev/null | grep -E "events"
echo "import: $(( $(date +%s) - started )) s"
started=$(date +%s)
/usr/bin/time -v .venv/bin/recsys train all 2> "$home/train.err" | grep -E "^(training|step|candidate GAN|popularity|ranker|item text|user VAE|EASE|validation|published)"
echo "train all: $(( $(date +%s) - started )) s, peak memory $(grep 'Maximum resident' "$home/train.err" | awk '{printf "%.2f GB", $6 / 1048576}')"
echo "state and logs in $home; reproduce: make bench-wide-catalog"
