"""History by change (crosscheck.history) on three nights of one generated district (generate --since):
compaction killed half-way and rerun, compaction twice = once, replay of an early night after
compaction byte for byte as published, archive compression and retention."""

from __future__ import annotations

import filecmp
import gzip
import hashlib
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from helpers import make_settings, throwaway_warehouse
from psycopg import sql
from test_night import crosscheck

from crosscheck import history
from crosscheck.contracts import contracts
from crosscheck.ingest import file_table

NIGHTS = ("2026-11-02", "2026-11-03", "2026-11-04")
pytestmark = pytest.mark.xdist_group("night")


@pytest.fixture(scope="module")
def nights(tmp_path_factory, warehouse_server):
    """Three nights run one after the other (each night's files generated just before it), not compacted."""
    root = tmp_path_factory.mktemp("history")
    district, var = root / "district", root / "var"
    env = {"CROSSCHECK_VAR": str(var), "CROSSCHECK_HISTORY_FULL_SNAPSHOTS": "1"}
    with throwaway_warehouse(warehouse_server) as w:
        for night in NIGHTS:
            since = ("--since", NIGHTS[0]) if night != NIGHTS[0] else ()
            crosscheck("generate", "--out", str(district), "--persons", "1500", "--seed", "3", "--date", night, *since)
            crosscheck("run", "--landing", str(district / "landing"), "--date", night, "--warehouse", w.url,
                       "--out", str(var / "out" / night), env=env)
        yield w, env, var


def snapshot_digests(conn) -> dict[tuple[str, date], str]:
    """A digest of every loaded snapshot's rows (line numbers included) as core holds it now."""
    out = {}
    for extract in contracts():
        cols = sql.SQL(", ").join(map(sql.Identifier, ["row_number", *history.data_columns(conn, extract)]))
        for (as_of,) in conn.execute("SELECT DISTINCT as_of FROM ingest.files WHERE extract = %s AND status = 'loaded'",
                                     (extract,)).fetchall():
            out[(extract, as_of)] = conn.execute(sql.SQL(
                "SELECT md5(string_agg(ROW({c})::text, '|' ORDER BY row_number)) FROM core.{t} WHERE as_of = %s")
                .format(c=cols, t=sql.Identifier(extract)), (as_of,)).fetchone()[0]
    return out


def restored_digests(w) -> dict[tuple[str, date], str]:
    """Every snapshot's digest with each night's snapshots restored from history (rolled back after)."""
    out = {}
    with w.connect() as conn, conn.transaction(force_rollback=True):
        for night in NIGHTS:
            history.restore_snapshots(conn, date.fromisoformat(night))
        out = snapshot_digests(conn)
    return out


def history_state(w) -> list:
    with w.connect() as conn:
        state = [conn.execute("SELECT extract, as_of, file_id, rows, missing_rows FROM history.snapshots "
                              "ORDER BY 1, 2").fetchall()]
        for extract in contracts():
            state.append(conn.execute(sql.SQL(
                "SELECT count(*), md5(string_agg(v::text, '|' ORDER BY v::text)) FROM history.{} v").format(
                    sql.Identifier(extract))).fetchone())
    return state


