#!/usr/bin/env bash
# Runs once, when the PostgreSQL volume is first initialised (docker-entrypoint-initdb.d).
# Two databases with their own roles: the Airflow metadata DB and the crosscheck warehouse.
# Passwords come from Docker secrets (files named by *_PASSWORD_FILE); none is defined here.
set -euo pipefail
# Docker secrets: the passwords are files (<VAR>_FILE), read here.
AIRFLOW_DB_PASSWORD=${AIRFLOW_DB_PASSWORD:-$(cat "${AIRFLOW_DB_PASSWORD_FILE:?}")}
WAREHOUSE_DB_PASSWORD=${WAREHOUSE_DB_PASSWORD:-$(cat "${WAREHOUSE_DB_PASSWORD_FILE:?}")}
: "${AIRFLOW_DB_USER:?}" "${AIRFLOW_DB_PASSWORD:?}" "${AIRFLOW_DB_NAME:?}"
: "${WAREHOUSE_DB_USER:?}" "${WAREHOUSE_DB_PASSWORD:?}" "${WAREHOUSE_DB_NAME:?}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v airflow_user="$AIRFLOW_DB_USER" -v airflow_password="$AIRFLOW_DB_PASSWORD" -v airflow_db="$AIRFLOW_DB_NAME" \
  -v warehouse_user="$WAREHOUSE_DB_USER" -v warehouse_password="$WAREHOUSE_DB_PASSWORD" \
  -v warehouse_db="$WAREHOUSE_DB_NAME" <<'SQL'
CREATE ROLE :"airflow_user" LOGIN PASSWORD :'airflow_password';
CREATE DATABASE :"airflow_db" OWNER :"airflow_user" ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE :"airflow_db" FROM PUBLIC;

CREATE ROLE :"warehouse_user" LOGIN PASSWORD :'warehouse_password';
CREATE DATABASE :"warehouse_db" OWNER :"warehouse_user" ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE :"warehouse_db" FROM PUBLIC;

-- The warehouse's NOLOGIN roles (sql/migrations/0006_roles.sql grants them their privileges; the warehouse
-- user may not create roles itself). Outputs are read as crosscheck_reporting: SELECT on mart only.
CREATE ROLE crosscheck_loader NOLOGIN;
CREATE ROLE crosscheck_reporting NOLOGIN;
GRANT crosscheck_loader, crosscheck_reporting TO :"warehouse_user";
SQL
echo "crosscheck: created databases $AIRFLOW_DB_NAME and $WAREHOUSE_DB_NAME with their roles"
