"""Where things are and how the pipeline is tuned: the one place that maps an environment to resources.

Paths default to folders under the project's ``var/``; every path and the warehouse URL can be
overridden by an environment variable, which is how Airflow deployments (docker-compose) point
the same code at production folders and an external PostgreSQL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml


@cache
def project_root() -> Path:
    """The checkout (or image folder) holding sql/, include/ and expectations/."""
    if env := os.environ.get("CROSSCHECK_HOME"):
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "sql").is_dir() and (parent / "include").is_dir():
            return parent
    raise RuntimeError("cannot find the crosscheck project folder; set CROSSCHECK_HOME")


# ROOT, SQL_DIR, INCLUDE_DIR and EXPECTATIONS_DIR are found on first use (module __getattr__ below),
# not when this module is imported: importing it never fails, a missing project folder is one clear error
# where a path is first needed.
_PROJECT_FOLDERS = {"SQL_DIR": "sql", "INCLUDE_DIR": "include", "EXPECTATIONS_DIR": "expectations"}
# The users' time zone (the district is in Chongqing): the DAGs' schedules, the log lines and every time a
# receipt prints are in it.
USERS_TIMEZONE = "Asia/Shanghai"
USERS_ZONE = ZoneInfo(USERS_TIMEZONE)


# The fields that say where things are: set by get_settings (or a test), not by include/settings.yaml.
_PLACES = ("var_dir", "landing_dir", "archive_dir", "outbox_dir", "reports_dir", "feedback_dir", "warehouse_url",
           "sources_file")


def _env_path(name: str, default: Path) -> Path:
    return Path(os.environ[name]).resolve() if os.environ.get(name) else default


@dataclass(frozen=True)
class Settings:
    """Where things are (paths: environment variables, else under var/) and how the pipeline is tuned
    (every other field: include/settings.yaml, which explains each and holds its one value)."""

    var_dir: Path
    landing_dir: Path
    archive_dir: Path
    outbox_dir: Path
    reports_dir: Path
    feedback_dir: Path
    warehouse_url: str | None  # None: the embedded PostgreSQL under var_dir/pgdata
    # Where each extract comes from (crosscheck.pull): a per-deployment file, not the contracts, because
    # connection ids and remote paths differ between deployments while the contract is the same.
    sources_file: Path | None  # None: include/sources.yaml (every extract is a drop)
    # Comparison (rules.md)
    enrol_min_age: int
    pension_min_age: int
    subsidy_categories: tuple[str, ...]
    districts: tuple[str, ...]
    night_partitions: str
    night_connections: int
    # Pick-up, outputs
    quiet_period_seconds: int
    max_file_bytes: int
    max_xlsx_uncompressed_bytes: int
    stale_after_days: int
    worklist_mask_ids: bool
    # Held files and plausible file dates
    hold_quarantine_share_max: float
    hold_quarantine_share_margin: float
    hold_rows_min_fraction: float
    hold_history_files: int
    hold_min_rows: int
    as_of_max_future_days: int
    as_of_max_age_days: int
    # History and retention (crosscheck.history)
    history_full_snapshots: int
    archive_retention_days: dict
    airflow_db_retention_days: int
    # Airflow: schedules, sensor and trigger timings, retries, deadline, notifier, worker name
    night_cron: str
    ingest_cron: str
    ingest_poke_seconds: int
    ingest_wait_seconds: int
    ingest_trigger_poll_seconds: float
    pull_cron: str
    maintenance_cron: str
    task_retries: int
    nightly_deadline_minutes: int
    notify_conn: str
    notify_to: str
    worker_name: str


def tunables(environment: bool = True) -> dict:
    """include/settings.yaml's values, each overridden by its CROSSCHECK_<KEY> variable unless
    ``environment`` is false (tests build settings from the file's values alone)."""
    values = yaml.safe_load((project_root() / "include" / "settings.yaml").read_text(encoding="utf-8")) or {}
    missing = {f.name for f in fields(Settings)} - set(values) - set(_PLACES)
    if missing:
        raise RuntimeError(f"include/settings.yaml has no value for: {', '.join(sorted(missing))}")
    for key, default in list(values.items()):
        env = os.environ.get(f"CROSSCHECK_{key.upper()}") if environment else None
        if env is None:
            continue
        try:
            if isinstance(default, bool):
                values[key] = env.strip().lower() in ("1", "true", "yes", "是")
            elif isinstance(default, list):
                values[key] = [v.strip() for v in env.split(",") if v.strip()]
            elif isinstance(default, dict):  # key=value,key=value
                values[key] = {k.strip(): v.strip() for k, _, v in (i.partition("=") for i in env.split(",")) if k.strip()}
            elif isinstance(default, int):
                values[key] = int(env)
            elif isinstance(default, float):
                values[key] = float(env)
            else:
                values[key] = env
        except ValueError:
            raise ValueError(f"CROSSCHECK_{key.upper()}={env!r} is not a number") from None
    for key in ("subsidy_categories", "districts"):
        if key in values:
            values[key] = tuple(str(v) for v in values[key])
    return values


@cache
def get_settings() -> Settings:
    root = project_root()
    var_dir = _env_path("CROSSCHECK_VAR", root / "var")
    return Settings(
        var_dir=var_dir,
        landing_dir=_env_path("CROSSCHECK_LANDING", var_dir / "landing"),
        archive_dir=_env_path("CROSSCHECK_ARCHIVE", var_dir / "archive"),
        outbox_dir=_env_path("CROSSCHECK_OUTBOX", var_dir / "outbox"),
        reports_dir=_env_path("CROSSCHECK_REPORTS", var_dir / "reports"),
        feedback_dir=_env_path("CROSSCHECK_FEEDBACK", var_dir / "feedback"),
        warehouse_url=os.environ.get("CROSSCHECK_WAREHOUSE_URL") or None,
        sources_file=_env_path("CROSSCHECK_SOURCES", root / "include" / "sources.yaml"),
        **tunables(),
    )


def __getattr__(name: str):
    if name == "ROOT":
        return project_root()
    if name in _PROJECT_FOLDERS:
        return project_root() / _PROJECT_FOLDERS[name]
    # DEPARTMENTS (the department codes, in order) is include/departments.yaml's, through the
    # catalogue; resolved on first use, as the catalogue itself imports this module.
    if name == "DEPARTMENTS":
        from crosscheck.catalogue import DEPARTMENTS

        return DEPARTMENTS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
