"""Ingest: a ready drop → archived, read, normalised, staged (COPY), validated, loaded into core.

The three steps an Airflow ingest DAG runs as tasks are ``stage_drop``, ``validate_file`` (in
``crosscheck.validate``) and ``load_file``; ``ingest_drop`` runs all three. Every row received
ends either in core or in ``ingest.quarantine`` with its reason, and each file's counts reconcile.
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pgpq
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from crosscheck.contracts import Contract, contracts
from crosscheck.masking import for_people
from crosscheck.normalise import normalise_arrow, normalise_text
from crosscheck.pickup import Drop, archive, safe_display_name
from crosscheck.read import FileRejected, open_extract
from crosscheck.settings import Settings
from crosscheck.warehouse import Warehouse

log = logging.getLogger(__name__)

TERMINAL = ("loaded", "duplicate", "rejected", "superseded", "held")

# Arrow types of the normalised values, by contract column type (the core tables of the migrations
# match them: tests/test_catalogue.py).
ARROW_TYPES = {
    "id_number": pa.string(), "name": pa.string(), "text": pa.string(), "enum": pa.string(),
    "date": pa.date32(), "month": pa.date32(), "amount": pa.decimal128(14, 2),
    "year": pa.int32(), "yesno": pa.bool_(),
}


@dataclass
class FileOutcome:
    """What became of one drop; enough for a log line, a receipt and the DAG's XCom."""

    department: str
    file_name: str
    status: str  # staged | loaded | held | duplicate | rejected | superseded | skipped
    file_id: int | None = None
    extract: str | None = None
    as_of: date | None = None
    reason: str | None = None
    rows_received: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.status in ("loaded", "staged"):
            return (f"{self.department}/{self.file_name}: {self.status} — received {self.rows_received}, "
                    f"loaded {self.rows_loaded}, quarantined {self.rows_quarantined}")
        if self.status == "held":
            return (f"{self.department}/{self.file_name}: HELD (file {self.file_id}, not loaded; the previous snapshot "
                    f"stays in use; crosscheck release {self.file_id}) — received {self.rows_received}, "
                    f"quarantined {self.rows_quarantined}")
        return f"{self.department}/{self.file_name}: {self.status} — {self.reason or ''}"


def _insert_file(conn, drop: Drop, **values) -> int:
    cols = {"department": drop.department, "extract": drop.extract, "as_of": drop.as_of,
            "file_name": safe_display_name(drop.name), "size_bytes": drop.size, "mtime_ns": drop.mtime_ns,
            "format": drop.format, **values}
    query = sql.SQL("INSERT INTO ingest.files ({}) VALUES ({}) RETURNING file_id").format(
        sql.SQL(", ").join(map(sql.Identifier, cols)), sql.SQL(", ").join(sql.Placeholder() * len(cols)))
    return conn.execute(query, list(cols.values())).fetchone()[0]


def _abandon_unfinished(conn, drop: Drop) -> None:
    """A previous attempt at this very file died half-way (killed, server restart): clear it."""
    rows = conn.execute(
        "SELECT file_id, extract FROM ingest.files WHERE department = %s AND file_name = %s "
        "AND status NOT IN ('loaded','duplicate','rejected','superseded','held','abandoned')",
        (drop.department, safe_display_name(drop.name))).fetchall()
    for file_id, extract in rows:
        if extract in contracts():
            conn.execute(sql.SQL("DROP TABLE IF EXISTS staging.{}").format(sql.Identifier(file_table(extract, file_id))))
        conn.execute("DELETE FROM ingest.quarantine WHERE file_id = %s", (file_id,))
        conn.execute("DELETE FROM ingest.validation_results WHERE file_id = %s", (file_id,))
        conn.execute("UPDATE ingest.files SET status = 'abandoned' WHERE file_id = %s", (file_id,))
        log.warning("cleared unfinished attempt file_id=%s of %s/%s", file_id, drop.department, drop.name)


