"""Ingest started by a file's arrival, against a running Airflow (`crosscheck airflow`).

The four ingest DAGs are unpaused with an empty landing: no run starts. A small file of civil affairs is
dropped with its `.done` marker: the triggerer's LandingReadyTrigger fires the asset
`crosscheck://landing/civil`, the civil ingest DAG runs, and the receipt is in the outbox within two
minutes of the file being ready. No other DAG runs, and the file is still in landing.
The stack has no CROSSCHECK_WAREHOUSE_URL: its tasks reach the warehouse through the Airflow connection.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest
from airflow_stack import AirflowStack, wait_for
from helpers import throwaway_warehouse
from test_dags import night_date, write_minimal_district

from crosscheck import warehouse as wh
from crosscheck.settings import DEPARTMENTS

pytestmark = pytest.mark.xdist_group("standalone")
TARGET_SECONDS = 120


def _runs(stack) -> list[tuple[str, str, str]]:
    return stack.meta.execute("SELECT dag_id, run_type, state FROM dag_run ORDER BY id").fetchall()


def test_a_dropped_file_starts_its_ingest_and_nothing_else(tmp_path):
    server_url = os.environ.get("CROSSCHECK_TEST_PG_URL") or wh.embedded_server().get_uri("postgres")
    landing, outbox = tmp_path / "landing", tmp_path / "outbox"
    staged = tmp_path / "staged"
    write_minimal_district(staged, night_date(), rows=3)
    for department in DEPARTMENTS:
        (landing / department).mkdir(parents=True)
    env = {"CROSSCHECK_VAR": str(tmp_path / "var"), "CROSSCHECK_LANDING": str(landing),
           "CROSSCHECK_OUTBOX": str(outbox), "CROSSCHECK_ARCHIVE": str(tmp_path / "archive"),
           "CROSSCHECK_REPORTS": str(tmp_path / "reports"), "CROSSCHECK_TASK_RETRIES": "0",
           "CROSSCHECK_INGEST_TRIGGER_POLL_SECONDS": "5"}
    with throwaway_warehouse(server_url) as w:
        stack = AirflowStack(server_url, w.url, tmp_path / "stack", env)
        # Asset-triggered runs are created by the scheduler's job scheduling (only the nightly DAG's
        # cron could run besides, and it stays paused).
        stack.env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = "True"
        with stack:
            seconds, runs, source = _drop_and_watch(stack, staged, landing, outbox)
    assert seconds <= TARGET_SECONDS, f"receipt after {seconds:.0f} s"
    assert runs == [("crosscheck_ingest_civil", "asset_triggered", "success")], runs
    assert (landing / "civil" / source.name).exists()  # nothing leaves landing


def _drop_and_watch(stack, staged, landing, outbox):
    assert "CROSSCHECK_WAREHOUSE_URL" not in stack.env and "AIRFLOW_CONN_CROSSCHECK_WAREHOUSE" in stack.env
    for department in DEPARTMENTS:
        stack.airflow("dags", "unpause", f"crosscheck_ingest_{department}")
    # The watchers' triggers are picked up by the triggerer once the DAGs are active.
    wait_for("the four landing triggers", lambda: stack.meta.execute(
        "SELECT count(*) FROM trigger WHERE classpath = 'crosscheck.triggers.LandingReadyTrigger' "
        "AND triggerer_id IS NOT NULL").fetchone()[0] == len(DEPARTMENTS), 180)
    time.sleep(15)  # three polls of an empty landing
    assert _runs(stack) == [], "a run started without a file"

    source = next((staged / "civil").iterdir())
    shutil.copy(source, landing / "civil" / source.name)
    (landing / "civil" / (source.name + ".done")).touch()
    ready = time.monotonic()
    receipt = wait_for("the receipt", lambda: next((outbox / "civil").glob("*.receipt.html"), None)
                       if (outbox / "civil").is_dir() else None, 300, every=1)
    seconds = time.monotonic() - ready
    print(f"drop-to-receipt: {seconds:.1f} s ({receipt.name})")
    wait_for("the ingest run to finish", lambda: all(s != "running" for *_, s in _runs(stack)), 120)
    return seconds, _runs(stack), source


def test_the_landing_trigger_fires_once_per_new_ready_file(tmp_path, monkeypatch, fresh_warehouse):
    """LandingReadyTrigger, run as the triggerer runs it: nothing for an empty folder or a file still
    being written; one event when its .done marker appears, none again for the same file; a new trigger
    (a restarted triggerer) does not fire for a file the warehouse has handled; nothing is deleted."""
    import asyncio

    from crosscheck.pipeline import ingest_departments
    from crosscheck.settings import get_settings
    from crosscheck.triggers import LandingReadyTrigger

    landing = tmp_path / "landing"
    (landing / "civil").mkdir(parents=True)
    write_minimal_district(tmp_path / "staged", night_date(), rows=3)
    source = next((tmp_path / "staged" / "civil").iterdir())
    for key, value in {"CROSSCHECK_LANDING": landing, "CROSSCHECK_VAR": tmp_path / "var",
                       "CROSSCHECK_OUTBOX": tmp_path / "outbox", "CROSSCHECK_ARCHIVE": tmp_path / "archive",
                       "CROSSCHECK_WAREHOUSE_URL": fresh_warehouse.url,
                       "CROSSCHECK_QUIET_PERIOD_SECONDS": 3600}.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.delenv("AIRFLOW_CONN_CROSSCHECK_WAREHOUSE", raising=False)
    get_settings.cache_clear()

    def start(trigger) -> tuple[asyncio.Task, list]:
        """The trigger's loop as the triggerer runs it (one task), its events into a list."""
        got: list = []

        async def pump():
            async for event in trigger.run():
                got.append(event.payload)
        return asyncio.create_task(pump()), got

    async def after(seconds: float, got: list) -> list:
        await asyncio.sleep(seconds)
        taken = list(got)
        got.clear()
        return taken

    async def scenario() -> dict:
        seen = {}
        task, got = start(LandingReadyTrigger("civil", poll_seconds=0.1))
        seen["empty"] = await after(1, got)
        shutil.copy(source, landing / "civil" / source.name)
        seen["being written"] = await after(1, got)
        (landing / "civil" / (source.name + ".done")).touch()
        seen["ready"] = await after(2, got)
        seen["ready, again"] = await after(1, got)
        task.cancel()
        await asyncio.to_thread(ingest_departments, fresh_warehouse, ["civil"], landing, get_settings())
        task, got = start(LandingReadyTrigger("civil", poll_seconds=0.1))
        seen["handled"] = await after(1.5, got)
        task.cancel()
        return seen

    try:
        seen = asyncio.run(scenario())
    finally:
        get_settings.cache_clear()
    assert seen == {"empty": [], "being written": [], "ready, again": [], "handled": [],
                    "ready": [{"department": "civil", "files": [source.name]}]}
    assert (landing / "civil" / source.name).exists()


