"""docker-compose.yaml: validated with `docker-compose config` when the tool is installed (Debian's
docker-compose 1.29 validates without a docker engine), otherwise by a structural check with PyYAML.
Either way: the required services with health checks, and no secret in the file or its resolved
configuration: secrets are Docker secrets (files), read in the containers by docker/secrets.sh, which is
run here too.

The profile "celery" (Redis, Celery workers, Flower) is off by default. `docker-compose config` (1.29)
prints every service, whatever the active profiles, so which services `up` would start is computed here
with the compose rule: a service runs when it has no `profiles` or one of them is active."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from crosscheck.settings import ROOT

COMPOSE = ROOT / "docker-compose.yaml"
SERVICES = {"postgres", "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
            "airflow-triggerer"}
LONG_RUNNING = SERVICES - {"airflow-init"}
CELERY_SERVICES = {"redis", "airflow-worker", "flower"}
AIRFLOW_SERVICES = (SERVICES | CELERY_SERVICES) - {"postgres", "redis"}
DATA_MOUNTS = {f"/data/{folder}" for folder in ("landing", "archive", "outbox", "reports", "feedback", "var")}
LOCAL_EXECUTOR = "crosscheck.executor.WarmLocalExecutor"  # Airflow's, warm (crosscheck/executor.py)
EXECUTOR_SWITCH = "${AIRFLOW_EXECUTOR:-" + LOCAL_EXECUTOR + "}"
SECRET_KEY = re.compile(r"PASSWORD|SECRET|FERNET|SQL_ALCHEMY_CONN|WAREHOUSE_URL|RESULT_BACKEND|AIRFLOW_CONN_", re.I)
SECRETS = {"postgres_password": "pw-postgres", "airflow_db_password": "pw-air/flow@1",
           "warehouse_db_password": "pw-ware:house%", "airflow_fernet_key": "dummy-fernet-key",
           "airflow_secret_key": "dummy-secret-key", "airflow_admin_password": "pw-admin"}
SECRET_VALUES = set(SECRETS.values())
DUMMY_ENV = {"AIRFLOW_DB_USER": "airflow", "AIRFLOW_DB_NAME": "airflow", "WAREHOUSE_DB_USER": "crosscheck",
             "WAREHOUSE_DB_NAME": "crosscheck"}
CELERY_ENV = {"COMPOSE_PROFILES": "celery", "AIRFLOW_EXECUTOR": "CeleryExecutor"}


def _docker_compose() -> str | None:
    return shutil.which("docker-compose") or (
        "/usr/bin/docker-compose" if Path("/usr/bin/docker-compose").exists() else None)


def _secrets_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir(exist_ok=True)
    for name, value in SECRETS.items():
        (folder / name).write_text(value + "\n", encoding="utf-8")
    return folder


def _env_file(tmp_path: Path, values: dict) -> Path:
    path = tmp_path / "test.env"
    values = {"CROSSCHECK_SECRETS_DIR": str(_secrets_dir(tmp_path)), **values}
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    return path


def _code() -> str:
    """The compose file without its comments."""
    return "\n".join(line for line in COMPOSE.read_text(encoding="utf-8").splitlines()
                     if not line.lstrip().startswith("#"))


def _raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _compose_config(tmp_path: Path, env: dict, *options: str) -> dict:
    """`docker-compose [options] config` with `env` as the .env file, parsed."""
    tool = _docker_compose()
    if tool is None:  # the structural checks on the raw file still run
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    out = subprocess.run([tool, "--env-file", str(_env_file(tmp_path, env)), "-f", str(COMPOSE), *options,
                          "config"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def _enabled(config: dict, profiles: set[str]) -> set[str]:
    """The services `docker compose up` starts with these profiles active (the compose rule)."""
    return {name for name, service in config["services"].items()
            if not service.get("profiles") or set(service["profiles"]) & profiles}


def _data_mounts(volumes: list) -> set[str]:
    """The /data/<folder> container paths among a service's mounts (short syntax, raw or resolved)."""
    return {m for v in volumes for m in re.findall(r":(/data/\w+)", str(v))}