def record_rejected_drop(warehouse: Warehouse, drop: Drop) -> FileOutcome | None:
    """Record a drop pick-up refused (bad name, link, folder, too big) once; None if already recorded —
    or if this very file was handled before: a file loaded last year, now outside the date window, or
    outvoted by a newer file of its date, keeps the receipt it has."""
    with warehouse.transaction() as conn:
        seen = conn.execute(
            "SELECT 1 FROM ingest.files WHERE department = %s AND file_name = %s AND status = ANY(%s) "
            "AND size_bytes IS NOT DISTINCT FROM %s AND mtime_ns IS NOT DISTINCT FROM %s",
            (drop.department, safe_display_name(drop.name), list(TERMINAL), drop.size, drop.mtime_ns)).fetchone()
        if seen:
            return None
        file_id = _insert_file(conn, drop, status="rejected", reason=drop.reason)
    return FileOutcome(drop.department, safe_display_name(drop.name), "rejected", file_id, drop.extract,
                       drop.as_of, drop.reason)


def stage_drop(warehouse: Warehouse, drop: Drop, settings: Settings) -> FileOutcome:
    """Archive a ready drop, then read and normalise it into staging (one transaction).

    Returns status ``skipped`` for a file already handled (a rerun), ``duplicate`` for the same
    bytes dropped again, ``rejected`` for an unreadable file, ``staged`` otherwise.
    """
    assert drop.state == "ready" and drop.extract
    contract = contracts()[drop.extract]
    name = safe_display_name(drop.name)
    with warehouse.connect() as conn:
        # A file handled on an earlier night is still in the drop folder: not hashed and copied into
        # the archive again (whose copy may be compressed by now), as the Airflow path skips it too.
        seen = conn.execute(
            "SELECT file_id, status FROM ingest.files WHERE department = %s AND file_name = %s AND status = ANY(%s) "
            "AND size_bytes = %s AND mtime_ns = %s ORDER BY file_id DESC LIMIT 1",
            (drop.department, name, list(TERMINAL), drop.size, drop.mtime_ns)).fetchone()
    if seen:
        return FileOutcome(drop.department, name, "skipped", seen[0], drop.extract, drop.as_of,
                           f"already handled as {seen[1]}")
    try:
        sha, archived = archive(drop, settings.archive_dir / drop.department)
    except FileNotFoundError:  # taken away between the scan and now: it is no longer there to receive
        return FileOutcome(drop.department, name, "skipped", None, drop.extract, drop.as_of, "vanished")
    except OSError as exc:
        # Unreadable (permissions) or swapped for a symlink since the scan (O_NOFOLLOW): refuse it with a
        # receipt. Raising here would stop the whole department, night after night.
        log.warning("%s/%s cannot be archived: %s", drop.department, name, exc)
        drop.state = "rejected"
        drop.reason = ("该文件无法读取（可能没有读取权限，或在接收过程中被替换为快捷方式），"
                       "请重新放入文件本身")
        outcome = record_rejected_drop(warehouse, drop)
        return outcome or FileOutcome(drop.department, name, "skipped", None, drop.extract, drop.as_of,
                                      "already refused")
    with warehouse.transaction() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"file:{drop.department}/{name}",))
        seen = conn.execute(
            "SELECT file_id, status, reason FROM ingest.files WHERE department = %s AND file_name = %s "
            "AND sha256 = %s AND mtime_ns = %s AND status IN ('loaded','duplicate','rejected','superseded','held') "
            "ORDER BY file_id DESC LIMIT 1", (drop.department, name, sha, drop.mtime_ns)).fetchone()
        if seen:
            return FileOutcome(drop.department, name, "skipped", seen[0], drop.extract, drop.as_of,
                               f"already handled as {seen[1]}")
        _abandon_unfinished(conn, drop)
        earlier = conn.execute(
            # Same bytes for the same extract and date. The same bytes under a new date are that
            # date's snapshot (a registry that did not change overnight) and are loaded.
            "SELECT file_name, received_at FROM ingest.files WHERE extract = %s AND as_of = %s AND sha256 = %s "
            "AND status IN ('loaded','superseded','held') ORDER BY file_id LIMIT 1",
            (drop.extract, drop.as_of, sha)).fetchone()
        if earlier:
            reason = (f"与 {earlier[1]:%Y-%m-%d %H:%M} 已接收的文件 {earlier[0]} 内容完全相同（重复报送），"
                      "本次未重复入库，无需处理")
            file_id = _insert_file(conn, drop, status="duplicate", reason=reason, sha256=sha,
                                   archive_path=str(archived))
            return FileOutcome(drop.department, name, "duplicate", file_id, drop.extract, drop.as_of, reason)
        file_id = _insert_file(conn, drop, status="receiving", sha256=sha, archive_path=str(archived),
                               reason=drop.note)

    try:
        extract = open_extract(archived, contract, settings.max_xlsx_uncompressed_bytes)
        with warehouse.transaction() as conn:
            received, quarantined = _copy_to_staging(conn, file_id, drop.as_of, contract, extract)
            if received == 0:  # loading it would wipe the extract's snapshot for that date
                raise FileRejected("文件只有表头，没有数据行（可能导出时未选中数据），请重新导出后报送", {"rows": 0})
            conn.execute(
                "UPDATE ingest.files SET status = 'staged', encoding = %s, header_mapping = %s, "
                "warnings = %s, rows_received = %s, rows_quarantined = %s WHERE file_id = %s",
                (extract.encoding, json.dumps(extract.header_mapping, ensure_ascii=False),
                 json.dumps(extract.warnings, ensure_ascii=False), received, quarantined, file_id))
    except (FileRejected, pa.ArrowException, psycopg.errors.DataError, UnicodeError) as exc:
        # A file the readers or COPY choke on mid-way is the file's fault, not the infrastructure's: reject
        # it with a receipt. Left in 'receiving', it would fail again every night and block the department.
        if not isinstance(exc, FileRejected):
            # a parser error may quote the offending line, ID numbers included
            log.warning("%s/%s cannot be read: %s", drop.department, name, for_people(str(exc)))
            exc = FileRejected("文件内容无法完整读取（格式错误或文件已损坏），请重新导出后报送",
                               {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"})
        with warehouse.transaction() as conn:
            conn.execute("UPDATE ingest.files SET status = 'rejected', reason = %s, warnings = %s "
                         "WHERE file_id = %s",
                         (exc.reason, json.dumps(exc.details, ensure_ascii=False, default=str), file_id))
        return FileOutcome(drop.department, name, "rejected", file_id, drop.extract, drop.as_of, exc.reason)
    return FileOutcome(drop.department, name, "staged", file_id, drop.extract, drop.as_of,
                       rows_received=received, rows_quarantined=quarantined, warnings=list(extract.warnings))


def file_table(extract: str, file_id: int) -> str:
    """The table that holds one file's rows: staging.<name> until loaded, then core.<name>, a partition
    of core.<extract> (sql/migrations/0007)."""
    return f"{extract}_f{file_id}"


def _copy_to_staging(conn, file_id: int, as_of: date, contract: Contract, extract) -> tuple[int, int]:
    """Normalise every batch; COPY the good rows into the file's own staging table, the bad ones into
    quarantine. The table is created here, in the same transaction: a failed attempt leaves nothing,
    and on a server with wal_level=minimal the COPY skips the write-ahead log."""
    received = quarantined = 0
    schema = _staged_schema(contract)
    staged_cols = schema.names
    staging = sql.Identifier(file_table(contract.extract, file_id))
    # The CHECK is the partition's bound: attaching the table then needs no scan to prove it.
    conn.execute(sql.SQL("CREATE TABLE staging.{} (LIKE core.{} INCLUDING DEFAULTS, CHECK (as_of = {}))").format(
        staging, sql.Identifier(contract.extract), sql.Literal(as_of)))
    # Binary COPY: the Arrow values as PostgreSQL stores them, no text to write and parse again (about
    # 40 % less CPU, client and server, than CSV: docs/benchmark.md, session 6).
    copy_staging = sql.SQL("COPY staging.{} ({}) FROM STDIN WITH (FORMAT binary)").format(
        staging, sql.SQL(", ").join(map(sql.Identifier, staged_cols)))

    for batch in extract.batches():
        n = batch.num_rows
        received += n
        rows = batch.column("_row").to_pylist()
        bad: dict[int, list] = {}
        arrays = {"file_id": pa.array([file_id] * n, pa.int64()), "row_number": batch.column("_row").cast(pa.int32()),
                  "as_of": pa.array([as_of] * n, pa.date32())}
        for c in contract.columns:
            raw = batch.column(c.name)
            values, errors = normalise_arrow(c, raw, ARROW_TYPES[c.type])
            if c.type == "enum" and errors:
                # A value outside the enum is not the normaliser's to reject: it is staged as text so the
                # GX suite's expect_column_values_to_be_in_set quarantines it (rule VALUE_SET) and counts it.
                patched = values.to_pylist()
                for index, _rule, _reason in errors:
                    patched[index] = normalise_text(raw[index].as_py())
                values, errors = pa.array(patched, ARROW_TYPES[c.type]), []
            if raw.null_count < n and _may_hold_nul(raw):
                # PostgreSQL text cannot hold NUL: COPY would fail and block the file (and the department)
                # every night. Such a value is a damaged export: quarantine the row (it is not copied).
                for index in pc.indices_nonzero(pc.fill_null(pc.match_substring(raw, "\x00"), False)).to_pylist():
                    errors.append((index, "VALUE", f"{c.header}：含有不可见的空字符（NUL），文件可能已损坏，请核对后重新导出"))
            for index, rule, reason in errors:
                bad.setdefault(index, []).append((c.name, rule, reason))
            arrays[c.name] = values
            if c.type in ("id_number", "name"):
                arrays[c.name + "_raw"] = raw
        table = pa.table([arrays[name] for name in staged_cols], schema=schema)
        if bad:
            # only the bad rows as Python dicts: a whole batch of 100,000 rows takes half a second
            raw_rows = dict(zip(bad, batch.take(pa.array(list(bad), pa.int64())).to_pylist(), strict=True))
            records = []
            for index, problems in bad.items():
                raw_row = {k: v for k, v in raw_rows[index].items() if k != "_row"}
                for column, rule, reason in problems:
                    records.append((file_id, rows[index], column, _no_nul(raw_row.get(column)), rule or "VALUE",
                                    reason, _no_nul(json.dumps(raw_row, ensure_ascii=False, default=str))))
            _quarantine(conn, records)
            keep = np.ones(n, dtype=bool)
            keep[list(bad)] = False
            table = table.filter(pa.array(keep))
            quarantined += len(bad)
        encoder = pgpq.ArrowToPostgresBinaryEncoder(schema)
        with conn.cursor().copy(copy_staging) as copy:
            copy.write(encoder.write_header())
            for part in table.to_batches():
                copy.write(encoder.write_batch(part))
            copy.write(encoder.finish())
    # Malformed lines (wrong number of fields, e.g. a truncated file) never reach a batch; the reader
    # collects them while batches are read, so they are counted after the last batch.
    invalid = list(extract.invalid_rows)
    _quarantine(conn, [(file_id, bad.row or 0, None, _no_nul(bad.raw), "ROW", bad.reason, None) for bad in invalid])
    # Statistics for GX's metric queries now and, as the table becomes a core partition, for the
    # night's plans (a sample, not a scan; loading deletes only the few quarantined rows).
    conn.execute(sql.SQL("ANALYZE staging.{}").format(staging))
    return received + len(invalid), quarantined + len(invalid)


def _may_hold_nul(strings: pa.Array) -> bool:
    """Whether the bytes behind a string array hold a NUL anywhere: a first look, ~40 times cheaper than
    searching every value (a slice's buffer may reach beyond it: then the search finds nothing)."""
    data = strings.buffers()[2]
    return data is not None and not np.frombuffer(data, dtype=np.uint8).all()


def _no_nul(value: str | None) -> str | None:
    """NUL shown as an escape: PostgreSQL text and jsonb cannot store it."""
    return value.replace("\x00", "\\x00").replace("\\u0000", "\\\\x00") if value else value


def _quarantine(conn, records) -> None:
    with conn.cursor().copy(
        "COPY ingest.quarantine (file_id, row_number, column_name, value_raw, rule, reason, row_raw) FROM STDIN"
    ) as copy:
        for record in records:
            copy.write_row(record)


def load_file(warehouse: Warehouse, file_id: int, release: bool = False) -> FileOutcome:
    """Make this file's staged rows the core snapshot of its extract and as-of date — atomically.

    The quarantined rows are deleted from the file's staging table, which then replaces the previous
    partition of that date in core.<extract>: no row is copied again. ``release``: a held file too
    (see release_file).
    """
    with warehouse.transaction() as conn:
        row = conn.execute(
            "SELECT department, file_name, extract, as_of, status, rows_received, rows_quarantined "
            "FROM ingest.files WHERE file_id = %s FOR UPDATE", (file_id,)).fetchone()
        department, name, extract_name, as_of, status, received, _ = row
        if status == "loaded":
            return _outcome(conn, file_id)
        if status not in ("staged", "validated") and not (release and status == "held"):
            raise RuntimeError(f"file {file_id} is {status}, cannot be loaded")
        if status == "held":
            conn.execute("UPDATE ingest.files SET released_at = now(), reason = %s WHERE file_id = %s",
                         (_released_reason(conn, file_id), file_id))
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"core:{extract_name}",))
        parent, table = sql.Identifier(extract_name), sql.Identifier(file_table(extract_name, file_id))
        conn.execute(sql.SQL("DELETE FROM staging.{} WHERE row_number IN "
                             "(SELECT row_number FROM ingest.quarantine WHERE file_id = %s)").format(table),
                     (file_id,))
        loaded = conn.execute(sql.SQL("SELECT count(*) FROM staging.{}").format(table)).fetchone()[0]
        quarantined = conn.execute(
            "SELECT count(DISTINCT row_number) FROM ingest.quarantine WHERE file_id = %s", (file_id,)).fetchone()[0]
        for (previous,) in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = %s::regclass AND pg_get_expr(c.relpartbound, c.oid) = %s",
                (f"core.{extract_name}", f"FOR VALUES IN ('{as_of.isoformat()}')")).fetchall():
            conn.execute(sql.SQL("ALTER TABLE core.{} DETACH PARTITION core.{}").format(
                parent, sql.Identifier(previous)))
            conn.execute(sql.SQL("DROP TABLE core.{}").format(sql.Identifier(previous)))
        # rows of that date written straight into core (the DEFAULT partition) are replaced as well
        conn.execute(sql.SQL("DELETE FROM core.{} WHERE as_of = %s").format(parent), (as_of,))
        conn.execute(sql.SQL("ALTER TABLE staging.{} SET SCHEMA core").format(table))
        # Index builds (sorted, in bulk) happen here, when the partition takes the parent's indexes.
        conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
        conn.execute(sql.SQL("ALTER TABLE core.{} ATTACH PARTITION core.{} FOR VALUES IN ({})").format(
            parent, table, sql.Literal(as_of)))
        conn.execute(
            "UPDATE ingest.files SET status = 'superseded' WHERE extract = %s AND as_of = %s "
            "AND status = 'loaded' AND file_id <> %s", (extract_name, as_of, file_id))
        # An earlier held file of that date can no longer be released (release_file refuses): it is superseded
        # too, and the staging table kept for its release goes (its rows stay in the archive and quarantine).
        for (held,) in conn.execute(
                "UPDATE ingest.files SET status = 'superseded' WHERE extract = %s AND as_of = %s AND status = 'held' "
                "AND file_id < %s RETURNING file_id", (extract_name, as_of, file_id)).fetchall():
            conn.execute(sql.SQL("DROP TABLE IF EXISTS staging.{}").format(
                sql.Identifier(file_table(extract_name, held))))
        if loaded + quarantined != received:
            raise RuntimeError(f"file {file_id} does not reconcile: received {received}, loaded {loaded}, "
                               f"quarantined {quarantined}")
        conn.execute("UPDATE ingest.files SET status = 'loaded', rows_loaded = %s, rows_quarantined = %s "
                     "WHERE file_id = %s", (loaded, quarantined, file_id))
        log.info("loaded %s/%s into core.%s as of %s: %d rows, %d quarantined",
                 department, name, extract_name, as_of, loaded, quarantined)
        return _outcome(conn, file_id)


