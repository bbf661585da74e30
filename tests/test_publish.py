"""Outputs appear whole or not at all; failures are one line; a URL's database is never created silently.

A compared night (a generated district, ingested and compared once per module) is published into
fresh sets behind the out path's link: a publish that raises or is SIGKILLed after some work lists
leaves the previous night's set as it was; the Airflow task functions write their work lists into
the new set only and switch once. The command line answers a bad --out before any work, a database
that goes away mid-night and a nonexistent database with one line and exit 2.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import date
from pathlib import Path

import psycopg
import pytest
from helpers import make_settings, throwaway_warehouse

from crosscheck import publishing
from crosscheck import warehouse as wh

D = date(2026, 11, 28)
MACHINE_PG = os.environ.get("CROSSCHECK_TEST_PG_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"


def crosscheck(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crosscheck.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600, **kw)


# A progress or warning line of the log (crosscheck.logs): the terminal shows the night's counts; errors
# are not among them, they are the one line the command ends with.
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+08:00 (INFO|WARNING) ")


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if not LOG_LINE.match(line)]
    assert len(lines) == 1, stderr[-3000:]
    assert "Traceback" not in stderr and " ERROR " not in stderr
    return lines[0]


def fingerprint(out: Path) -> dict[str, str]:
    """Every file readers reach through the out path, with its digest."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def machine_pg() -> str:
    try:
        psycopg.connect(MACHINE_PG, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {wh.redact(MACHINE_PG)}: {str(exc).splitlines()[0]}")
    return MACHINE_PG


@pytest.fixture(scope="module")
def district(tmp_path_factory) -> Path:
    from crosscheck.generate import generate

    out = tmp_path_factory.mktemp("district")
    generate(out, persons=1500, seed=5, as_of=D)
    return out


@pytest.fixture(scope="module")
def night(district, warehouse_server, tmp_path_factory):
    """A database holding the compared night D; yields (warehouse, settings)."""
    from crosscheck.pipeline import compare_night, ingest_departments
    from crosscheck.settings import DEPARTMENTS

    settings = make_settings(tmp_path_factory.mktemp("var"), landing_dir=district / "landing",
                             quiet_period_seconds=0)
    with throwaway_warehouse(warehouse_server) as w:
        ingest_departments(w, DEPARTMENTS, settings.landing_dir, settings)
        compare_night(w, D, settings)
        yield w, settings


def _sets(out: Path) -> list[str]:
    return [p.name for p in publishing.sets(out)]


def test_publish_failing_midway_keeps_the_previous_set_whole_and_a_rerun_switches(night, tmp_path, monkeypatch):
    from openpyxl import Workbook

    from crosscheck.pipeline import publish_night

    w, settings = night
    out = tmp_path / "reports" / D.isoformat()
    publish_night(w, D, out, settings)
    assert out.is_symlink()
    first = out.resolve()
    before = fingerprint(out)
    books = sorted(p.name for p in (out / "worklists").glob("*.xlsx"))
    assert len(books) > 5 and {"mismatches.csv", "kpis.csv", "report.html"} <= set(before)

    saved = []
    real_save = Workbook.save

    def save_then_fail(book, path):  # the writer dies after three work lists of the new night
        if len(saved) == 3:
            raise OSError("disk full")
        saved.append(path)
        return real_save(book, path)

    monkeypatch.setattr(Workbook, "save", save_then_fail)
    with pytest.raises(OSError, match="disk full"):
        publish_night(w, D, out, settings)
    assert len(saved) == 3 and all(not Path(p).is_relative_to(first) for p in saved)  # written into a new set
    assert out.resolve() == first and fingerprint(out) == before  # readers still see the whole previous set
    assert _sets(out) == [first.name]  # the failed set is gone

    monkeypatch.setattr(Workbook, "save", real_save)
    outputs = publish_night(w, D, out, settings)
    second = out.resolve()
    assert second != first and second.parent == first.parent
    assert fingerprint(out).keys() == before.keys()
    assert sorted(p.name for p in (out / "worklists").glob("*.xlsx")) == books
    assert outputs["report"] == out / "report.html"
    assert _sets(out) == sorted([first.name, second.name])  # the previous set is kept for a reader mid-way
    publish_night(w, D, out, settings)
    assert _sets(out) == sorted([second.name, out.resolve().name])  # older ones are removed


def test_a_folder_published_before_sets_is_taken_over_and_kept_as_the_previous_set(night, tmp_path):
    from crosscheck.pipeline import publish_night

    w, settings = night
    out = tmp_path / "reports" / D.isoformat()
    (out / "worklists").mkdir(parents=True)
    (out / "mismatches.csv").write_text("last night", encoding="utf-8")
    (out / "worklists" / "太平镇.xlsx").write_bytes(b"last night")
    publish_night(w, D, out, settings)
    assert out.is_symlink() and (out / "report.html").is_file()
    assert (out / "mismatches.csv").read_text(encoding="utf-8-sig") != "last night"
    [previous] = [p for p in publishing.sets(out) if p != out.resolve()]
    assert (previous / "mismatches.csv").read_text(encoding="utf-8") == "last night"  # nothing lost


KILLED_PUBLISH = textwrap.dedent("""
    import sys, time
    from datetime import date
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from openpyxl import Workbook
    from helpers import make_settings
    from crosscheck.pipeline import publish_night
    from crosscheck.warehouse import Warehouse

    real_save, saved = Workbook.save, []

    def save(book, path):  # after four work lists: say so, then wait for the SIGKILL
        real_save(book, path)
        saved.append(path)
        if len(saved) == 4:
            print("in the middle", flush=True)
            time.sleep(120)

    Workbook.save = save
    settings = make_settings(Path({var!r}), landing_dir=Path({landing!r}))
    publish_night(Warehouse({url!r}), date.fromisoformat({day!r}), Path({out!r}), settings)
""")


def test_publish_killed_midway_leaves_the_previous_set_intact(night, district, tmp_path):
    from crosscheck.pipeline import publish_night

    w, settings = night
    out = tmp_path / "out"
    publish_night(w, D, out, settings)
    before, first = fingerprint(out), out.resolve()
    script = KILLED_PUBLISH.format(tests=os.path.dirname(__file__), var=str(settings.var_dir),
                                   landing=str(district / "landing"), url=w.url, day=D.isoformat(), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "in the middle\n", proc.stderr.read()[-3000:]
        partial = [s for s in publishing.sets(out) if s != first]
        assert len(partial) == 1 and len(list((partial[0] / "worklists").glob("*.xlsx"))) == 4
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out.resolve() == first and fingerprint(out) == before
    publish_night(w, D, out, settings)  # the next night switches; the killed set is cleaned up
    assert out.resolve() not in (first, partial[0]) and not partial[0].exists()
    assert fingerprint(out).keys() == before.keys()


def test_airflow_task_functions_write_work_lists_into_the_new_set_and_switch_once(night, tmp_path):
    from crosscheck import tasks
    from crosscheck.pipeline import publish_night

    w, night_settings = night
    settings = make_settings(tmp_path, landing_dir=night_settings.landing_dir, night_partitions="town")
    out = settings.reports_dir / D.isoformat()
    publish_night(w, D, out, settings)  # last night's set, as readers see it
    before, first = fingerprint(out), out.resolve()

    partitions = tasks.prepare(D.isoformat(), settings, w)
    assert len(partitions) > 1 and len({p["publish_set"] for p in partitions}) == 1
    new = settings.reports_dir / partitions[0]["publish_set"]
    for partition in partitions:
        tasks.compare_partition(D.isoformat(), partition, settings, w)
    tasks.compare(D.isoformat(), partitions, settings, w)
    written = []
    for partition in partitions:
        written += tasks.write_worklists(D.isoformat(), partition, settings, w)["worklists"]
        assert out.resolve() == first and fingerprint(out) == before  # nothing of tonight is visible yet
    assert sorted(p.name for p in (new / "worklists").glob("*.xlsx")) == sorted(written)

    outputs = tasks.publish(D.isoformat(), settings, w, worklists=False, partitions=partitions)
    assert out.resolve() == new.resolve()
    assert sorted(p.name for p in (out / "worklists").glob("*.xlsx")) == sorted(written)
    assert fingerprint(out).keys() == before.keys()
    assert outputs["worklists"] == str(out / "worklists") and outputs["report"] == str(out / "report.html")
    again = fingerprint(out)  # a retry of publish after the switch leaves the live set alone
    tasks.publish(D.isoformat(), settings, w, worklists=False, partitions=partitions)
    assert out.resolve() == new.resolve() and fingerprint(out) == again


@pytest.mark.parametrize("case", ["file", "inside landing", "foreign folder", "foreign link"])
def test_bad_out_fails_with_one_line_before_any_work(district, tmp_path, machine_pg, case):
    landing = tmp_path / "landing"
    os.symlink(district / "landing", landing)  # the drop folder, as the run sees it
    out = {"file": tmp_path / "out.txt", "inside landing": landing / "civil" / "out",
           "foreign folder": tmp_path / "home", "foreign link": tmp_path / "link"}[case]
    if case == "file":
        out.write_text("not a folder")
    elif case == "foreign folder":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif case == "foreign link":
        out.symlink_to(tmp_path)
    var = tmp_path / "var"
    database = f"crosscheck_test_{uuid.uuid4().hex[:10]}"  # never created: no work may reach the warehouse
    started = time.monotonic()
    result = crosscheck("run", "--landing", str(landing), "--date", D.isoformat(), "--out", str(out),
                        "--warehouse", wh.with_database(machine_pg, database), env={"CROSSCHECK_VAR": str(var)})
    assert result.returncode == 2
    assert "--out" in one_line(result.stderr)
    assert time.monotonic() - started < 30
    assert not (var / "archive").exists() and not (var / "outbox").exists()
    assert not wh.database_exists(wh.with_database(machine_pg, database))
    assert not (landing / "civil" / "out").exists()
    if case == "foreign folder":
        assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_database_stopped_mid_run_is_one_line_and_exit_2(district, tmp_path, machine_pg):
    database = f"crosscheck_test_{uuid.uuid4().hex[:10]}"
    url = wh.with_database(machine_pg, database)
    wh.open_warehouse(url, create=True)
    var = tmp_path / "var"
    proc = subprocess.Popen([sys.executable, "-m", "crosscheck.cli", "run", "--landing", str(district / "landing"),
                             "--date", D.isoformat(), "--warehouse", url, "--out", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "CROSSCHECK_VAR": str(var), "CROSSCHECK_QUIET_PERIOD_SECONDS": "0"})
    try:
        with psycopg.connect(machine_pg, autocommit=True) as admin:
            deadline = time.monotonic() + 120
            with psycopg.connect(url, autocommit=True) as probe:  # wait until ingest is under way
                while not probe.execute("SELECT count(*) FROM ingest.files").fetchone()[0]:
                    assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
                    time.sleep(0.05)
            # The server goes away for this database: no new connection, every open one terminated.
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))
            stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with psycopg.connect(machine_pg, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    assert proc.returncode == 2, stderr[-3000:]
    line = one_line(stderr)
    assert "连接中断" in line and "connection was lost" in line
    assert not (tmp_path / "out").exists()  # nothing half-published
    log = (var / "logs" / "crosscheck.log").read_text(encoding="utf-8")
    assert "Traceback" in log  # the details are in the log file


def test_nonexistent_database_is_refused_and_created_only_when_asked(tmp_path, machine_pg):
    landing = tmp_path / "landing"
    landing.mkdir()
    database = f"crosscheck_test_{uuid.uuid4().hex[:10]}"
    url = wh.with_database(machine_pg, database)
    env = {"CROSSCHECK_VAR": str(tmp_path / "var")}
    try:
        result = crosscheck("run", "--landing", str(landing), "--date", D.isoformat(), "--warehouse", url, env=env)
        assert result.returncode == 2
        assert "does not exist" in one_line(result.stderr) and "crosscheck warehouse create" in result.stderr
        assert crosscheck("warehouse", "url", "--warehouse", url, env=env).returncode == 2
        with pytest.raises(wh.WarehouseMissing):
            wh.open_warehouse(url)
        assert not wh.database_exists(url)

        created = crosscheck("warehouse", "create", url, env=env)
        assert created.returncode == 0, created.stderr[-3000:]
        assert wh.database_exists(url)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM meta.schema_migrations").fetchone()[0] == len(
                wh.migration_files())
        result = crosscheck("run", "--landing", str(landing), "--date", D.isoformat(), "--warehouse", url,
                            "--out", str(tmp_path / "out"), env=env)
        assert result.returncode == 0, result.stderr[-3000:]
    finally:
        wh.drop_database(machine_pg, database)


