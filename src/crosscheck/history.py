"""History by change: compaction of core's snapshots, any past night replayed, the archive bounded.

**Compaction** (``compact``): each extract's latest ``history_full_snapshots`` snapshots stay whole
partitions of ``core.<extract>`` (the nights read them); each older one is folded into
``history.<extract>`` (sql/history/fold.sql: a row version per distinct row, valid from the first
snapshot that held it to the first that did not) and its partition dropped. A fold, its check (the
snapshot restored from history equals the partition, line numbers included) and the drop are one
transaction per snapshot: a killed compaction leaves every snapshot either whole or folded, and the
next one carries on. Compacting twice is compacting once.

**Nights**: ``prepare_night`` (called by the night's set-up) restores, for the night's date, any
folded snapshot the night reads (a rerun of an old night; the next compaction drops it again) and
records in ``history.nights`` which rules (``history.rule_sets``: the files' texts by fingerprint),
parameters and files the night ran with.

**Replay** (``replay``): night D recomputed from the stored history in one transaction that is rolled
back: the mart as it was when D ran (later nights and later verdicts left out), D's snapshots restored
where the night reads them, the night's rules, findings' life and indicators, then mismatches.csv
and kpis.csv written from that state. Refused, with the files named, when the rules differ from D's.

**Archive** (``compress_archive``, ``apply_retention``): archived files are gzipped once handled;
past a department's ``archive_retention_days`` a file is removed only when its snapshot is in
history. The ingest.files row (and receipts) stay. ``airflow_db_clean_command``: Airflow's own
database, cleaned by the maintenance DAG.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from psycopg import sql

from crosscheck.contracts import contracts
from crosscheck.night import night_params
from crosscheck.settings import EXPECTATIONS_DIR, INCLUDE_DIR, ROOT, SQL_DIR, Settings

log = logging.getLogger(__name__)

HISTORY_SQL = SQL_DIR / "history"
# What a night's findings depend on besides the data: its rules, the night's set-up, the indicators,
# the GX suites, the contracts, the departments and the reference data (towns, districts).
RULE_SOURCES = (SQL_DIR / "rules", SQL_DIR / "night", SQL_DIR / "indicators", EXPECTATIONS_DIR,
                INCLUDE_DIR / "contracts", INCLUDE_DIR / "departments.yaml", INCLUDE_DIR / "reference")
# Columns of core.<extract> that history.snapshots restores rather than each row version.
SNAPSHOT_COLUMNS = ("as_of", "file_id", "row_number")
# Archived files waiting for their night are still read; every other status is final.
UNFINISHED = ("receiving", "staged", "validated", "held")


class ReplayRefused(Exception):
    """Night D cannot be replayed as it ran (one line for the operator)."""


# --- compaction ------------------------------------------------------------------------------------

@dataclass
class CompactResult:
    folded: list[str] = field(default_factory=list)   # "residents 2026-11-28"
    dropped: list[str] = field(default_factory=list)  # restored copies of folded snapshots, dropped again
    kept: list[str] = field(default_factory=list)     # could not be folded (why, in the log)
    seconds: float = 0.0

    def describe(self) -> str:
        return (f"history: {len(self.folded)} snapshots folded, {len(self.dropped)} restored copies dropped, "
                f"{len(self.kept)} kept whole; {self.seconds:.1f} s")


def data_columns(conn, extract: str) -> list[str]:
    """core.<extract>'s columns that row versions keep (all but SNAPSHOT_COLUMNS), in table order."""
    rows = conn.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                        "AND NOT attisdropped ORDER BY attnum", (f"core.{extract}",)).fetchall()
    return [r[0] for r in rows if r[0] not in SNAPSHOT_COLUMNS]