def _staged_schema(contract: Contract) -> pa.Schema:
    """The Arrow types of a staging table's columns, exactly: binary COPY refuses an int8 for an integer."""
    fields = [("file_id", pa.int64()), ("row_number", pa.int32()), ("as_of", pa.date32())]
    for c in contract.columns:
        fields.append((c.name, ARROW_TYPES[c.type]))
        if c.type in ("id_number", "name"):
            fields.append((c.name + "_raw", pa.string()))
    return pa.schema(fields)


def _outcome(conn, file_id: int) -> FileOutcome:
    r = conn.execute(
        "SELECT department, file_name, status, extract, as_of, reason, coalesce(rows_received,0), "
        "coalesce(rows_loaded,0), coalesce(rows_quarantined,0), warnings FROM ingest.files WHERE file_id = %s",
        (file_id,)).fetchone()
    return FileOutcome(r[0], r[1], r[2], file_id, r[3], r[4], r[5], r[6], r[7], r[8], list(r[9] or []))


def file_outcome(warehouse: Warehouse, file_id: int) -> FileOutcome:
    with warehouse.connect() as conn:
        return _outcome(conn, file_id)


# ------------------------------------------------------------------------------------- held files


class ReleaseRefused(Exception):
    """``crosscheck release`` cannot release that file; the message is one line (Chinese / English)."""


