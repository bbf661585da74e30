"""docker-compose.yaml: validated with `docker-compose config` when the tool is installed (Debian's
docker-compose 1.29 validates without a docker engine), otherwise by a structural check with PyYAML.
Either way: the required services with health checks, and no literal secrets in the file."""

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
SECRET_KEY = re.compile(r"PASSWORD|SECRET|FERNET|SQL_ALCHEMY_CONN|WAREHOUSE_URL", re.I)
DUMMY_ENV = {
    "POSTGRES_PASSWORD": "pw-postgres", "AIRFLOW_DB_USER": "airflow", "AIRFLOW_DB_NAME": "airflow",
    "AIRFLOW_DB_PASSWORD": "pw-airflow", "WAREHOUSE_DB_USER": "crosscheck", "WAREHOUSE_DB_NAME": "crosscheck",
    "WAREHOUSE_DB_PASSWORD": "pw-warehouse", "AIRFLOW_FERNET_KEY": "fernet", "AIRFLOW_SECRET_KEY": "secret",
    "AIRFLOW_ADMIN_PASSWORD": "pw-admin",
}


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


def _check_structure(config: dict) -> None:
    services = config["services"]
    assert SERVICES <= set(services)
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no health check"
    for name in SERVICES - {"postgres"}:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert "CROSSCHECK_WAREHOUSE_URL" in env and "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in env
    commands = {name: str(services[name].get("command")) for name in LONG_RUNNING - {"postgres"}}
    assert commands == {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                        "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer"}
    mounts = " ".join(str(v) for v in services["airflow-scheduler"]["volumes"])
    for folder in ("landing", "archive", "outbox", "reports", "feedback"):
        assert f"/data/{folder}" in mounts


def test_compose_file_has_no_literal_secrets():
    """Every password, key and URL with credentials is a ${VAR:?} reference to .env."""
    raw = _raw()
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_KEY.search(key) and not key.endswith("_FILE"):
                assert re.search(r"\$\{[A-Z_]+:\?", str(value)), f"{name}.{key} is not taken from .env"
    text = re.sub(r"\$\{[^}]*\}", "", _code())
    assert not re.search(r"(?i)password\s*[:=]\s*['\"]?[A-Za-z0-9]{4,}", text), "a literal password in docker-compose.yaml"
    _check_structure(raw)


def test_compose_config_validates(tmp_path):
    tool = _docker_compose()
    if tool is None:  # the structural check above still ran
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    env = _env_file(tmp_path, DUMMY_ENV)
    out = subprocess.run([tool, "--env-file", str(env), "-f", str(COMPOSE), "config"], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    _check_structure(config)
    scheduler = config["services"]["airflow-scheduler"]["environment"]
    assert scheduler["CROSSCHECK_WAREHOUSE_URL"] == "postgresql://crosscheck:pw-warehouse@postgres:5432/crosscheck"


def test_compose_refuses_to_start_without_secrets(tmp_path):
    tool = _docker_compose()
    if tool is None:
        pytest.skip("docker-compose is not installed")
    env = _env_file(tmp_path, {k: v for k, v in DUMMY_ENV.items() if k != "WAREHOUSE_DB_PASSWORD"})
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


def test_postgres_init_script_creates_two_databases_and_roles():
    script = (ROOT / "docker" / "postgres-init" / "10-crosscheck.sh").read_text(encoding="utf-8")
    assert script.count("LOGIN PASSWORD") == 2 and script.count("CREATE DATABASE") == 2
    # the warehouse's NOLOGIN roles (sql/migrations/0006_roles.sql), granted to the warehouse user
    assert "CREATE ROLE crosscheck_reporting NOLOGIN" in script and "CREATE ROLE crosscheck_loader NOLOGIN" in script
    assert not re.search(r"PASSWORD '[^:]", script)
    assert (ROOT / "docker" / "postgres-init" / "10-crosscheck.sh").stat().st_mode & 0o111
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM apache/airflow:3.3.2-python3.11" in dockerfile and "requirements.lock" in dockerfile