def wait_for(predicate, seconds: float = 120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_compaction_killed_half_way_then_rerun_is_right_and_twice_is_once(nights, tmp_path):
    w, env, var = nights
    with w.connect() as conn:
        before = snapshot_digests(conn)
        last = list(contracts())[-1]
        as_of, file_id = history.core_snapshots(conn, last)[-2]  # the last fold of the first compaction
    settings = make_settings(tmp_path, history_full_snapshots=1)

    # Hold the last fold at its partition's DROP (the versions are written, not committed), then kill it.
    with psycopg.connect(w.url) as blocker, psycopg.connect(w.url, autocommit=True) as watcher:
        blocker.execute(sql.SQL("LOCK TABLE core.{} IN ACCESS SHARE MODE").format(
            sql.Identifier(file_table(last, file_id))))
        proc = subprocess.Popen([sys.executable, "-m", "crosscheck.cli", "compact", "--warehouse", w.url],
                                env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            pid = wait_for(lambda: watcher.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
                "AND query LIKE 'DROP TABLE%%'").fetchone())[0]
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        finally:
            proc.kill()
        blocker.rollback()
    with w.connect(autocommit=True) as conn:
        wait_for(lambda: not conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone())
        folded = {(e, a) for e, a in conn.execute("SELECT extract, as_of FROM history.snapshots").fetchall()}
        assert (last, as_of) not in folded  # the killed fold left nothing
        assert len(folded) == 2 * len(contracts()) - 1
        assert conn.execute("SELECT to_regclass(%s)", (f"core.{file_table(last, file_id)}",)).fetchone()[0]
        assert snapshot_digests(conn)[(last, as_of)] == before[(last, as_of)]  # still whole, unchanged

    again = history.compact(w, settings)
    assert again.folded == [f"{last} {as_of}"]
    state = history_state(w)
    assert history.compact(w, settings).folded == [] and history_state(w) == state  # twice = once
    with w.connect() as conn:
        for extract in contracts():  # only the latest snapshot of each extract is whole
            assert [a for a, _ in history.core_snapshots(conn, extract)] == [date.fromisoformat(NIGHTS[-1])]
    assert restored_digests(w) == before  # every snapshot, line numbers included, as it was loaded

    # the night still runs on the compacted warehouse, with the same outputs
    crosscheck("run", "--landing", str(var.parent / "district" / "landing"), "--date", NIGHTS[-1],
               "--warehouse", w.url, "--out", str(tmp_path / "rerun"), env=env)
    for name in ("mismatches.csv", "kpis.csv"):
        assert filecmp.cmp(tmp_path / "rerun" / name, var / "out" / NIGHTS[-1] / name, shallow=False)


def test_replay_of_an_early_night_after_compaction_is_what_it_published(nights, tmp_path):
    w, env, var = nights
    history.compact(w, make_settings(tmp_path, history_full_snapshots=1))
    with w.connect() as conn:
        mart_before = conn.execute("SELECT count(*), max(as_of) FROM mart.finding_nights").fetchone()
        parts_before = conn.execute("SELECT count(*) FROM pg_inherits").fetchone()[0]
        assert conn.execute("SELECT count(*) FROM history.snapshots WHERE as_of = %s", (NIGHTS[0],)).fetchone()[0]
    for night in NIGHTS[:2]:
        crosscheck("replay", "--date", night, "--out", str(tmp_path / night), "--warehouse", w.url, env=env)
        for name in ("mismatches.csv", "kpis.csv"):
            assert filecmp.cmp(tmp_path / night / name, var / "out" / night / name, shallow=False), (night, name)
    with w.connect() as conn:  # the live warehouse is untouched
        assert conn.execute("SELECT count(*), max(as_of) FROM mart.finding_nights").fetchone() == mart_before
        assert conn.execute("SELECT count(*) FROM pg_inherits").fetchone()[0] == parts_before
    assert (tmp_path / NIGHTS[1] / "mismatches.csv").read_bytes().count(b"\n") > 10  # findings, not an empty file

    # a night that ran with other rules is refused, naming the file that differs
    fingerprint, files = history.rule_set()
    rule = next(p for p in files if p.startswith("sql/rules/"))
    with w.connect() as conn:
        conn.execute("INSERT INTO history.rule_sets (fingerprint, files) VALUES ('older', %s)",
                     (psycopg.types.json.Jsonb({**files, rule: files[rule] + "\n-- older"}),))
        conn.execute("UPDATE history.nights SET fingerprint = 'older' WHERE as_of = %s", (NIGHTS[0],))
    refused = crosscheck("replay", "--date", NIGHTS[0], "--out", str(tmp_path / "refused"), "--warehouse", w.url,
                         env=env, check=False)
    assert refused.returncode != 0 and rule in refused.stderr and not (tmp_path / "refused" / "mismatches.csv").exists()
    with w.connect() as conn:
        conn.execute("UPDATE history.nights SET fingerprint = %s WHERE as_of = %s", (fingerprint, NIGHTS[0]))


def test_archive_compressed_and_retention_removes_only_files_whose_rows_are_in_history(nights, tmp_path):
    w, env, var = nights
    settings = make_settings(tmp_path, history_full_snapshots=1, archive_retention_days={"default": 0})
    history.compact(w, settings)
    assert history.compress_archive(w, settings) > 0
    with w.connect() as conn:
        files = conn.execute("SELECT f.file_id, f.department, f.archive_path, f.sha256, EXISTS (SELECT 1 FROM "
                             "history.snapshots s WHERE s.file_id = f.file_id AND s.extract = f.extract) "
                             "FROM ingest.files f WHERE f.archive_path IS NOT NULL").fetchall()
    assert files and all(path.endswith(".gz") for _, _, path, _, _ in files)
    for _, _, path, sha, _ in files:  # compressed, the same bytes as received
        assert hashlib.sha256(gzip.decompress(Path(path).read_bytes())).hexdigest() == sha

    later = datetime.now(UTC) + timedelta(days=1)
    keep_civil = make_settings(tmp_path, archive_retention_days={"default": 0, "civil": 10})
    removed = set(history.apply_retention(w, keep_civil, now=later))
    in_history = {path for _, _, path, _, folded in files if folded}
    assert removed and removed <= in_history  # never a file whose rows history does not hold
    assert {path for _, dept, path, _, _ in files if dept == "civil"}.isdisjoint(removed)  # civil keeps 10 days
    for path in {p for _, _, p, _, _ in files}:
        assert Path(path).exists() == (path not in removed)
    assert {p for _, d, p, _, folded in files if folded and d != "civil"} == removed
    with w.connect() as conn:  # the files' records stay
        assert conn.execute("SELECT count(*) FROM ingest.files WHERE archive_removed_at IS NOT NULL").fetchone()[0] \
            >= len(removed)


def test_rows_moved_repeated_inserted_and_removed_come_back_in_their_lines(fresh_warehouse, tmp_path):
    """A department's file reordered between two days, with identical rows, a row inserted in the middle
    and one removed: each folded snapshot comes back from history line for line."""
    from helpers import csv_bytes, ingest, landing_path, put, rows_of, unique_as_of

    settings = make_settings(tmp_path, history_full_snapshots=1)
    a, b, c, d, e, f = rows_of("residents", *({} for _ in range(6)))
    days = [unique_as_of() for _ in range(4)]
    for day, rows in zip(days, ([a, b, b, c, d, e], [e, a, c, f, b, b], [b, e, a, c, f, b, d], [a]), strict=True):
        put(landing_path(settings, "civil", "residents", day), csv_bytes("residents", rows))
        ingest(fresh_warehouse, settings, "civil")
    with fresh_warehouse.connect() as conn:
        before = {k: v for k, v in snapshot_digests(conn).items() if k[0] == "residents"}
    assert len(before) == 4
    assert len(history.compact(fresh_warehouse, settings).folded) == 3
    with fresh_warehouse.connect() as conn, conn.transaction(force_rollback=True):
        for day in days:
            history.restore_snapshots(conn, day)
        assert {k: v for k, v in snapshot_digests(conn).items() if k[0] == "residents"} == before