def hold_decision(conn, file_id: int, settings: Settings) -> dict | None:
    """Why this staged (validated) file should be held, with the figures — or None to load it.

    The reference is the extract's last ``hold_history_files`` loaded files (superseded ones were
    loaded too; held ones never count, so a run of damaged files does not become the norm).
    """
    extract_name, received = conn.execute(
        "SELECT extract, rows_received FROM ingest.files WHERE file_id = %s", (file_id,)).fetchone()
    quarantined = conn.execute("SELECT count(DISTINCT row_number) FROM ingest.quarantine WHERE file_id = %s",
                               (file_id,)).fetchone()[0]
    loadable = received - quarantined
    share = quarantined / received if received else 0.0
    history = conn.execute(
        "SELECT file_id, as_of, rows_received, rows_loaded, rows_quarantined FROM ingest.files "
        "WHERE extract = %s AND status IN ('loaded', 'superseded') AND file_id <> %s AND rows_received > 0 "
        "ORDER BY as_of DESC, file_id DESC LIMIT %s",
        (extract_name, file_id, settings.hold_history_files)).fetchall()
    figures = {"rows_received": received, "rows_quarantined": quarantined, "rows_loadable": loadable,
               "quarantine_share": round(share, 4), "history_files": [h[0] for h in history],
               "history_as_of": [h[1].isoformat() for h in history]}
    reasons = []
    big_enough = received >= settings.hold_min_rows
    if loadable == 0:
        reasons.append(f"全部 {received} 行均无法使用（退回 {quarantined} 行），入库将清空该数据项")
    elif big_enough and share > settings.hold_quarantine_share_max:
        reasons.append(f"退回 {quarantined} 行，占 {share:.1%}，超过上限 {settings.hold_quarantine_share_max:.0%}")
    if history:
        median_share = statistics.median([h[4] / h[2] for h in history])
        median_rows = statistics.median([h[3] for h in history])
        figures.update(median_quarantine_share=round(median_share, 4), median_rows_loaded=median_rows)
        if big_enough and loadable and share > median_share + settings.hold_quarantine_share_margin:
            reasons.append(f"退回比例 {share:.1%}，明显高于近 {len(history)} 次入库的中位数 {median_share:.1%}")
        if median_rows >= settings.hold_min_rows and loadable < settings.hold_rows_min_fraction * median_rows:
            reasons.append(f"可入库 {loadable} 行，不足近 {len(history)} 次入库行数中位数 {median_rows:g} 行的 "
                           f"{settings.hold_rows_min_fraction:.0%}，文件可能被截断或导出不完整")
    if not reasons:
        return None
    figures["reasons"] = reasons
    return figures


