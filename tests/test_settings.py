"""Settings: one object, read in one place (include/settings.yaml, CROSSCHECK_<KEY>), the project folder
found when first needed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import crosscheck.settings
from crosscheck.settings import get_settings

ROOT_CHECK = """
import sys
sys.path.insert(0, sys.argv[1])
import crosscheck.settings as settings  # imported from a copy outside any project folder: must not fail
try:
    settings.SQL_DIR
except RuntimeError as exc:
    print("needed:", exc)
"""


def test_importing_settings_outside_the_project_does_not_fail(tmp_path):
    package = tmp_path / "crosscheck"
    package.mkdir()
    for name in ("__init__.py", "logs.py", "settings.py"):
        shutil.copy(Path(crosscheck.settings.__file__).with_name(name), package / name)
    env = {"PATH": "/usr/bin:/bin"}  # no CROSSCHECK_HOME
    out = subprocess.run([sys.executable, "-c", ROOT_CHECK, str(tmp_path)], env=env, capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "needed: cannot find the crosscheck project folder; set CROSSCHECK_HOME"


@pytest.fixture
def fresh_settings():
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_airflow_settings_come_from_the_settings_file_and_the_environment(monkeypatch, fresh_settings):
    for key in ("NIGHT_CRON", "INGEST_CRON", "INGEST_POKE_SECONDS", "TASK_RETRIES", "NOTIFY_CONN"):
        monkeypatch.delenv(f"CROSSCHECK_{key}", raising=False)
    settings = get_settings()
    assert (settings.night_cron, settings.ingest_cron, settings.ingest_poke_seconds, settings.task_retries,
            settings.notify_conn) == ("0 5 * * *", "", 20, 3, "")
    monkeypatch.setenv("CROSSCHECK_NIGHT_CRON", "30 4 * * *")
    monkeypatch.setenv("CROSSCHECK_INGEST_TRIGGER_POLL_SECONDS", "2.5")
    monkeypatch.setenv("CROSSCHECK_NOTIFY_CONN", "crosscheck_alerts")
    get_settings.cache_clear()
    settings = get_settings()
    assert (settings.night_cron, settings.ingest_trigger_poll_seconds, settings.notify_conn) == (
        "30 4 * * *", 2.5, "crosscheck_alerts")


def test_a_setting_that_is_not_a_number_is_one_clear_line(monkeypatch, fresh_settings):
    monkeypatch.setenv("CROSSCHECK_TASK_RETRIES", "three")
    with pytest.raises(ValueError, match=r"^CROSSCHECK_TASK_RETRIES='three' is not a number$"):
        get_settings()


def test_every_tunable_has_its_one_value_in_the_settings_file(tmp_path, monkeypatch, fresh_settings):
    """The dataclass holds no defaults of its own: include/settings.yaml is the one place of each value, and a
    file that lacks one is one clear error, not a value taken silently from elsewhere."""
    from dataclasses import MISSING, fields

    from crosscheck.settings import Settings, project_root

    assert [f.name for f in fields(Settings) if f.default is not MISSING or f.default_factory is not MISSING] == []
    home = tmp_path / "home"
    (home / "include").mkdir(parents=True)
    (home / "sql").mkdir()
    text = (project_root() / "include" / "settings.yaml").read_text(encoding="utf-8")
    kept = "\n".join(line for line in text.splitlines() if not line.startswith("hold_min_rows:"))
    (home / "include" / "settings.yaml").write_text(kept, encoding="utf-8")
    monkeypatch.setenv("CROSSCHECK_HOME", str(home))
    project_root.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=r"^include/settings.yaml has no value for: hold_min_rows$"):
            get_settings()
    finally:
        project_root.cache_clear()
