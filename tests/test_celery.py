"""The nightly DAG on the CeleryExecutor: Redis as broker, two real `airflow celery worker` processes.

`crosscheck airflow --celery --workers 2` starts the api-server, scheduler, dag-processor, triggerer
and the workers (the README's recipe). A two-district deployment is loaded, the nightly DAG is
triggered, and the test asserts that its mapped tasks ran on both workers and that every output
equals the in-process, unpartitioned night.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import psycopg
import pytest
from helpers import make_settings, night_state, throwaway_warehouse
from openpyxl import load_workbook

from crosscheck import warehouse as wh
from crosscheck.cli import _sqlalchemy_psycopg2, airflow_environment
from crosscheck.generate import generate
from crosscheck.pipeline import compare_night, ingest_departments, publish_night
from crosscheck.settings import DEPARTMENTS

D = date(2026, 11, 28)
DISTRICTS = ("500151", "500199")
BROKER = "redis://127.0.0.1:6379/13"  # a database of its own on the machine's Redis
VENV_BIN = Path(sys.executable).parent
pytestmark = pytest.mark.xdist_group("celery")


def _redis_ready() -> bool:
    import redis

    try:
        client = redis.Redis.from_url(BROKER, socket_timeout=2)
        client.flushdb()  # no task left over from an earlier run
        return True
    except redis.exceptions.ConnectionError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, check, timeout: float, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def server_url() -> str:
    """One backend is enough here (the night itself is tested on both): the machine's server when given."""
    return os.environ.get("CROSSCHECK_TEST_PG_URL") or wh.embedded_server().get_uri("postgres")


