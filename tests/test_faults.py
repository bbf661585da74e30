"""Fault matrix (docs/fault-matrix.md): bad input, infrastructure faults and reruns, against real PostgreSQL.

Each test provokes one fault the way it happens at night — a broken file, a connection killed by the
server, the process killed with SIGKILL, a department silent for three nights, two runs started at once —
and checks that the fault is contained (a receipt, a clean exception, a clear message), that a rerun
completes, and that nothing is lost: for every file, received = loaded + quarantined.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import zipfile
from datetime import date, timedelta

import psycopg
import pytest
from helpers import (
    csv_bytes,
    file_row,
    ingest,
    landing_path,
    make_settings,
    only,
    put,
    receipt,
    rows_of,
    unique_as_of,
)

from crosscheck import ingest as ingest_module
from crosscheck.pipeline import RunFailed, night_lock, run_night
from crosscheck.settings import DEPARTMENTS


def assert_nothing_lost(warehouse) -> None:
    """Every file ever loaded in this database: received = loaded + quarantined, matching the rows
    actually in core (while it is the current snapshot) and in quarantine; no unfinished attempt is left
    with rows in staging."""
    with warehouse.connect() as conn:
        files = conn.execute(
            "SELECT file_id, extract, status, rows_received, rows_loaded, rows_quarantined FROM ingest.files "
            "WHERE status IN ('loaded', 'superseded')").fetchall()
        for file_id, extract, status, received, loaded, quarantined in files:
            assert received == loaded + quarantined, (file_id, received, loaded, quarantined)
            in_quarantine = conn.execute("SELECT count(DISTINCT row_number) FROM ingest.quarantine "
                                         "WHERE file_id = %s", (file_id,)).fetchone()[0]
            assert in_quarantine == quarantined, (file_id, in_quarantine, quarantined)
            if status == "loaded":
                # extract names come from ingest.files, written from the contracts
                in_core = conn.execute(f"SELECT count(*) FROM core.{extract} WHERE file_id = %s",  # noqa: S608
                                       (file_id,)).fetchone()[0]
                assert in_core == loaded, (file_id, in_core, loaded)
        leftovers = conn.execute(
            "SELECT f.file_id, f.status FROM ingest.files f WHERE f.status = 'abandoned' AND "
            "EXISTS (SELECT 1 FROM ingest.quarantine q WHERE q.file_id = f.file_id)").fetchall()
        assert leftovers == []


# ------------------------------------------------------------------------------------ bad input files


def test_zero_byte_file_is_rejected_with_a_receipt(warehouse, settings, as_of):
    path = put(landing_path(settings, "hrss", "enrollment", as_of), b"")
    out = only(ingest(warehouse, settings))
    assert out.status == "rejected" and "空" in out.reason, out
    js, html = receipt(settings, "hrss", out.file_id)
    assert js["status"] == "rejected" and "空" in js["reason"] and "空" in html
    assert path.exists()  # nothing leaves landing
    assert ingest(warehouse, settings) == []  # a rerun does not report it again


def test_header_only_file_is_rejected_and_keeps_the_previous_snapshot(warehouse, settings, as_of):
    """An export with the header and no rows must not wipe that date's snapshot."""
    path = put(landing_path(settings, "hrss", "enrollment", as_of), csv_bytes("enrollment", rows_of("enrollment", {})))
    first = only(ingest(warehouse, settings))
    assert first.status == "loaded"
    put(path, csv_bytes("enrollment", []), age=1800)  # a "corrected" file that is only the header
    out = only(ingest(warehouse, settings))
    assert out.status == "rejected" and "没有数据" in out.reason, out
    assert file_row(warehouse, first.file_id)["status"] == "loaded"
    with warehouse.connect() as conn:
        assert conn.execute("SELECT count(*) FROM core.enrollment WHERE as_of = %s", (as_of,)).fetchone()[0] == 1
    js, _ = receipt(settings, "hrss", out.file_id)
    assert js["status"] == "rejected"


