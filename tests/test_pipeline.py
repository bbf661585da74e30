"""The night with its helper process (``crosscheck run``): files read there load the same rows, quarantine
and receipts as when a thread reads them, its logs and errors reach this process, and the reports drawn
there are those drawn here."""

from __future__ import annotations

import logging
import os
from datetime import date

import psycopg
import pytest
from helpers import csv_bytes, make_settings, put, receipt, rows_of, throwaway_warehouse

from crosscheck import warehouse as wh
from crosscheck.generate import generate
from crosscheck.pipeline import (
    compare_night,
    connection_lost,
    helper_process,
    ingest_departments,
    publish_night,
)
from crosscheck.settings import DEPARTMENTS
from crosscheck.timing import Timing
from crosscheck.validate import DataDocsWriter

AS_OF = date(2026, 11, 28)


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    out = tmp_path_factory.mktemp("district")
    generate(out, persons=500, seed=3, as_of=AS_OF)
    return out / "landing"


def _what_was_loaded(w: wh.Warehouse) -> dict:
    """Per file name: its outcome's counts, its quarantined rows (row, rule) and its rows in core."""
    with w.connect() as conn:
        files = conn.execute("SELECT file_id, file_name, extract, status, rows_received, rows_loaded, rows_quarantined "
                             "FROM ingest.files").fetchall()
        loaded = {}
        for file_id, name, extract, *counts in files:
            quarantine = conn.execute("SELECT row_number, rule FROM ingest.quarantine WHERE file_id = %s "
                                      "ORDER BY 1, 2", (file_id,)).fetchall()
            # extract names come from the contracts in this repository
            in_core = conn.execute(f"SELECT count(*) FROM core.{extract} WHERE file_id = %s",  # noqa: S608
                                   (file_id,)).fetchone()[0]
            loaded[name] = (*counts, quarantine, in_core)
    return loaded


def test_files_read_in_the_helper_process_load_as_when_a_thread_reads_them(landing, warehouse_server, tmp_path):
    results = {}
    for helper in (None, helper_process()):
        settings = make_settings(tmp_path / str(helper is None), landing_dir=landing, quiet_period_seconds=0)
        timing = Timing()
        with throwaway_warehouse(warehouse_server) as w:
            outcomes = ingest_departments(w, DEPARTMENTS, landing, settings, night=AS_OF, timing=timing, helper=helper)
            results[helper is not None] = _what_was_loaded(w)
        assert {o.status for o in outcomes} == {"loaded"} and len(outcomes) == 9
        for o in outcomes:  # every file has its receipt
            assert receipt(settings, o.department, o.file_id)[0]
        # the seconds spent reading, wherever it ran, are in the night's timings
        assert timing.snapshot()["read+normalise"] > 0
    assert results[True] == results[False]
    assert any(quarantine for *_, quarantine, _ in results[True].values())  # the comparison compares something


def test_the_helper_process_logs_through_this_process(fresh_warehouse, tmp_path, caplog):
    """A warning of the staging (an earlier attempt at the file cleared) is logged in the helper process
    and handled by this process's loggers, as when a thread stages the file."""
    settings = make_settings(tmp_path)
    name = f"residents_{AS_OF:%Y%m%d}.csv"
    put(settings.landing_dir / "civil" / name, csv_bytes("residents", rows_of("residents", {})))
    with fresh_warehouse.transaction() as conn:  # an attempt that died half-way
        conn.execute("INSERT INTO ingest.files (department, extract, as_of, file_name, status) "
                     "VALUES ('civil', 'residents', %s, %s, 'receiving')", (AS_OF, name))
    with caplog.at_level(logging.INFO):
        [outcome] = ingest_departments(fresh_warehouse, ["civil"], settings.landing_dir, settings, night=AS_OF,
                                       helper=helper_process())
    assert outcome.status == "loaded"
    [cleared] = [r for r in caplog.records if "cleared unfinished attempt" in r.getMessage()]
    assert (cleared.name, cleared.levelno) == ("crosscheck.ingest", logging.WARNING)
    assert cleared.process != os.getpid()


def test_the_warehouse_lost_in_the_helper_process_stops_the_ingest_as_lost(warehouse_server, tmp_path):
    settings = make_settings(tmp_path)
    put(settings.landing_dir / "civil" / f"deaths_{AS_OF:%Y%m%d}.csv", b"x")
    gone = wh.Warehouse(wh.with_database(warehouse_server, "crosscheck_test_no_such_database"))
    with pytest.raises(psycopg.OperationalError) as raised:
        ingest_departments(gone, ["civil"], settings.landing_dir, settings, night=AS_OF, helper=helper_process())
    assert connection_lost(raised.value)


def test_reports_drawn_in_the_helper_process_are_those_drawn_here(landing, warehouse_server, tmp_path):
    settings = make_settings(tmp_path, landing_dir=landing, quiet_period_seconds=0)
    with throwaway_warehouse(warehouse_server) as w:
        ingest_departments(w, DEPARTMENTS, landing, settings, night=AS_OF)
        compare_night(w, AS_OF, settings)
        here = publish_night(w, AS_OF, tmp_path / "here", settings)
        beside = publish_night(w, AS_OF, tmp_path / "beside", settings, helper=helper_process())
    for name in ("report", "mismatches", "kpis"):
        assert beside[name].read_bytes() == here[name].read_bytes(), name
    assert "<svg" in beside["report"].read_text(encoding="utf-8")  # with its charts


def test_data_docs_written_in_the_background_are_those_written_here(warehouse_server, tmp_path):
    """Every page a file's validation writes is in place once ``wait`` returns, as without the writer."""
    pages = {}
    for background in (False, True):
        settings = make_settings(tmp_path / str(background))
        put(settings.landing_dir / "civil" / f"residents_{AS_OF:%Y%m%d}.csv",
            csv_bytes("residents", rows_of("residents", {}, {"sex": "不详"})))  # a warning and a critical failure
        docs = DataDocsWriter() if background else None
        with throwaway_warehouse(warehouse_server) as w:
            [outcome] = ingest_departments(w, ["civil"], settings.landing_dir, settings, night=AS_OF, docs=docs)
        if docs:
            docs.wait()
        written = sorted((settings.reports_dir / "data_docs").iterdir())
        pages[background] = [(p.name.replace(f"-{outcome.file_id}", "-ID"), p.stat().st_size > 0) for p in written]
    assert pages[True] == pages[False]
    assert {"residents-ID.html", "residents-ID-failed.html"} <= {name for name, _ in pages[True]}


def test_a_page_the_background_writer_cannot_write_fails_the_wait(tmp_path):
    docs = DataDocsWriter()
    docs.write(None, tmp_path / "page.html")  # not a validation result
    with pytest.raises(AttributeError):
        docs.wait()