@pytest.fixture(scope="module")
def celery_night(server_url, tmp_path_factory):
    """A two-district night run by the nightly DAG on two Celery workers; yields what it left."""
    if not _redis_ready():
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {BROKER}")
        pytest.skip(f"Redis is not reachable at {BROKER}")
    tmp = tmp_path_factory.mktemp("celery")
    generate(tmp / "gen", persons=2000, seed=7, as_of=D, districts=DISTRICTS)
    settings = make_settings(tmp, landing_dir=tmp / "gen" / "landing", districts=DISTRICTS,
                             night_partitions="district")
    metadata_db = f"crosscheck_airflow_{os.getpid()}"
    wh.ensure_database(server_url, metadata_db)
    metadata_url = _sqlalchemy_psycopg2(wh.with_database(server_url, metadata_db))
    with throwaway_warehouse(server_url) as w:
        assert {o.status for o in ingest_departments(w, DEPARTMENTS, settings.landing_dir, settings)} == {"loaded"}
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CROSSCHECK_"))}
        env.update(airflow_environment(tmp / "airflow", metadata_url, w.url, port, BROKER))
        env.update({
            "PATH": f"{VENV_BIN}{os.pathsep}{env['PATH']}", "CROSSCHECK_VAR": str(settings.var_dir),
            "CROSSCHECK_LANDING": str(settings.landing_dir), "CROSSCHECK_REPORTS": str(settings.reports_dir),
            "CROSSCHECK_OUTBOX": str(settings.outbox_dir), "CROSSCHECK_FEEDBACK": str(settings.feedback_dir),
            "CROSSCHECK_ARCHIVE": str(settings.archive_dir), "CROSSCHECK_DISTRICTS": ",".join(DISTRICTS),
            "CROSSCHECK_NIGHT_PARTITIONS": "district", "CROSSCHECK_TASK_RETRIES": "0",
            "CROSSCHECK_NIGHT_CRON": "0 5 1 1 *",  # no scheduled run beside the one triggered here
        })
        log = open(tmp / "airflow.log", "w")
        stack = subprocess.Popen(
            [sys.executable, "-m", "crosscheck.cli", "airflow", "--celery", "--workers", "2", "--concurrency", "1",
             "--port", str(port), "--warehouse", w.url, "--metadata-url", metadata_url],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        meta = psycopg.connect(wh.with_database(server_url, metadata_db), autocommit=True)
        try:
            def airflow(*args):
                done = subprocess.run(["airflow", *args], env=env, capture_output=True, text=True, timeout=180)
                assert done.returncode == 0, done.stderr[-2000:]

            def dag_parsed():
                try:
                    return meta.execute("SELECT 1 FROM dag WHERE dag_id = 'crosscheck_nightly'").fetchone()
                except psycopg.errors.UndefinedTable:  # still migrating
                    return None

            def workers_up():  # each worker logs "worker-N@host ready." once it consumes the queue
                text = (tmp / "airflow.log").read_text(errors="replace")
                return all(re.search(rf"worker-{i}@\S+ ready\.", text) for i in (1, 2))

            _wait("the DAG processor to parse the nightly DAG", dag_parsed, 300)
            _wait("two Celery workers", workers_up, 180)
            airflow("dags", "unpause", "crosscheck_nightly")
            airflow("dags", "trigger", "crosscheck_nightly", "--run-id", "celery_test",
                    "--conf", json.dumps({"as_of": D.isoformat()}))
            state = _wait("the nightly run to finish", lambda: meta.execute(
                "SELECT state FROM dag_run WHERE run_id = 'celery_test' AND state IN ('success', 'failed')"
            ).fetchone(), 600, every=3)[0]
            tis = meta.execute("SELECT task_id, map_index, state, hostname, rendered_map_index FROM task_instance "
                               "WHERE run_id = 'celery_test' ORDER BY task_id, map_index").fetchall()
            assert state == "success", (tis, (tmp / "airflow.log").read_text()[-3000:])
            yield {"w": w, "settings": settings, "tis": tis, "state": night_state(w, D),
                   "out": settings.reports_dir / D.isoformat()}
        finally:
            meta.close()
            os.killpg(stack.pid, signal.SIGTERM)
            try:
                stack.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(stack.pid, signal.SIGKILL)
            log.close()
            wh.drop_database(server_url, metadata_db)


def test_mapped_tasks_ran_on_two_workers(celery_night):
    mapped = [t for t in celery_night["tis"] if t[1] >= 0]
    assert {t[0] for t in mapped} == {"partition", "worklists"}
    assert {t[2] for t in mapped} == {"success"}
    labels = {t[4] for t in mapped if t[0] == "partition"}
    assert {"铜梁区（500151）", "示例区（500199）"} <= labels  # the UI shows each partition's name
    workers = {t[3] for t in mapped}
    assert len(workers) >= 2 and all(h.startswith("worker-") for h in workers), workers


def _sheets(path: Path) -> dict:
    book = load_workbook(path, read_only=True)
    try:
        return {ws.title: [list(r) for r in ws.iter_rows(values_only=True)] for ws in book.worksheets}
    finally:
        book.close()


def _csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig") as f:
        return list(csv.reader(f))


def test_outputs_equal_the_in_process_night(celery_night, tmp_path):
    w, out = celery_night["w"], celery_night["out"]
    settings = make_settings(tmp_path, districts=DISTRICTS)
    compare_night(w, D, settings)  # unpartitioned, in this process
    assert night_state(w, D) == celery_night["state"]
    local = tmp_path / "out"
    publish_night(w, D, local, settings)
    names = ["mismatches.csv", "kpis.csv"] + [f"districts/{d}/{n}" for d in DISTRICTS
                                             for n in ("mismatches.csv", "kpis.csv")]
    for name in names:
        assert _csv(out / name) == _csv(local / name), name
    assert len(_csv(out / "mismatches.csv")) > 1
    books = sorted(p.name for p in (out / "worklists").glob("*.xlsx"))
    assert books == sorted(p.name for p in (local / "worklists").glob("*.xlsx"))
    assert any(b.startswith("示例") for b in books) and any(not b.startswith("示例") for b in books)
    for book in books:
        assert _sheets(out / "worklists" / book) == _sheets(local / "worklists" / book), book
    assert (out / "report.html").is_file() and (out / "districts" / "500199" / "report.html").is_file()