def test_utf8_bom_before_gb18030_bytes_is_rejected(warehouse, settings, as_of):
    data = b"\xef\xbb\xbf" + csv_bytes("enrollment", rows_of("enrollment", {"name": "欧阳修"}), "gb18030")
    put(landing_path(settings, "hrss", "enrollment", as_of), data)
    out = only(ingest(warehouse, settings))
    assert out.status == "rejected" and "UTF-8" in out.reason, out
    with warehouse.connect() as conn:
        assert conn.execute("SELECT count(*) FROM core.enrollment WHERE as_of = %s", (as_of,)).fetchone()[0] == 0
    js, _ = receipt(settings, "hrss", out.file_id)
    assert "重新导出" in js["reason"]


def test_garbage_renamed_xlsx_is_rejected(warehouse, settings, as_of):
    put(landing_path(settings, "hrss", "enrollment", as_of, "xlsx"), os.urandom(4096))
    out = only(ingest(warehouse, settings))
    assert out.status == "rejected" and "不是Excel工作簿" in out.reason, out


def _bomb(path, uncompressed: int) -> None:
    """A zip with an XLSX's members whose one sheet inflates from a few KB to ``uncompressed`` bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<workbook/>")
        with zf.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            chunk = b"\0" * (1 << 20)
            for _ in range(uncompressed >> 20):
                member.write(chunk)


@pytest.mark.parametrize(("limit", "reason"), [(8 << 20, "解压后过大"), (None, "压缩炸弹")])
def test_xlsx_zip_bomb_is_rejected_without_inflating_it(warehouse, tmp_path, as_of, limit, reason):
    settings = make_settings(tmp_path, **({"max_xlsx_uncompressed_bytes": limit} if limit else {}))
    path = landing_path(settings, "hrss", "enrollment", as_of, "xlsx")
    path.parent.mkdir(parents=True)
    _bomb(path, 64 << 20)
    assert path.stat().st_size < 200_000
    os.utime(path, (time.time() - 3600, time.time() - 3600))
    tracemalloc.start()
    try:
        out = only(ingest(warehouse, settings))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.status == "rejected" and reason in out.reason, out
    assert peak < 16 << 20, f"rejecting the bomb allocated {peak >> 20} MB"


# ------------------------------------------------------------------------------- infrastructure faults


def _terminate_when_waiting(warehouse, pattern: str, done: threading.Event, killed: list) -> None:
    """From another connection: terminate the backend of this database whose query matches ``pattern``
    once it waits on a lock."""
    with warehouse.connect(autocommit=True) as conn:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not done.is_set():
            pids = [r[0] for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND wait_event_type = 'Lock' AND query LIKE %s", (pattern,))]
            if pids:
                killed += [conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0] for pid in pids]
                return
            time.sleep(0.02)


@pytest.mark.parametrize("step", ["copy", "load"])
def test_connection_killed_mid_load_fails_cleanly_and_retry_completes(warehouse, settings, as_of, monkeypatch, step):
    """The loading connection is terminated by the server (pg_terminate_backend) half-way: during the COPY
    into staging, or inside the transaction that replaces the core snapshot. The call raises a database
    error (the task is retried); the retry loads the file once, and nothing is lost."""
    rows = rows_of("enrollment", *({} for _ in range(50)), {"enrol_date": "not a date"})
    put(landing_path(settings, "hrss", "enrollment", as_of), csv_bytes("enrollment", rows))

    if step == "copy":
        real_copy = ingest_module._copy_to_staging

        def copy_then_die(conn, *args):
            counts = real_copy(conn, *args)  # rows are in staging and quarantine, not yet committed
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            return counts

        monkeypatch.setattr(ingest_module, "_copy_to_staging", copy_then_die)
        with pytest.raises(psycopg.OperationalError):
            ingest(warehouse, settings)
        monkeypatch.undo()
    else:
        # Another session holds the core lock, so the load waits inside its transaction; a third one kills it.
        done, killed = threading.Event(), []
        with warehouse.connect() as blocker:
            blocker.execute("SELECT pg_advisory_xact_lock(hashtext('core:enrollment'))")
            killer = threading.Thread(target=_terminate_when_waiting,
                                      args=(warehouse, "%pg_advisory_xact_lock%", done, killed))
            killer.start()
            try:
                with pytest.raises(psycopg.OperationalError):
                    ingest(warehouse, settings)
            finally:
                done.set()
                killer.join()
            blocker.rollback()
        assert killed == [True]

    with warehouse.connect() as conn:
        [(failed_id, status)] = conn.execute(
            "SELECT file_id, status FROM ingest.files WHERE as_of = %s", (as_of,)).fetchall()
        assert conn.execute("SELECT count(*) FROM core.enrollment WHERE as_of = %s", (as_of,)).fetchone()[0] == 0
    assert status == ("receiving" if step == "copy" else "validated")

    out = only(ingest(warehouse, settings))  # the retry
    assert (out.status, out.rows_received, out.rows_loaded, out.rows_quarantined) == ("loaded", 51, 50, 1)
    assert out.file_id != failed_id and file_row(warehouse, failed_id)["status"] == "abandoned"
    with warehouse.connect() as conn:
        ids = [r[0] for r in conn.execute("SELECT id_number FROM core.enrollment WHERE as_of = %s", (as_of,))]
        assert conn.execute("SELECT to_regclass(%s)", (f"staging.enrollment_f{failed_id}",)).fetchone()[0] is None
        assert conn.execute("SELECT count(*) FROM ingest.quarantine WHERE file_id = %s", (failed_id,)).fetchone()[0] == 0
    assert sorted(ids) == sorted(r["id_number"] for r in rows[:50])  # each row once
    assert ingest(warehouse, settings) == []  # and a third run does nothing
    assert_nothing_lost(warehouse)


def _big_enrollment_csv(n: int) -> bytes:
    """n valid enrollment rows (distinct IDs), written fast."""
    from crosscheck.normalise import check_char

    header = csv_bytes("enrollment", []).decode()
    lines = [header.rstrip("\r\n")]
    for i in range(n):
        first17 = f"500151{date(1950, 1, 1) + timedelta(days=i // 1000):%Y%m%d}{i % 1000:03d}"
        ident = first17 + check_char(first17)
        lines.append(f"P{i:08d},{ident},张三,正常参保,2020-01-02,200,无,0,未领取,,0,太平镇,坪漆村")
    return ("\r\n".join(lines) + "\r\n").encode()


KILLABLE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from helpers import make_settings
    from crosscheck import ingest
    from crosscheck.pipeline import ingest_department
    from crosscheck.warehouse import Warehouse

    def pause(real):  # the step's writes are done, its transaction not yet committed: say so, then wait
        def paused(*args):
            result = real(*args)
            print("in the middle", flush=True)
            time.sleep(60)
            return result
        return paused

    import crosscheck.validate  # GX is left out of the child (importing it takes seconds): files load as staged
    crosscheck.validate.validate_file = lambda warehouse, file_id, docs_dir, docs=None: {{}}
    if {step!r} == "copy":
        ingest._copy_to_staging = pause(ingest._copy_to_staging)
    else:  # load_file's last call before its transaction commits; core holds the new rows
        ingest._outcome = pause(ingest._outcome)
    settings = make_settings(Path({tmp!r}))
    ingest_department(Warehouse({url!r}), "hrss", settings.landing_dir, settings)
""")


