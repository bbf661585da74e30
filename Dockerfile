# The crosscheck Airflow image: Airflow 3.3.2 (Python 3.11) + the pinned lock + the project.
# Build: docker compose build   (see README, section "Airflow")
FROM apache/airflow:3.3.2-python3.11

USER root
# Chinese fonts for the report's charts; curl for the health checks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-wqy-zenhei curl \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
USER airflow

# The runtime pins only: requirements-runtime.lock is resolved by `make lock` from pyproject.toml without
# the dev extra, constrained by requirements.lock — the same versions as development and CI, no test tools.
COPY --chown=airflow:root requirements-runtime.lock /opt/crosscheck/requirements-runtime.lock
RUN pip install --no-cache-dir -r /opt/crosscheck/requirements-runtime.lock

# The project: the package, and the data folders it reads (SQL, contracts, suites), DAGs and plugins.
COPY --chown=airflow:root pyproject.toml README.md /opt/crosscheck/
COPY --chown=airflow:root src /opt/crosscheck/src
COPY --chown=airflow:root sql /opt/crosscheck/sql
COPY --chown=airflow:root include /opt/crosscheck/include
COPY --chown=airflow:root expectations /opt/crosscheck/expectations
COPY --chown=airflow:root dags /opt/crosscheck/dags
COPY --chown=airflow:root plugins /opt/crosscheck/plugins
COPY --chown=airflow:root docker/secrets.sh docker/entrypoint.sh /opt/crosscheck/docker/
RUN pip install --no-cache-dir --no-deps /opt/crosscheck

ENV CROSSCHECK_HOME=/opt/crosscheck \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/crosscheck/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/crosscheck/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    AIRFLOW__CORE__DEFAULT_TIMEZONE=Asia/Shanghai \
    TZ=Asia/Shanghai
# Secrets from files (Docker secrets) before Airflow's entrypoint: docker/entrypoint.sh.
ENTRYPOINT ["/usr/bin/dumb-init", "--", "/opt/crosscheck/docker/entrypoint.sh"]