def core_snapshots(conn, extract: str) -> list[tuple[date, int]]:
    """(as_of, file_id) of each whole snapshot in core.<extract> (its partitions but the DEFAULT one)."""
    parts = [r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass", (f"core.{extract}",)).fetchall()]
    ids = [int(m[1]) for p in parts if (m := re.fullmatch(re.escape(extract) + r"_f(\d+)", p))]
    rows = conn.execute("SELECT as_of, file_id FROM ingest.files WHERE file_id = ANY(%s) ORDER BY as_of, file_id",
                        (ids,)).fetchall()
    return [(a, f) for a, f in rows]


# Column lists per extract, read once per process (they change only with a migration).
data_columns_cache: dict[str, list[str]] = {}


def _history_sql(name: str, extract: str, **literals) -> sql.Composed:
    """sql/history/<name>.sql for one extract: {history}, {cols}, {k_cols} and the given literals."""
    cols = data_columns_cache[extract]
    values = {"history": sql.Identifier("history", extract),
              "cols": sql.SQL(", ").join(map(sql.Identifier, cols)),
              **{k: v if isinstance(v, sql.Composable) else sql.Literal(v) for k, v in literals.items()}}
    return sql.SQL((HISTORY_SQL / f"{name}.sql").read_text(encoding="utf-8")).format(**values)


def _load_columns(conn) -> None:
    for extract in contracts():
        if extract not in data_columns_cache:
            data_columns_cache[extract] = data_columns(conn, extract)


def restore_query(conn, extract: str, as_of: date) -> sql.Composed:
    """The SELECT giving the folded snapshot (extract, as_of) as its partition held it."""
    file_id, first_row, last_row, missing = conn.execute(
        "SELECT file_id, first_row, last_row, missing_rows FROM history.snapshots WHERE extract = %s AND as_of = %s",
        (extract, as_of)).fetchone()
    return _history_sql("restore", extract, as_of=as_of, file_id=file_id, first_row=first_row,
                        last_row=last_row, missing_rows=missing)


def compact(warehouse, settings: Settings) -> CompactResult:
    """Fold every snapshot older than each extract's latest ``history_full_snapshots`` into history."""
    from crosscheck.pipeline import night_lock  # the pipeline's steps set up nights from history

    started = time.perf_counter()
    result = CompactResult()
    keep = max(1, settings.history_full_snapshots)  # the latest snapshot is what tonight reads
    # Nights read core: a fold waits for a running night, and a night refuses while a fold runs.
    with night_lock(warehouse, wait=True), warehouse.connect() as conn:
        _load_columns(conn)
        conn.commit()
        for extract in contracts():
            for as_of, file_id in core_snapshots(conn, extract)[:-keep]:
                conn.commit()
                with conn.transaction():
                    outcome = _fold(conn, extract, as_of, file_id)
                getattr(result, outcome).append(f"{extract} {as_of}")
    result.seconds = time.perf_counter() - started
    log.info("%s", result.describe())
    return result


def _fold(conn, extract: str, as_of: date, file_id: int) -> str:
    """Fold one snapshot (in the caller's transaction); returns folded, dropped or kept."""
    from crosscheck.ingest import file_table

    part = sql.Identifier("core", file_table(extract, file_id))
    if conn.execute("SELECT to_regclass(%s)", (f"core.{file_table(extract, file_id)}",)).fetchone()[0] is None:
        return "dropped"  # gone meanwhile (another compaction)
    folded = conn.execute("SELECT file_id FROM history.snapshots WHERE extract = %s AND as_of = %s",
                          (extract, as_of)).fetchone()
    if folded and folded[0] == file_id:  # restored for a rerun or a replay: history has it
        conn.execute(sql.SQL("DROP TABLE {}").format(part))
        return "dropped"
    latest = conn.execute("SELECT max(as_of) FROM history.snapshots WHERE extract = %s", (extract,)).fetchone()[0]
    if folded or (latest and as_of <= latest):
        # history only grows forward: a file loaded later for an already folded date stays whole
        log.warning("%s of %s (file %s) is older than history's latest snapshot (%s): kept whole",
                    extract, as_of, file_id, latest)
        return "kept"
    conn.execute(_history_sql("fold", extract, part=part, as_of=as_of))
    conn.execute(sql.SQL(
        "WITH bounds AS (SELECT count(*) AS n, min(row_number) AS lo, max(row_number) AS hi FROM {part}) "
        "INSERT INTO history.snapshots (extract, as_of, file_id, rows, first_row, last_row, missing_rows) "
        "SELECT %s, %s, %s, n, lo, hi, coalesce((SELECT array_agg(line ORDER BY line) FROM "
        " (SELECT generate_series(lo, hi) AS line EXCEPT SELECT row_number FROM {part}) AS gaps), '{{}}') "
        "FROM bounds").format(part=part),
        (extract, as_of, file_id))
    restored = restore_query(conn, extract, as_of)
    cols = sql.SQL(", ").join(map(sql.Identifier, ["row_number", *data_columns_cache[extract]]))
    differing = conn.execute(sql.SQL(
        "SELECT count(*) FROM ((SELECT {c} FROM {part} EXCEPT ALL SELECT {c} FROM ({r}) r) "
        "UNION ALL (SELECT {c} FROM ({r}) r EXCEPT ALL SELECT {c} FROM {part})) d").format(
            c=cols, part=part, r=restored)).fetchone()[0]
    if differing:  # never drop what history could not give back
        raise RuntimeError(f"{extract} of {as_of}: {differing} rows restored from history differ; not folded")
    conn.execute(sql.SQL("DROP TABLE {}").format(part))
    return "folded"


# --- nights ----------------------------------------------------------------------------------------

def _snapshot_in_use(conn, extract: str, as_of: date) -> tuple[date | None, int | None]:
    """(as_of, file_id) of the snapshot night D reads: the latest loaded ≤ D (as crosscheck.night)."""
    row = conn.execute("SELECT as_of, file_id FROM ingest.files WHERE extract = %s AND status = 'loaded' "
                       "AND as_of <= %s ORDER BY as_of DESC, file_id DESC LIMIT 1", (extract, as_of)).fetchone()
    return (row[0], row[1]) if row else (None, None)


def restore_snapshots(conn, as_of: date) -> list[str]:
    """Restore, as partitions of core, the folded snapshots night D reads (in the caller's transaction)."""
    from crosscheck.ingest import file_table

    _load_columns(conn)
    restored = []
    for extract in contracts():
        data_as_of, _ = _snapshot_in_use(conn, extract, as_of)
        folded = conn.execute("SELECT file_id FROM history.snapshots WHERE extract = %s AND as_of = %s",
                              (extract, data_as_of)).fetchone()
        if not folded or conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM core.{} WHERE as_of = %s)").format(
                sql.Identifier(extract)), (data_as_of,)).fetchone()[0]:
            continue
        part = sql.Identifier("core", file_table(extract, folded[0]))
        conn.execute(sql.SQL("CREATE TABLE {} PARTITION OF core.{} FOR VALUES IN ({})").format(
            part, sql.Identifier(extract), sql.Literal(data_as_of)))
        cols = sql.SQL(", ").join(map(sql.Identifier, [*SNAPSHOT_COLUMNS, *data_columns_cache[extract]]))
        conn.execute(sql.SQL("INSERT INTO {} ({}) {}").format(part, cols, restore_query(conn, extract, data_as_of)))
        conn.execute(sql.SQL("ANALYZE {}").format(part))
        restored.append(f"{extract} {data_as_of}")
    if restored:
        log.info("restored from history for night %s: %s", as_of, ", ".join(restored))
    return restored