@pytest.mark.parametrize("step", ["copy", "load"])
def test_process_killed_mid_load_rerun_completes_without_partial_rows(warehouse, settings, as_of, tmp_path, step):
    """SIGKILL while the rows are in staging, or while the core snapshot is being replaced (all writes done,
    nothing committed): the server rolls the transaction back; the next run clears the abandoned attempt and
    loads the file once."""
    n = 20_000
    put(landing_path(settings, "hrss", "enrollment", as_of), _big_enrollment_csv(n))
    script = KILLABLE.format(tests=os.path.dirname(__file__), tmp=str(tmp_path), url=warehouse.url, step=step)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line == "in the middle\n", proc.stderr.read()[-3000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with warehouse.connect(autocommit=True) as conn:
        # the server notices the dead client and rolls back; wait until its backend is gone
        deadline = time.monotonic() + 10
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'").fetchone()[0]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        [(killed_id, status)] = conn.execute(
            "SELECT file_id, status FROM ingest.files WHERE as_of = %s", (as_of,)).fetchall()
        assert status == ("receiving" if step == "copy" else "staged")  # killed mid-way, not after
        assert conn.execute("SELECT count(*) FROM core.enrollment WHERE as_of = %s", (as_of,)).fetchone()[0] == 0

    out = only(ingest(warehouse, settings))
    assert (out.status, out.rows_received, out.rows_loaded, out.rows_quarantined) == ("loaded", n, n, 0)
    assert file_row(warehouse, killed_id)["status"] == "abandoned"
    with warehouse.connect() as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT id_number) FROM core.enrollment WHERE as_of = %s",
                            (as_of,)).fetchone() == (n, n)
        assert conn.execute("SELECT to_regclass(%s)", (f"staging.enrollment_f{killed_id}",)).fetchone()[0] is None
    assert_nothing_lost(warehouse)


