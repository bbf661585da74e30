#!/usr/bin/env bash
# The crosscheck image's entrypoint: secrets from files (docker/secrets.sh), then Airflow's own entrypoint.
set -euo pipefail
source /opt/crosscheck/docker/secrets.sh
exec /entrypoint "$@"