def _held_reason(figures: dict, note: str | None) -> str:
    text = ("本文件暂未入库（暂扣）：" + "；".join(figures["reasons"])
            + "。系统继续使用该数据项此前的数据。请核对后重新导出报送；如确认本文件无误，请联系区数据管理员放行。")
    return text + (f"（另：{note}）" if note else "")


def _released_reason(conn, file_id: int) -> str:
    hold, = conn.execute("SELECT hold FROM ingest.files WHERE file_id = %s", (file_id,)).fetchone()
    moment = conn.execute("SELECT now()").fetchone()[0]
    why = "；".join((hold or {}).get("reasons", []))
    return f"本文件曾被暂扣（{why}），已于 {moment:%Y-%m-%d %H:%M} 由区数据管理员确认放行，按原样入库。"


def load_or_hold(warehouse: Warehouse, file_id: int, settings: Settings) -> FileOutcome:
    """Load a validated file — unless its quarantine share or row count departs grossly from the
    extract's recent history (hold_decision): then it is held. Its staging table and quarantine stay
    as they are (nothing lost; release_file loads exactly them); core keeps the previous snapshot."""
    with warehouse.transaction() as conn:
        status, reason = conn.execute("SELECT status, reason FROM ingest.files WHERE file_id = %s FOR UPDATE",
                                      (file_id,)).fetchone()
        if status in ("staged", "validated"):
            figures = hold_decision(conn, file_id, settings)
            if figures is not None:
                conn.execute("UPDATE ingest.files SET status = 'held', hold = %s, reason = %s, "
                             "rows_quarantined = %s WHERE file_id = %s",
                             (json.dumps(figures, ensure_ascii=False), _held_reason(figures, reason),
                              figures["rows_quarantined"], file_id))
                outcome = _outcome(conn, file_id)
                log.warning("HELD %s/%s (file %s): received %d, loadable %d, quarantined %d — %s",
                            outcome.department, outcome.file_name, file_id, figures["rows_received"],
                            figures["rows_loadable"], figures["rows_quarantined"], "; ".join(figures["reasons"]))
                return outcome
    return load_file(warehouse, file_id)