# ------------------------------------------------------------------------------- the night as a whole

D = date(2026, 11, 28)


@pytest.fixture(scope="module")
def district(tmp_path_factory):
    from crosscheck.generate import generate

    out = tmp_path_factory.mktemp("district")
    generate(out, 500, 5, D)
    return out / "landing"


def test_department_silent_for_three_nights_is_flagged_stale(fresh_warehouse, district, tmp_path):
    """hrss drops nothing after night D; on D+3 the others have sent fresh files. The comparison uses hrss's
    data of D, flags it stale in mart.freshness and in mismatches.csv, and still produces the findings of
    every department."""
    from crosscheck.outputs import write_mismatches
    from crosscheck.pipeline import compare_night

    settings = make_settings(tmp_path)
    later = D + timedelta(days=3)
    for path in district.rglob("*_20261128.*"):
        if not path.name.endswith(".done"):
            put(settings.landing_dir / path.parent.name / path.name, path.read_bytes())
            if path.parent.name != "hrss":
                put(settings.landing_dir / path.parent.name / path.name.replace("20261128", f"{later:%Y%m%d}"),
                    path.read_bytes())
    for department in DEPARTMENTS:
        ingest(fresh_warehouse, settings, department)
    assert_nothing_lost(fresh_warehouse)

    first = compare_night(fresh_warehouse, D, settings, gx=False)
    assert first.stale == []
    result = compare_night(fresh_warehouse, later, settings, gx=False)
    with fresh_warehouse.connect() as conn:
        freshness = {r[0]: r[1:] for r in conn.execute(
            "SELECT extract, department, data_as_of, age_days, stale FROM mart.freshness WHERE as_of = %s", (later,))}
    assert {e for e, (dept, *_) in freshness.items() if dept == "hrss"} == {
        "enrollment", "jobs", "pension_payments", "training"}
    for dept, data_as_of, age, stale in freshness.values():
        assert (data_as_of, age, stale) == ((D, 3, True) if dept == "hrss" else (later, 0, False))
    assert result.stale and all(s.startswith("人社/") for s in result.stale)

    write_mismatches(fresh_warehouse, later, tmp_path / "mismatches.csv")
    with open(tmp_path / "mismatches.csv", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    with_hrss = [r for r in rows if "人社" in r["departments"]]
    others = [r for r in rows if "人社" not in r["departments"]]
    assert with_hrss and others  # findings of every department are still produced
    assert all("【数据时效提示：人社：" in r["detail"] and "已3天未更新" in r["detail"] for r in with_hrss)
    assert not any("数据时效提示" in r["detail"] for r in others)
    assert {r["rule_code"] for r in others} >= {"ID03", "EM05"}
    assert len(rows) == result.new + result.open + result.resolved


def test_two_runs_of_the_same_night_do_not_overlap(fresh_warehouse, tmp_path, monkeypatch):
    """While a run holds the night lock, a second `run` of the same night refuses at once with a one-line
    RunFailed (the CLI exits 2 with it); a waiting caller gets the lock when the first ends. The first
    run completes undisturbed."""
    from crosscheck import pipeline

    settings = make_settings(tmp_path)
    as_of = unique_as_of()
    put(landing_path(settings, "hrss", "enrollment", as_of), csv_bytes("enrollment", rows_of("enrollment", {}, {})))
    entered, release = threading.Event(), threading.Event()
    real_compare = pipeline.compare_night

    def slow_compare(*args):
        entered.set()
        assert release.wait(60)
        return real_compare(*args)

    monkeypatch.setattr(pipeline, "compare_night", slow_compare)
    results, errors = [], []

    def first_run():
        try:
            results.append(run_night(settings.landing_dir, as_of, fresh_warehouse.url, tmp_path / "out", settings))
        except BaseException as exc:  # reported below
            errors.append(exc)

    first = threading.Thread(target=first_run)
    first.start()
    try:
        assert entered.wait(60), errors
        with pytest.raises(RunFailed) as refused:
            run_night(settings.landing_dir, as_of, fresh_warehouse.url, tmp_path / "out2", settings)
        message = str(refused.value)
        assert "another crosscheck run is in progress" in message and "\n" not in message

        got_lock = threading.Event()

        def waiter():
            with night_lock(fresh_warehouse, wait=True):
                got_lock.set()

        waiting = threading.Thread(target=waiter)
        waiting.start()
        assert not got_lock.wait(0.5)  # blocked while the first run holds the lock
    finally:
        release.set()
        first.join(120)
    waiting.join(30)
    assert got_lock.is_set() and not errors and len(results) == 1
    assert [f.status for f in results[0].files] == ["loaded"]
    assert not (tmp_path / "out2").exists()
    with fresh_warehouse.connect() as conn:
        assert conn.execute("SELECT as_of, status FROM mart.runs").fetchall() == [(as_of, "done")]
        assert conn.execute("SELECT count(*) FROM ingest.files").fetchone()[0] == 1
    assert_nothing_lost(fresh_warehouse)


def test_the_night_and_each_of_its_steps_take_the_one_night_lock(fresh_warehouse, tmp_path):
    """Another run holds the night lock (here a bare session of another process's kind): the in-process
    comparison and every step the nightly DAG runs refuse at once with the one-line RunFailed; a step inside
    a run that holds the lock itself does not wait for it."""
    from crosscheck import pipeline

    settings = make_settings(tmp_path)
    as_of = unique_as_of()
    with psycopg.connect(fresh_warehouse.url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (pipeline.NIGHT_LOCK,))
        steps = {"compare_night": lambda: pipeline.compare_night(fresh_warehouse, as_of, settings, gx=False),
                 "prepare": lambda: pipeline.prepare(fresh_warehouse, as_of, settings),
                 "evaluate": lambda: pipeline.evaluate(fresh_warehouse, as_of, {"key": "全部"}, settings),
                 "finish": lambda: pipeline.finish(fresh_warehouse, as_of, settings, gx=False),
                 "publish_night": lambda: pipeline.publish_night(fresh_warehouse, as_of, tmp_path / "out", settings)}
        for name, step in steps.items():
            with pytest.raises(RunFailed, match="another crosscheck run is in progress") as refused:
                step()
            assert "\n" not in str(refused.value), name
        other.execute("SELECT pg_advisory_unlock(%s)", (pipeline.NIGHT_LOCK,))
    with night_lock(fresh_warehouse):  # as run_night holds it: its steps run inside
        result = pipeline.compare_night(fresh_warehouse, as_of, settings, gx=False)
    assert result.total == 0
    with fresh_warehouse.connect() as conn:
        assert conn.execute("SELECT status FROM mart.runs WHERE as_of = %s", (as_of,)).fetchone()[0] == "done"
        # this database's advisory locks only: the machine's server runs other tests' nights beside this one
        assert conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                            "(SELECT oid FROM pg_database WHERE datname = current_database())").fetchone()[0] == 0
