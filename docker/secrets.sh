#!/usr/bin/env bash
# Sourced by the crosscheck image's entrypoint (and airflow-init). Secrets arrive as files — Docker secrets
# under /run/secrets — named by <VAR>_FILE; each becomes <VAR> in this process's environment only, and the
# URLs that carry a password are built here, so none is in docker-compose.yaml, .env or `docker inspect`.
for _var in $(compgen -e | grep '_FILE$' || true); do
  _name=${_var%_FILE}
  [ -r "${!_var}" ] || { echo "crosscheck: secret file ${!_var} ($_var) is missing or unreadable" >&2; exit 1; }
  export "$_name=$(cat "${!_var}")"
done
unset _var _name

_quote() {  # a password inside a URL: percent-encoded
  python -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"
}
if [ -n "${AIRFLOW_DB_PASSWORD:-}" ]; then
  _db="${AIRFLOW_DB_USER}:$(_quote "$AIRFLOW_DB_PASSWORD")@${CROSSCHECK_DB_HOST:-postgres}:5432/${AIRFLOW_DB_NAME}"
  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://${_db}"
  export AIRFLOW__CELERY__RESULT_BACKEND="db+postgresql://${_db}"
  unset _db
fi
if [ -n "${WAREHOUSE_DB_PASSWORD:-}" ]; then
  # The CLI in the containers (airflow-init) uses the URL; the tasks the connection crosscheck_warehouse.
  export CROSSCHECK_WAREHOUSE_URL="postgresql://${WAREHOUSE_DB_USER}:$(_quote "$WAREHOUSE_DB_PASSWORD")@${CROSSCHECK_DB_HOST:-postgres}:5432/${WAREHOUSE_DB_NAME}"
  AIRFLOW_CONN_CROSSCHECK_WAREHOUSE=$(python -c 'import sys; from crosscheck.warehouse import connection_json; print(connection_json(sys.argv[1]))' "$CROSSCHECK_WAREHOUSE_URL")
  export AIRFLOW_CONN_CROSSCHECK_WAREHOUSE
fi
unset -f _quote
