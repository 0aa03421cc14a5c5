#!/usr/bin/env bash
# Import throughput of the full Online Retail set through the gRPC API, then RecordFeedback's
# through the gateway (tools/bench/feedback.py), on SQLite and on PostgreSQL (a throw-away schema
# in RECSYS_TEST_POSTGRES_URL's database), in one run.
# Usage: make bench-import   (OUT=path writes the lines there too; default docs/results/import.md)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-docs/results/import.md}
lines=$(mktemp)
PG_URL=${RECSYS_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
PSQL_URL=${PG_URL/+psycopg/}
for backend in sqlite postgresql; do
  home=$(mktemp -d)
  ports=$(.venv/bin/python -c "from tools.cli.supervisor import free_ports_env; print(' '.join(f'{k}={v}' for k, v in free_ports_env().items()))")
  database=""
  if [ "$backend" = postgresql ]; then
    schema="bench_import_$(date +%s)"
    psql "$PSQL_URL" -qc "create schema $schema"
    database="RECSYS_DATABASE_URL=$PG_URL?options=-csearch_path%3D$schema"
  fi
  # shellcheck disable=SC2086
  env $ports $database RECSYS_HOME="$home" RECSYS_DEMO=0 .venv/bin/recsys up > "$home/up.log" 2>&1 &
  suite=$!
  # shellcheck disable=SC2086
  until env $ports RECSYS_HOME="$home" .venv/bin/recsys status > /dev/null 2>&1; do sleep 0.5; done
  # shellcheck disable=SC2086
  env $ports $database RECSYS_HOME="$home" .venv/bin/recsys data import online-retail 2> /dev/null \
    | grep -E "events" | sed "s/^/$backend: /" | tee -a "$lines"
  # shellcheck disable=SC2086
  env $ports $database RECSYS_HOME="$home" .venv/bin/python -m tools.bench.feedback 2> /dev/null \
    | sed "s/^/$backend: /" | tee -a "$lines"
  kill -INT "$suite"; wait "$suite" || true
  if [ "$backend" = postgresql ]; then psql "$PSQL_URL" -qc "drop schema $schema cascade" 2> /dev/null; fi
  rm -rf "$home"
done
echo "reproduce: make bench-import"
{
  echo "# Import and feedback throughput"
  echo
  echo "Command: \`make bench-import\` · commit $(.venv/bin/python -c 'from tools.provenance import commit; print(commit())') · $(date -u '+%Y-%m-%d %H:%M UTC') · $(nproc) CPUs"
  echo
  echo "The bundled Online Retail data imported through ProfileService.RecordEvents (batches of 5,000),"
  echo "then 200,000 shopper events of its shoppers through the gateway's RecordFeedback"
  echo "(tools/bench/feedback.py), on SQLite and on PostgreSQL, each on a fresh suite:"
  echo
  echo '```'
  cat "$lines"
  echo '```'
} > "$OUT"
rm -f "$lines"
echo "written: $OUT"
