"""docker-compose.yaml: validated with `docker-compose config` when the tool is installed (Debian's
docker-compose 1.29 validates without a docker engine), otherwise by a structural check with PyYAML.
Either way: the required services with health checks, and no literal secrets in the file.

The profile "celery" (Redis, Celery workers, Flower) is off by default. `docker-compose config` (1.29)
prints every service, whatever the active profiles, so which services `up` would start is computed here
with the compose rule: a service runs when it has no `profiles` or one of them is active."""

from __future__ import annotations

import re
import shutil
import subprocess
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
EXECUTOR_SWITCH = "${AIRFLOW_EXECUTOR:-LocalExecutor}"
SECRET_KEY = re.compile(r"PASSWORD|SECRET|FERNET|SQL_ALCHEMY_CONN|WAREHOUSE_URL|RESULT_BACKEND", re.I)
DUMMY_ENV = {
    "POSTGRES_PASSWORD": "pw-postgres", "AIRFLOW_DB_USER": "airflow", "AIRFLOW_DB_NAME": "airflow",
    "AIRFLOW_DB_PASSWORD": "pw-airflow", "WAREHOUSE_DB_USER": "crosscheck", "WAREHOUSE_DB_NAME": "crosscheck",
    "WAREHOUSE_DB_PASSWORD": "pw-warehouse", "AIRFLOW_FERNET_KEY": "dummy-fernet-key",
    "AIRFLOW_SECRET_KEY": "dummy-secret-key", "AIRFLOW_ADMIN_PASSWORD": "pw-admin",
}
SECRET_VALUES = {v for k, v in DUMMY_ENV.items() if SECRET_KEY.search(k)}
CELERY_ENV = {"COMPOSE_PROFILES": "celery", "AIRFLOW_EXECUTOR": "CeleryExecutor"}


def _docker_compose() -> str | None:
    return shutil.which("docker-compose") or (
        "/usr/bin/docker-compose" if Path("/usr/bin/docker-compose").exists() else None)


def _env_file(tmp_path: Path, values: dict) -> Path:
    path = tmp_path / "test.env"
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
        assert "CROSSCHECK_WAREHOUSE_URL" in env and "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in env
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


def test_compose_file_has_no_literal_secrets():
    """Every password, key and URL with credentials is a ${VAR:?} reference to .env."""
    raw = _raw()
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_KEY.search(key) and not key.endswith("_FILE"):
                assert re.search(r"\$\{[A-Z_]+:\?", str(value)), f"{name}.{key} is not taken from .env"
                assert not re.search(r"\$\{[A-Z_]+:?-", str(value)), f"{name}.{key} has a default value"
    text = re.sub(r"\$\{[^}]*\}", "", _code())
    assert not re.search(r"(?i)password\s*[:=]\s*['\"]?[A-Za-z0-9]{4,}", text), "a literal password in docker-compose.yaml"
    _check_structure(raw, EXECUTOR_SWITCH)
    assert raw["services"]["redis"]["image"] == "redis:7"


def test_compose_config_validates(tmp_path):
    config = _compose_config(tmp_path, DUMMY_ENV)
    _check_structure(config, "LocalExecutor")
    scheduler = config["services"]["airflow-scheduler"]["environment"]
    assert scheduler["CROSSCHECK_WAREHOUSE_URL"] == "postgresql://crosscheck:pw-warehouse@postgres:5432/crosscheck"


def test_default_stack_is_local_executor_without_celery_services(tmp_path):
    config = _compose_config(tmp_path, DUMMY_ENV)
    assert _enabled(config, set()) == SERVICES
    for name in AIRFLOW_SERVICES:
        assert config["services"][name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name


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
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql://airflow:pw-airflow@postgres:5432/airflow"

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


def test_celery_config_holds_secrets_only_where_env_puts_them(tmp_path):
    """Every value from .env's secrets lands in an environment entry meant for it — never in a command,
    health check, port or URL of the Celery services (e.g. no password in the broker URL)."""
    config = _compose_config(tmp_path, {**DUMMY_ENV, **CELERY_ENV})
    for name, service in config["services"].items():
        for key, value in service.items():
            if key == "environment":
                holders = {k for k, v in value.items() if any(s in str(v) for s in SECRET_VALUES)}
                assert all(SECRET_KEY.search(k) for k in holders), (name, holders)
            else:
                assert not any(s in str(value) for s in SECRET_VALUES), f"a secret in {name}.{key}"


@pytest.mark.parametrize("extra", [{}, CELERY_ENV], ids=["local", "celery"])
def test_compose_refuses_to_start_without_secrets(tmp_path, extra):
    tool = _docker_compose()
    if tool is None:
        pytest.skip("docker-compose is not installed")
    env = _env_file(tmp_path, {**{k: v for k, v in DUMMY_ENV.items() if k != "WAREHOUSE_DB_PASSWORD"}, **extra})
    out = subprocess.run([tool, "--env-file", str(env), "-f", str(COMPOSE), "config"], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert out.returncode != 0 and "WAREHOUSE_DB_PASSWORD" in out.stderr


def test_env_example_lists_every_required_variable():
    required = set(re.findall(r"\$\{([A-Z_]+):\?", _code()))
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^([A-Z_]+)=", example, re.M))
    assert required <= listed, required - listed
    for key in ("POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "WAREHOUSE_DB_PASSWORD", "AIRFLOW_ADMIN_PASSWORD"):
        assert re.search(rf"^{key}=$", example, re.M), f"{key} must be empty in .env.example"
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
