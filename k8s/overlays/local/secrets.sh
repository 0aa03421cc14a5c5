#!/bin/sh
# Writes this overlay's secrets once, at random: the API key the gateway accepts, Grafana's admin
# password and the in-cluster PostgreSQL's password (with the database URL that carries it).
# Nothing of the kind is shipped; the files are git-ignored and kept on rerun.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
random() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
if [ ! -s "$here/api-keys.env" ]; then
  (umask 077 && printf 'keys=%s\n' "$(random)" > "$here/api-keys.env")
fi
if [ ! -s "$here/grafana-admin.env" ]; then
  (umask 077 && printf 'user=admin\npassword=%s\n' "$(random)" > "$here/grafana-admin.env")
fi
if [ ! -s "$here/postgres-credentials.env" ]; then
  password=$(random)
  (umask 077 && printf 'POSTGRES_USER=recsys\nPOSTGRES_PASSWORD=%s\nPOSTGRES_DB=recsys\n' "$password" \
    > "$here/postgres-credentials.env")
  (umask 077 && printf 'url=postgresql+psycopg://recsys:%s@postgres:5432/recsys\n' "$password" \
    > "$here/recsys-database.env")
fi