@pytest.mark.parametrize("args", [["generate", "--out", "x", "--persons", "3"],
                                  ["generate", "--out", "x", "--districts", "123456"],
                                  ["warehouse", "url", "--warehouse", "not-a-url"],
                                  ["run", "--landing", "x"]])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, args):
    result = crosscheck(*args, env={"CROSSCHECK_VAR": str(tmp_path / "var")}, cwd=tmp_path)
    assert result.returncode == 2
    one_line(result.stderr)
    assert not (tmp_path / "x").exists()


def test_report_page_serves_the_current_set_only(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from crosscheck.settings import get_settings
    from crosscheck.webapp import create_app

    reports = tmp_path / "reports"
    for night, text in (("2026-11-27", "27"), ("2026-11-28", "old"), ("2026-11-28", "new")):
        folder = publishing.new_set(reports / night)
        (folder / "report.html").write_text(f"<html>{text}</html>", encoding="utf-8")
        publishing.switch(reports / night, folder)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "report.html").write_text("secret", encoding="utf-8")
    (reports / "2026-11-29").symlink_to(outside)  # planted: a night that leads out of the reports folder
    monkeypatch.setenv("CROSSCHECK_REPORTS", str(reports))
    get_settings.cache_clear()
    try:
        client = TestClient(create_app(), follow_redirects=False)
        index = client.get("/").text
        assert "2026-11-28" in index and "2026-11-27" in index and "2026-11-29" not in index
        assert client.get("/latest").headers["location"].endswith("nights/2026-11-28/report.html")
        assert client.get("/nights/2026-11-28/report.html").text == "<html>new</html>"
        assert client.get("/nights/2026-11-29/report.html").status_code == 404
        [old] = [p.name for p in publishing.sets(reports / "2026-11-28") if p != (reports / "2026-11-28").resolve()]
        assert client.get(f"/nights/2026-11-28/..%2F{old}%2Freport.html").status_code == 404
        assert client.get(f"/nights/{old}/report.html").status_code == 404
    finally:
        get_settings.cache_clear()


def test_a_set_is_on_disk_before_the_link_points_at_it(tmp_path, monkeypatch):
    """The switch is made durable (the folder holding the link is synced); so must be what it points at, first:
    every file and folder of the new set is synced before the link is renamed into place."""
    out = tmp_path / "out"
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                 real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", str(b))), real_replace(a, b))[1])
    with publishing.publishing(out) as folder:
        (folder / "worklists").mkdir()
        (folder / "mismatches.csv").write_text("a\n", encoding="utf-8")
        (folder / "worklists" / "太平镇.xlsx").write_bytes(b"x")
    switched = events.index(("replace", str(out)))
    synced = {path for kind, path in events[:switched] if kind == "fsync"}
    assert {str(folder), str(folder / "worklists"), str(folder / "mismatches.csv"),
            str(folder / "worklists" / "太平镇.xlsx")} <= synced
    assert (out / "worklists" / "太平镇.xlsx").read_bytes() == b"x"