SCHEDULES = """
import json, runpy, sys
found = runpy.run_path(sys.argv[1])
out = {}
for department in ("civil", "finance"):
    timetable = found[f"crosscheck_ingest_{department}"].timetable
    (asset,) = timetable.asset_condition.objects
    out[department] = [type(timetable).__name__, asset.uri, [type(w.trigger).__name__ for w in asset.watchers],
                       getattr(getattr(timetable, "timetable", None), "expression", None)]
print(json.dumps(out))
"""


def test_ingest_dags_start_from_their_landing_asset(tmp_path):
    """Each ingest DAG is scheduled on crosscheck://landing/<dept>, watched by LandingReadyTrigger; a
    department with an extract to pull (sources.yaml) also runs hourly, for its pull task."""
    import json
    import subprocess
    import sys

    from crosscheck.settings import ROOT

    sources = tmp_path / "sources.yaml"
    sources.write_text(json.dumps({"payments": {"source": "sftp", "conn_id": "finance_exchange",
                                                "path": "/outgoing/payments_{as_of:%Y%m%d}.csv"}}), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROSSCHECK_INGEST")}
    env.update({"AIRFLOW_HOME": str(tmp_path), "CROSSCHECK_SOURCES": str(sources)})
    out = subprocess.run([sys.executable, "-c", SCHEDULES, str(ROOT / "dags" / "ingest.py")], env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {
        "civil": ["AssetTriggeredTimetable", "crosscheck://landing/civil", ["LandingReadyTrigger"], None],
        "finance": ["AssetOrTimeSchedule", "crosscheck://landing/finance", ["LandingReadyTrigger"], "0 * * * *"]}
