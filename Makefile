# The two commands of the README: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint airflow bench clean

setup: $(STAMP)

# The lock file pins every package (Airflow's remote constraint files are unreachable here).
$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

demo: setup
	$(BIN)/crosscheck demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .

# Regenerate the lock after changing dependencies in pyproject.toml.
# requirements-runtime.lock (the Docker image): the same pins without the dev extra — resolved with
# requirements.lock as constraints, so every version equals the development lock's.
lock:
	$(BIN)/uv pip compile pyproject.toml --extra dev -p 3.11 -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml -p 3.11 -c requirements.lock -o requirements-runtime.lock

clean:
	rm -rf var/reports var/outbox var/archive var/demo

# Airflow standalone on this checkout (api-server + scheduler + dag-processor + triggerer, LocalExecutor):
# AIRFLOW_HOME=var/airflow, metadata in the database `airflow` of the embedded PostgreSQL, UI on
# http://localhost:8080 (FAB login printed; kept in var/airflow/admin_password).
airflow: setup
	$(BIN)/crosscheck airflow