def _check_structure(config: dict, executor: str) -> None:
    services = config["services"]
    assert SERVICES | CELERY_SERVICES == set(services)
    for name in LONG_RUNNING | CELERY_SERVICES:
        check = services[name].get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no health check"
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == executor, name
        # the URLs with passwords are built in the container from the secret files (docker/secrets.sh)
        assert env["AIRFLOW_DB_PASSWORD_FILE"] == "/run/secrets/airflow_db_password", name
        assert env["WAREHOUSE_DB_PASSWORD_FILE"] == "/run/secrets/warehouse_db_password", name
        assert not {"CROSSCHECK_WAREHOUSE_URL", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"} & set(env), name
        assert {"airflow_db_password", "warehouse_db_password"} <= set(map(_secret_name, services[name]["secrets"]))
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0", name
    commands = {name: str(services[name].get("command")) for name in AIRFLOW_SERVICES - {"airflow-init"}}
    assert commands == {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                        "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer",
                        "airflow-worker": "celery worker", "flower": "celery flower"}
    # the profile: only the Celery services carry it, so the default stack is unchanged
    for name, service in services.items():
        assert service.get("profiles") == (["celery"] if name in CELERY_SERVICES else None), name
    for name in _enabled(config, set()):
        assert not set(services[name].get("depends_on") or {}) & CELERY_SERVICES, f"{name} needs the profile"
    # workers run the tasks: they see the same folders as the scheduler
    scheduler = services["airflow-scheduler"]["volumes"]
    assert _data_mounts(scheduler) == DATA_MOUNTS
    assert sorted(map(str, services["airflow-worker"]["volumes"])) == sorted(map(str, scheduler))
    assert "redis" in services["airflow-worker"]["depends_on"] and "redis" in services["flower"]["depends_on"]
    assert not {"hostname", "container_name"} & set(services["airflow-worker"]), "workers could not scale"


def _secret_name(entry) -> str:
    return entry if isinstance(entry, str) else entry["source"]


def test_compose_file_has_no_literal_secrets():
    """Every password and key is a Docker secret: a file under /run/secrets, named by <VAR>_FILE or read
    by Airflow's <option>_CMD, declared at the top level with a file source and given to the service."""
    raw = _raw()
    declared = raw["secrets"]
    assert set(declared) == set(SECRETS) and all("file" in d for d in declared.values())
    for name, service in raw["services"].items():
        given = set(map(_secret_name, service.get("secrets") or []))
        for key, value in (service.get("environment") or {}).items():
            # not secrets of this stack: the optional notifier's URI from .env, the auth manager's own file
            if SECRET_KEY.search(key) and key not in ("AIRFLOW_CONN_CROSSCHECK_NOTIFY",
                                                      "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"):
                match = re.fullmatch(r"(?:cat )?/run/secrets/(\w+)", str(value))
                assert match and key.endswith(("_FILE", "_CMD")), f"{name}.{key} is not a secret file"
                assert match.group(1) in given, f"{name}.{key}: secret {match.group(1)} not given to {name}"
    text = re.sub(r"\$\{[^}]*\}", "", _code())
    assert not re.search(r"(?i)password[ \t]*[:=][ \t]*['\"]?[A-Za-z0-9]{4,}", text), "a literal password in docker-compose.yaml"
    _check_structure(raw, EXECUTOR_SWITCH)
    assert raw["services"]["redis"]["image"] == "redis:7"


def test_compose_config_validates(tmp_path):
    config = _compose_config(tmp_path, DUMMY_ENV)
    _check_structure(config, LOCAL_EXECUTOR)
    assert {s: d["file"] for s, d in config["secrets"].items()} == {
        s: str(tmp_path / "secrets" / s) for s in SECRETS}
    assert not any(v in json.dumps(config) for v in SECRET_VALUES)  # nothing of a secret in the config


def test_secrets_script_builds_the_urls_and_the_warehouse_connection(tmp_path):
    """docker/secrets.sh, as the containers source it: the secret files become the metadata URL, the
    Celery result backend, CROSSCHECK_WAREHOUSE_URL (the CLI) and AIRFLOW_CONN_CROSSCHECK_WAREHOUSE (the
    tasks), passwords percent-encoded; a missing secret file stops the container with one line."""
    folder = _secrets_dir(tmp_path)
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", **DUMMY_ENV,
           "AIRFLOW_DB_PASSWORD_FILE": str(folder / "airflow_db_password"),
           "WAREHOUSE_DB_PASSWORD_FILE": str(folder / "warehouse_db_password")}
    show = ("source docker/secrets.sh; for v in AIRFLOW__DATABASE__SQL_ALCHEMY_CONN AIRFLOW__CELERY__RESULT_BACKEND "
            "CROSSCHECK_WAREHOUSE_URL AIRFLOW_CONN_CROSSCHECK_WAREHOUSE; do echo \"$v=${!v}\"; done")
    out = subprocess.run(["bash", "-euc", show], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = dict(line.split("=", 1) for line in out.stdout.splitlines())
    assert got["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2://airflow:pw-air%2Fflow%401@postgres:5432/airflow"
    assert got["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql://airflow:pw-air%2Fflow%401@postgres:5432/airflow"
    url = "postgresql://crosscheck:pw-ware%3Ahouse%25@postgres:5432/crosscheck"
    assert got["CROSSCHECK_WAREHOUSE_URL"] == url
    connection = json.loads(got["AIRFLOW_CONN_CROSSCHECK_WAREHOUSE"])
    assert connection == {"conn_type": "postgres", "host": "postgres", "port": 5432, "login": "crosscheck",
                          "password": "pw-ware:house%", "schema": "crosscheck"}

    (folder / "warehouse_db_password").unlink()
    out = subprocess.run(["bash", "-euc", "source docker/secrets.sh"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0 and "warehouse_db_password" in out.stderr and out.stderr.count("\n") == 1


def test_runtime_image_has_no_test_tools():
    """The image installs requirements-runtime.lock: the development lock's pins minus the dev extra.
    The build context leaves out the virtualenv, var/, tests and caches."""
    def pins(name):
        return dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", (ROOT / name).read_text(encoding="utf-8"), re.M))

    dev, runtime = pins("requirements.lock"), pins("requirements-runtime.lock")
    assert runtime and all(dev.get(p) == v for p, v in runtime.items())  # the same versions
    assert not {"pytest", "pytest-xdist", "ruff", "playwright", "hypothesis", "pyinstrument"} & set(runtime)
    assert {"apache-airflow", "apache-airflow-providers-postgres", "apache-airflow-providers-openlineage",
            "great-expectations"} <= set(runtime)
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "pip install --no-cache-dir -r /opt/crosscheck/requirements-runtime.lock" in dockerfile
    assert not re.search(r"^(COPY|RUN)\b.*\brequirements\.lock", dockerfile, re.M)  # not the dev lock
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".venv", "var", "tests", ".git", "secrets", ".env", ".pytest_cache", "**/__pycache__"} <= ignored


def test_default_stack_is_local_executor_without_celery_services(tmp_path):
    config = _compose_config(tmp_path, DUMMY_ENV)
    assert _enabled(config, set()) == SERVICES
    for name in AIRFLOW_SERVICES:
        assert config["services"][name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == LOCAL_EXECUTOR, name


@pytest.mark.parametrize("how", ["env-file", "--profile"])
def test_celery_profile_runs_redis_workers_and_flower(tmp_path, how):
    """The switch as .env.example documents it (COMPOSE_PROFILES + AIRFLOW_EXECUTOR in .env), or with
    `--profile celery` on the command line (docker-compose ≥ 1.28)."""
    if how == "env-file":
        config = _compose_config(tmp_path, {**DUMMY_ENV, **CELERY_ENV})
    else:
        config = _compose_config(tmp_path, {**DUMMY_ENV, "AIRFLOW_EXECUTOR": "CeleryExecutor"}, "--profile", "celery")
    _check_structure(config, "CeleryExecutor")
    services = config["services"]
    assert _enabled(config, {"celery"}) == SERVICES | CELERY_SERVICES

    redis = services["redis"]
    assert redis["image"] == "redis:7" and "ports" not in redis  # the broker stays inside the compose network
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
        assert "AIRFLOW__CELERY__RESULT_BACKEND" not in env  # built from the secret file in the container

    worker = services["airflow-worker"]
    ping = " ".join(worker["healthcheck"]["test"]).replace("$$", "$")
    assert ping.startswith("CMD-SHELL celery --app airflow.providers.celery.executors.celery_executor.app inspect ping")
    assert '-d "celery@${HOSTNAME}"' in ping
    assert worker["deploy"]["replicas"] == 2
    assert worker["environment"]["DUMB_INIT_SETSID"] == "0"
    assert worker["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert worker["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}

    flower = services["flower"]
    assert flower["ports"] == ["127.0.0.1:5555:5555/tcp"]
    assert flower["healthcheck"]["test"] == ["CMD", "curl", "--fail", "http://localhost:5555/healthcheck"]


def test_celery_workers_flower_port_and_concurrency_come_from_env(tmp_path):
    config = _compose_config(tmp_path, {**DUMMY_ENV, **CELERY_ENV, "CROSSCHECK_CELERY_WORKERS": "3",
                                        "CROSSCHECK_CELERY_CONCURRENCY": "6", "CROSSCHECK_FLOWER_PORT": "5566"})
    worker = config["services"]["airflow-worker"]
    assert worker["deploy"]["replicas"] == 3
    assert worker["environment"]["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "6"
    assert config["services"]["flower"]["ports"] == ["127.0.0.1:5566:5555/tcp"]


def test_celery_config_holds_no_secret(tmp_path):
    """No secret's value anywhere in the Celery stack's resolved configuration (environment, commands,
    health checks, ports, the broker URL): the containers read them from /run/secrets."""
    config = _compose_config(tmp_path, {**DUMMY_ENV, **CELERY_ENV})
    for name, service in config["services"].items():
        for key, value in service.items():
            assert not any(s in str(value) for s in SECRET_VALUES), f"a secret in {name}.{key}"


@pytest.mark.parametrize("extra", [{}, CELERY_ENV], ids=["local", "celery"])
def test_compose_refuses_to_start_without_secrets(tmp_path, extra):
    tool = _docker_compose()
    if tool is None:
        pytest.skip("docker-compose is not installed")
    env = _env_file(tmp_path, {**{k: v for k, v in DUMMY_ENV.items() if k != "WAREHOUSE_DB_USER"}, **extra})
    out = subprocess.run([tool, "--env-file", str(env), "-f", str(COMPOSE), "config"], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert out.returncode != 0 and "WAREHOUSE_DB_USER" in out.stderr


def test_env_example_lists_every_required_variable():
    required = set(re.findall(r"\$\{([A-Z_]+):\?", _code()))
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^([A-Z_]+)=", example, re.M))
    assert required <= listed, required - listed
    assert not re.search(r"^[A-Z_]*(PASSWORD|SECRET_KEY|FERNET)[A-Z_]*=", example, re.M), "a secret in .env.example"
    for name in SECRETS:  # each secret file is named where .env.example says how to make it
        assert name in example, name
    # the executor switch: both lines documented together, off by default
    assert re.search(r"^# COMPOSE_PROFILES=celery\n# AIRFLOW_EXECUTOR=CeleryExecutor$", example, re.M)
    optional = set(re.findall(r"\$\{([A-Z_]+):-", _code())) - {"AIRFLOW_UID", "AIRFLOW_EXECUTOR"}
    assert optional <= listed, optional - listed


def test_postgres_init_script_creates_two_databases_and_roles():
    script = (ROOT / "docker" / "postgres-init" / "10-crosscheck.sh").read_text(encoding="utf-8")
    assert script.count("LOGIN PASSWORD") == 2 and script.count("CREATE DATABASE") == 2
    # the warehouse's NOLOGIN roles (sql/migrations/0006_roles.sql), granted to the warehouse user
    assert "CREATE ROLE crosscheck_reporting NOLOGIN" in script and "CREATE ROLE crosscheck_loader NOLOGIN" in script
    assert not re.search(r"PASSWORD '[^:]", script)
    assert (ROOT / "docker" / "postgres-init" / "10-crosscheck.sh").stat().st_mode & 0o111
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM apache/airflow:3.3.2-python3.11" in dockerfile and "requirements.lock" in dockerfile