def release_file(warehouse: Warehouse, file_id: int) -> FileOutcome:
    """An operator's release of a held file: load it as it would have been loaded (its staging table,
    validated then), replacing the snapshot of its date. Refused when it is not held, or when a later
    file of the same extract and date has been loaded since (releasing would silently undo it)."""
    with warehouse.connect() as conn:
        row = conn.execute("SELECT status, extract, as_of FROM ingest.files WHERE file_id = %s",
                           (file_id,)).fetchone()
        if row is None:
            raise ReleaseRefused(f"没有编号为 {file_id} 的文件 / no file {file_id}")
        status, extract_name, as_of = row
        if status != "held":
            raise ReleaseRefused(f"文件 {file_id} 未被暂扣（状态 {status}），无需放行 / file {file_id} is not held "
                                 f"(status {status})")
        later = conn.execute("SELECT file_id FROM ingest.files WHERE extract = %s AND as_of = %s AND file_id > %s "
                             "AND status = 'loaded'", (extract_name, as_of, file_id)).fetchone()
        if later:
            raise ReleaseRefused(f"同一数据日期已有更新的文件 {later[0]} 入库，不能放行较早的文件 {file_id} / "
                                 f"a later file {later[0]} of that date is loaded; file {file_id} is not released")
    outcome = load_file(warehouse, file_id, release=True)
    log.warning("RELEASED %s/%s (file %s): loaded %d, quarantined %d", outcome.department, outcome.file_name,
                file_id, outcome.rows_loaded, outcome.rows_quarantined)
    return outcome