def rule_set() -> tuple[str, dict[str, str]]:
    """(fingerprint, {path: text}) of the files in RULE_SOURCES."""
    files = {}
    for source in RULE_SOURCES:
        for path in sorted([source] if source.is_file() else source.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    digest = hashlib.sha256(json.dumps(files, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return digest, files


def _params(as_of: date, settings: Settings) -> dict:
    return json.loads(json.dumps({**night_params(as_of, settings), "districts": list(settings.districts)},
                                 default=str))


def prepare_night(conn, as_of: date, settings: Settings) -> None:
    """For the night's set-up (in its transaction): restore the folded snapshots it reads, record its
    rules, parameters and files in history.nights."""
    restore_snapshots(conn, as_of)
    fingerprint, files = rule_set()
    conn.execute("INSERT INTO history.rule_sets (fingerprint, files) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                 (fingerprint, json.dumps(files, ensure_ascii=False)))
    used = {extract: _snapshot_in_use(conn, extract, as_of)[1] for extract in contracts()}
    conn.execute("INSERT INTO history.nights (as_of, fingerprint, params, files, prepared_at) "
                 "VALUES (%s, %s, %s, %s, now()) ON CONFLICT (as_of) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, "
                 "params = EXCLUDED.params, files = EXCLUDED.files, prepared_at = EXCLUDED.prepared_at",
                 (as_of, fingerprint, json.dumps(_params(as_of, settings)), json.dumps(used)))


class _InTransaction:
    """The outputs' writers read through ``warehouse.reporting()``: here, the replay's own transaction."""

    def __init__(self, conn):
        self.conn = conn

    @contextmanager
    def reporting(self):
        yield self.conn


def replay(warehouse, as_of: date, out_dir: Path, settings: Settings) -> dict[str, Path]:
    """Recompute night D's mismatches.csv and kpis.csv from history into out_dir; the warehouse is
    left as it was. Raises ReplayRefused when D cannot be replayed as it ran."""
    from crosscheck.findings import compute_indicators, materialise_findings, merge_findings
    from crosscheck.night import evaluate_partition, setup_night, tune
    from crosscheck.outputs import write_kpis, write_mismatches
    from crosscheck.partitions import plan_partitions
    from crosscheck.pipeline import night_lock
    from crosscheck.reference import deployment_districts

    # The night's lock: replay rebuilds schema night (rolled back), so no night may run beside it.
    with night_lock(warehouse), warehouse.connect() as conn:
        night = conn.execute("SELECT fingerprint, params, files, prepared_at FROM history.nights WHERE as_of = %s",
                             (as_of,)).fetchone()
        if night is None:
            raise ReplayRefused(f"night {as_of} has no record in history.nights (never run on this warehouse)")
        fingerprint, params, files, prepared_at = night
        current, texts = rule_set()
        if current != fingerprint:
            then = conn.execute("SELECT files FROM history.rule_sets WHERE fingerprint = %s", (fingerprint,)).fetchone()[0]
            changed = sorted(p for p in set(then) | set(texts) if then.get(p) != texts.get(p))
            raise ReplayRefused(f"night {as_of} ran with other rules: {', '.join(changed[:10])}"
                                f"{' …' if len(changed) > 10 else ''} differ (history.rule_sets {fingerprint[:12]})")
        now_params = _params(as_of, settings)
        if now_params != params:
            keys = sorted(k for k in set(params) | set(now_params) if params.get(k) != now_params.get(k))
            raise ReplayRefused(f"night {as_of} ran with other settings: {', '.join(keys)}")
        out_dir.mkdir(parents=True, exist_ok=True)
        with conn.transaction(force_rollback=True):
            tune(conn)
            # The mart as night D left it: no later night, no verdict received after D was set up.
            conn.execute("DELETE FROM mart.finding_nights WHERE as_of >= %s", (as_of,))
            conn.execute("DELETE FROM mart.feedback WHERE received_at > %s", (prepared_at,))
            restore_snapshots(conn, as_of)
            used = {extract: _snapshot_in_use(conn, extract, as_of)[1] for extract in contracts()}
            if used != files:
                late = sorted(e for e in used if used[e] != files.get(e))
                raise ReplayRefused(f"files loaded after night {as_of} ran change what it reads: {', '.join(late)}")
            freshness = setup_night(conn, as_of, settings)
            for partition in plan_partitions(conn, "none"):
                evaluate_partition(conn, partition)
            materialise_findings(conn)
            merge_findings(conn, as_of)
            compute_indicators(conn, as_of, sorted(freshness, key=lambda r: (r["department"], r["extract"])))
            reader = _InTransaction(conn)
            outputs = {"mismatches": out_dir / "mismatches.csv", "kpis": out_dir / "kpis.csv"}
            write_mismatches(reader, as_of, outputs["mismatches"])
            write_kpis(reader, as_of, outputs["kpis"])
            districts = deployment_districts(settings.districts)
            if len(districts) > 1:
                for district in districts:
                    folder = out_dir / "districts" / district.code
                    write_mismatches(reader, as_of, folder / "mismatches.csv", towns=district.towns)
                    write_kpis(reader, as_of, folder / "kpis.csv", district=district)
                outputs["districts"] = out_dir / "districts"
    return outputs


# --- archive ---------------------------------------------------------------------------------------

def compress_archive(warehouse, settings: Settings) -> int:
    """gzip every archived file no unfinished file still reads; ingest.files then names the .gz.
    Killed half-way, the next run finds the .gz (written whole, then renamed) and finishes."""
    done = 0
    with warehouse.connect(autocommit=True) as conn:
        paths = [r[0] for r in conn.execute(
            "SELECT archive_path FROM ingest.files WHERE archive_path IS NOT NULL AND archive_path NOT LIKE '%%.gz' "
            "AND archive_removed_at IS NULL GROUP BY archive_path HAVING NOT bool_or(status = ANY(%s))",
            (list(UNFINISHED),)).fetchall()]
        for name in paths:
            path, packed = Path(name), Path(name + ".gz")
            if not packed.exists():
                if not path.exists():
                    log.warning("archived file %s is missing", path.name)
                    continue
                tmp = packed.with_name(f".packing-{os.getpid()}-{packed.name}")
                with open(path, "rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                os.chmod(tmp, 0o444)
                os.replace(tmp, packed)
            conn.execute("UPDATE ingest.files SET archive_path = %s WHERE archive_path = %s", (str(packed), name))
            path.unlink(missing_ok=True)
            done += 1
    return done


def retention_days(settings: Settings, department: str) -> int:
    days = settings.archive_retention_days
    return int(days.get(department, days["default"]))


def apply_retention(warehouse, settings: Settings, now: datetime | None = None) -> list[str]:
    """Remove archived files older than their department's retention whose rows are in history
    (their snapshot folded); return the removed paths. Files whose rows history does not hold
    (rejected, superseded, not yet folded) stay, whatever their age."""
    now = now or datetime.now(UTC)
    removed = []
    with warehouse.connect(autocommit=True) as conn:
        rows = conn.execute(
            "SELECT f.archive_path, f.department, max(f.received_at) FROM ingest.files f "
            "WHERE f.archive_path IS NOT NULL AND f.archive_removed_at IS NULL GROUP BY f.archive_path, f.department "
            "HAVING bool_or(EXISTS (SELECT 1 FROM history.snapshots s WHERE s.extract = f.extract "
            " AND s.as_of = f.as_of AND s.file_id = f.file_id))").fetchall()
        for name, department, received in rows:
            if received > now - timedelta(days=retention_days(settings, department)):
                continue
            Path(name).unlink(missing_ok=True)
            conn.execute("UPDATE ingest.files SET archive_removed_at = now() WHERE archive_path = %s", (name,))
            removed.append(name)
    if removed:
        log.info("archive retention: %d files removed (their rows are in history)", len(removed))
    return removed


# --- Airflow's own database -------------------------------------------------------------------------

def airflow_db_clean_command(settings: Settings, now: datetime | None = None) -> list[str]:
    """``airflow db clean`` of everything older than ``airflow_db_retention_days`` (no archive tables:
    they would keep what the cleaning removes)."""
    now = now or datetime.now(UTC)
    before = (now - timedelta(days=settings.airflow_db_retention_days)).replace(microsecond=0)
    beside = Path(sys.executable).parent / "airflow"  # this environment's Airflow, on PATH or not
    return [str(beside) if beside.exists() else "airflow", "db", "clean", "--clean-before-timestamp", before.isoformat(), "--skip-archive", "--yes"]
