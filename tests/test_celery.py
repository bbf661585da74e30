"""The nightly DAG on the CeleryExecutor: Redis as broker, two real `airflow celery worker` processes.

`crosscheck airflow --celery --workers 2` starts the api-server, scheduler, dag-processor, triggerer
and the workers (the README's recipe). A two-district deployment is loaded, the nightly DAG is
triggered, and the test asserts that its mapped tasks ran on both workers and that every output
equals the in-process, unpartitioned night.
"""

from __future__ import annotations

import csv
import os
from datetime import date
from pathlib import Path

import pytest
from airflow_stack import AirflowStack
from helpers import make_settings, night_state, throwaway_warehouse
from openpyxl import load_workbook

from crosscheck import warehouse as wh
from crosscheck.generate import generate
from crosscheck.pipeline import compare_night, ingest_departments, publish_night
from crosscheck.settings import DEPARTMENTS

D = date(2026, 11, 28)
DISTRICTS = ("500151", "500199")
BROKER = "redis://127.0.0.1:6379/13"  # a database of its own on the machine's Redis
pytestmark = pytest.mark.xdist_group("celery")


def _redis_ready() -> bool:
    import redis

    try:
        client = redis.Redis.from_url(BROKER, socket_timeout=2)
        client.flushdb()  # no task left over from an earlier run
        return True
    except redis.exceptions.ConnectionError:
        return False


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
    env = {"CROSSCHECK_VAR": str(settings.var_dir), "CROSSCHECK_LANDING": str(settings.landing_dir),
           "CROSSCHECK_REPORTS": str(settings.reports_dir), "CROSSCHECK_OUTBOX": str(settings.outbox_dir),
           "CROSSCHECK_FEEDBACK": str(settings.feedback_dir), "CROSSCHECK_ARCHIVE": str(settings.archive_dir),
           "CROSSCHECK_DISTRICTS": ",".join(DISTRICTS), "CROSSCHECK_NIGHT_PARTITIONS": "district",
           "CROSSCHECK_TASK_RETRIES": "0"}
    with throwaway_warehouse(server_url) as w:
        assert {o.status for o in ingest_departments(w, DEPARTMENTS, settings.landing_dir, settings)} == {"loaded"}
        with AirflowStack(server_url, w.url, tmp / "stack", env, workers=2, broker=BROKER) as stack:
            run = stack.run_nightly(D.isoformat(), "celery_test")
        assert run["state"] == "success", (run["tis"], run["log_tail"])
        yield {"w": w, "tis": run["tis"], "state": night_state(w, D), "out": settings.reports_dir / D.isoformat(),
               "var": settings.var_dir}


def _sheets(path: Path) -> dict:
    book = load_workbook(path, read_only=True)
    try:
        return {ws.title: [list(r) for r in ws.iter_rows(values_only=True)] for ws in book.worksheets}
    finally:
        book.close()


def _csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig") as f:
        return list(csv.reader(f))


def test_nightly_dag_on_two_celery_workers(celery_night, tmp_path):
    """One test (one Airflow deployment): where the mapped tasks ran, then what they wrote."""
    mapped = [t for t in celery_night["tis"] if t["map_index"] >= 0]
    assert {t["task_id"] for t in mapped} == {"partition", "worklists"}
    assert {t["state"] for t in mapped} == {"success"}
    labels = {t["rendered_map_index"] for t in mapped if t["task_id"] == "partition"}
    assert {"铜梁区（500151）", "示例区（500199）"} <= labels  # the UI shows each partition's name
    workers = {t["hostname"] for t in mapped}
    assert len(workers) >= 2 and all(h.startswith("worker-") for h in workers), workers

    # The outputs equal the unpartitioned night computed in this process.
    w, out = celery_night["w"], celery_night["out"]
    # the same var folder: the same work-list key, so the lists' digests compare too
    settings = make_settings(tmp_path, districts=DISTRICTS, var_dir=celery_night["var"])
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
