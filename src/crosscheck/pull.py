"""Pull sources: fetch a department's extract from its database (``sql``) or its exchange server (``sftp``)
through Airflow Connections, and hand it over as a drop.

Which extract comes from where is the per-deployment file ``sources.yaml`` (setting ``sources_file``,
``CROSSCHECK_SOURCES``); an extract it does not list is a ``drop``. Credentials are only ever in the
Airflow connection (``AIRFLOW_CONN_<ID>`` in the environment works for Airflow and the CLI alike).

A pulled extract becomes ``landing/<dept>/<extract>_<YYYYMMDD>.<ext>`` plus its ``.done`` marker: written
beside it under a hidden name (pick-up skips hidden files) and renamed into place, so landing never holds
half a file. From there on it is a drop like any other (archive, validation, load, receipt). Every attempt
is recorded in ``ingest.pulls``: the receipt names the connection and remote path or query, and a source
with nothing for the date is recorded as ``empty`` rather than failing; a failed pull raises
``PullFailed`` so that Airflow retries the task.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path, PurePosixPath

import yaml

from crosscheck.contracts import contracts
from crosscheck.pickup import DONE_SUFFIX, FORMATS
from crosscheck.pipeline import RunFailed
from crosscheck.settings import Settings

log = logging.getLogger(__name__)

KINDS = ("drop", "sftp", "sql")
BATCH_ROWS = 50_000  # rows fetched and written per Parquet row group: bounds the memory of a pull
SETTLE_SECONDS = 10.0  # an SFTP file must keep its size and mtime this long before it is taken
# SQLAlchemy driver per Airflow conn_type (a connection extra ``sqlalchemy_scheme`` overrides it).
DRIVERS = {"mysql": "mysql+pymysql", "mariadb": "mysql+pymysql", "postgres": "postgresql+psycopg",
           "postgresql": "postgresql+psycopg", "sqlite": "sqlite"}


class PullFailed(RunFailed):
    """A pull that must be retried (server down, login refused, query error, file still growing).
    The message is one line and names no credentials."""


class SourceError(RunFailed):
    """sources.yaml does not say something usable."""


@dataclass(frozen=True)
class Source:
    extract: str
    department: str
    kind: str = "drop"
    conn_id: str | None = None
    path: str | None = None  # sftp: remote path with {as_of:…}
    view: str | None = None  # sql: a view or table …
    date_column: str | None = None  # … filtered on this column = the as-of date
    query: str | None = None  # sql: or a query with :as_of
    name: str | None = None  # how a query is named on receipts (default "query")
    order_by: tuple[str, ...] = ()
    settle_seconds: float = SETTLE_SECONDS
    batch_rows: int = BATCH_ROWS

    def remote(self, as_of: date) -> str:
        """Where the data comes from, as receipts and logs show it (never credentials, never a query's text)."""
        if self.kind == "sftp":
            return self.remote_path(as_of)
        return self.view or f"query {self.name or self.extract}"

    def remote_path(self, as_of: date) -> str:
        return self.path.format(as_of=as_of)

    def extension(self) -> str:
        if self.kind == "sql":
            return "parquet"
        ext = PurePosixPath(self.path).suffix.lstrip(".").lower()
        return FORMATS[ext]


def load_sources(settings: Settings) -> dict[str, Source]:
    """The configured sources by extract (only those listed; every other extract is a drop)."""
    from crosscheck.settings import INCLUDE_DIR

    path = settings.sources_file or INCLUDE_DIR / "sources.yaml"
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SourceError(f"cannot read the sources file {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise SourceError(f"{path}: expected a mapping extract -> source")
    known = contracts()
    sources = {}
    for extract, spec in raw.items():
        where = f"{Path(path).name}: {extract}"
        if extract not in known:
            raise SourceError(f"{where}: no such extract (known: {', '.join(known)})")
        if not isinstance(spec, dict):
            raise SourceError(f"{where}: expected a mapping with source, conn_id, …")
        unknown = set(spec) - {"source", "conn_id", "path", "view", "date_column", "query", "name", "order_by",
                               "settle_seconds", "batch_rows"}
        if unknown:
            raise SourceError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        kind = spec.get("source", "drop")
        if kind not in KINDS:
            raise SourceError(f"{where}: source must be one of {', '.join(KINDS)}, not {kind!r}")
        source = Source(
            extract=extract, department=known[extract].department, kind=kind, conn_id=spec.get("conn_id"),
            path=spec.get("path"), view=spec.get("view"), date_column=spec.get("date_column"),
            query=spec.get("query"), name=spec.get("name"), order_by=tuple(spec.get("order_by") or ()),
            settle_seconds=float(spec.get("settle_seconds", SETTLE_SECONDS)),
            batch_rows=int(spec.get("batch_rows", BATCH_ROWS)))
        if kind != "drop" and not source.conn_id:
            raise SourceError(f"{where}: conn_id (an Airflow connection id) is required for source {kind}")
        if kind == "sftp":
            if not source.path:
                raise SourceError(f"{where}: path (the remote file, with {{as_of:%Y%m%d}}) is required")
            if PurePosixPath(source.path).suffix.lstrip(".").lower() not in FORMATS:
                raise SourceError(f"{where}: the remote file must be .csv, .xlsx or .parquet")
        if kind == "sql" and bool(source.view) == bool(source.query):
            raise SourceError(f"{where}: give either view (with date_column) or query (with :as_of)")
        if kind == "sql" and source.view and not source.date_column:
            raise SourceError(f"{where}: date_column is required with view")
        sources[extract] = source
    return sources


def department_sources(department: str, settings: Settings) -> list[Source]:
    """The pulled (not dropped) extracts of a department."""
    return [s for s in load_sources(settings).values() if s.department == department and s.kind != "drop"]


@dataclass
class PullOutcome:
    extract: str
    department: str
    status: str  # pulled | empty | skipped
    remote: str
    file_name: str | None = None
    rows: int | None = None
    size: int | None = None
    sha256: str | None = None
    reason: str | None = None

    def summary(self) -> str:
        if self.status == "pulled":
            rows = f"{self.rows} rows, " if self.rows is not None else ""
            return f"{self.department}/{self.file_name}: pulled from {self.remote} ({rows}{self.size} bytes)"
        return f"{self.department}/{self.extract}: {self.status} — {self.reason or ''}"


def pull_department(department: str, as_of: date, settings: Settings, warehouse=None,
                    only_new: bool = False) -> list[PullOutcome]:
    """Pull every extract of the department whose source is sftp or sql. Each extract is tried even when
    another fails; then PullFailed is raised if any failed (Airflow retries the task). ``only_new``
    skips extracts already pulled for that date (the hourly DAG; the CLI pulls again)."""
    outcomes, failures = [], []
    for source in department_sources(department, settings):
        if only_new and warehouse is not None and _already_pulled(warehouse, source, as_of):
            outcomes.append(PullOutcome(source.extract, department, "skipped", source.remote(as_of),
                                        reason="already pulled for this date"))
            continue
        try:
            outcome = pull_extract(source, as_of, settings, warehouse)
        except PullFailed as exc:
            failures.append(str(exc))
            continue
        log.info("%s", outcome.summary())
        outcomes.append(outcome)
    if failures:
        raise PullFailed("; ".join(failures))
    return outcomes


def pull_extract(source: Source, as_of: date, settings: Settings, warehouse=None) -> PullOutcome:
    """Fetch one extract for one date into landing (see the module doc); record the attempt."""
    folder = settings.landing_dir / source.department
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{source.extract}_{as_of:%Y%m%d}.{source.extension()}"
    target = folder / name
    remote = source.remote(as_of)
    for stale in folder.glob(f".pull-{name}.*"):  # left by a pull that was killed half-way
        stale.unlink(missing_ok=True)
    part = folder / f".pull-{name}.{os.getpid()}"
    secret = None
    try:
        connection = _connection(source.conn_id)
        secret = connection.password
        if source.kind == "sql":
            rows = _pull_sql(source, connection, as_of, part)
        else:
            rows = _pull_sftp(source, as_of, part)
        if rows == 0 or not part.exists():
            part.unlink(missing_ok=True)
            what = "查询结果为空" if source.kind == "sql" else "远端没有该日期的文件"
            outcome = PullOutcome(source.extract, source.department, "empty", remote,
                                  reason=f"{what}（{source.conn_id}：{remote}），本日期尚无数据")
            _record(warehouse, source, as_of, remote, "empty", reason=outcome.reason)
            log.warning("%s", outcome.summary())
            return outcome
        sha = _sha256(part)
        size = part.stat().st_size
        os.replace(part, target)  # atomic: landing holds the whole file or none of it
        done = target.with_name(target.name + DONE_SUFFIX)
        done.touch()
    except Exception as exc:
        part.unlink(missing_ok=True)
        message = _one_line(exc, secret)
        _record(warehouse, source, as_of, remote, "failed", reason=message)
        raise PullFailed(f"pull of {source.department}/{source.extract} from {source.conn_id} ({remote}) "
                         f"failed / 拉取失败: {message}") from None
    outcome = PullOutcome(source.extract, source.department, "pulled", remote, name, rows if source.kind == "sql"
                          else None, size, sha)
    _record(warehouse, source, as_of, remote, "pulled", file_name=name, sha256=sha,
            rows_pulled=outcome.rows, size_bytes=size)
    return outcome


# --------------------------------------------------------------------------------------------
# Connections
# --------------------------------------------------------------------------------------------


def _connection(conn_id: str):
    """The Airflow connection (inside a task through the Task SDK; in the CLI from AIRFLOW_CONN_<ID>)."""
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id)


def sqlalchemy_url(connection):
    """A SQLAlchemy URL for an Airflow connection, built from its fields (the password never as text)."""
    from sqlalchemy import URL

    extra = connection.extra_dejson or {}
    driver = extra.get("sqlalchemy_scheme") or DRIVERS.get(connection.conn_type)
    if driver is None:
        raise SourceError(f"connection {connection.conn_id}: conn_type {connection.conn_type!r} is not a "
                          f"database crosscheck can pull from ({', '.join(DRIVERS)})")
    if driver.startswith("sqlite"):
        return URL.create(driver, database=connection.host or connection.schema)
    query = {}
    if driver.startswith("mysql"):
        # Chinese text (GBK/GB18030 tables too) arrives as Unicode: the server converts to the client's set.
        query["charset"] = extra.get("charset", "utf8mb4")
    return URL.create(driver, username=connection.login, password=connection.password or None,
                      host=connection.host, port=connection.port, database=connection.schema, query=query)


def _one_line(exc: BaseException, secret: str | None) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if secret:
        text = text.replace(secret, "***")
    return f"{type(exc).__name__}: {text}"[:300]


# --------------------------------------------------------------------------------------------
# Database pulls: streamed in batches into Parquet
# --------------------------------------------------------------------------------------------


def _statement(source: Source):
    from sqlalchemy import column, select, table, text

    if source.query:
        return text(source.query)
    schema, _, view = source.view.rpartition(".")
    relation = table(view, schema=schema or None)
    stmt = select(text("*")).select_from(relation).where(column(source.date_column) == text(":as_of"))
    if source.order_by:
        stmt = stmt.order_by(*[column(c) for c in source.order_by])
    return stmt


def _pull_sql(source: Source, connection, as_of: date, part: Path) -> int:
    """Stream the query's rows (server-side cursor) into a Parquet file, one row group per batch.

    Every value is written as text (dates ISO, amounts as the database prints them): the reader treats
    a drop's values as text anyway, and a fixed schema keeps the bytes the same on a rerun whatever the
    first batch holds. Column names equal to a contract's canonical name are written as its header."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    header_of = {c.name: c.header for c in contracts()[source.extract].columns}
    engine = create_engine(sqlalchemy_url(connection), poolclass=NullPool)
    rows = 0
    writer = None
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, max_row_buffer=source.batch_rows).execute(
                _statement(source), {"as_of": as_of})
            names = [header_of.get(k, k) for k in result.keys()]
            schema = pa.schema([(n, pa.string()) for n in names])
            for batch in result.partitions(source.batch_rows):
                columns = [_text_array(values) for values in zip(*batch, strict=True)]
                if writer is None:
                    # No creation time or host in the file: the same rows give the same bytes.
                    writer = pq.ParquetWriter(part, schema, compression="zstd")
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))
                rows += len(batch)
    finally:
        if writer is not None:
            writer.close()
        engine.dispose()
    return rows


def _text_array(values):
    """One column of a batch as Arrow text: typed in C where the values are of one type, else per value."""
    import pyarrow as pa

    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return array.cast(pa.string())
    if pa.types.is_null(array.type):
        return pa.nulls(len(values), pa.string())
    if pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type):
        return pa.array([None if v is None else bytes(v).decode("utf-8") for v in values], pa.string())
    return array.cast(pa.string())


# --------------------------------------------------------------------------------------------
# SFTP pulls: the bytes as received, once the remote file has stopped changing
# --------------------------------------------------------------------------------------------


def _pull_sftp(source: Source, as_of: date, part: Path) -> int | None:
    """Download the remote file into ``part``; None (no file written) when there is none for the date.

    The remote file's size and mtime must be the same before the wait, after it and after the transfer,
    and the bytes received must be its size: a file still being written is not taken."""
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    remote = source.remote_path(as_of)
    # One attempt per task try: Airflow's retries (with their backoff) are the retry policy.
    hook = SFTPHook(ssh_conn_id=source.conn_id, conn_retry_attempts=1)
    with hook.get_managed_conn() as sftp:
        try:
            first = sftp.stat(remote)
        except FileNotFoundError:
            return None
        time.sleep(source.settle_seconds)
        before = sftp.stat(remote)
        if (first.st_size, first.st_mtime) != (before.st_size, before.st_mtime):
            raise PullFailed(f"remote file {remote} is still being written (size {first.st_size} -> "
                             f"{before.st_size}) / 远端文件仍在写入")
        received = 0
        with sftp.open(remote, "rb") as src, open(part, "wb") as dst:
            src.prefetch(before.st_size)
            while chunk := src.read(1 << 20):
                dst.write(chunk)
                received += len(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        after = sftp.stat(remote)
        if received != before.st_size or (after.st_size, after.st_mtime) != (before.st_size, before.st_mtime):
            raise PullFailed(f"remote file {remote} changed during the transfer (size {before.st_size}, "
                             f"received {received}, now {after.st_size}) / 传输过程中远端文件发生变化")
    return received


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Bookkeeping
# --------------------------------------------------------------------------------------------


def _record(warehouse, source: Source, as_of: date, remote: str, status: str, **values) -> None:
    if warehouse is None:
        return
    row = {"department": source.department, "extract": source.extract, "as_of": as_of, "source": source.kind,
           "conn_id": source.conn_id, "remote": remote, "status": status, **values}
    from psycopg import sql

    with warehouse.transaction() as conn:
        conn.execute(sql.SQL("INSERT INTO ingest.pulls ({}) VALUES ({})").format(
            sql.SQL(", ").join(map(sql.Identifier, row)), sql.SQL(", ").join(sql.Placeholder() * len(row))),
            list(row.values()))


def _already_pulled(warehouse, source: Source, as_of: date) -> bool:
    with warehouse.connect() as conn:
        return conn.execute("SELECT 1 FROM ingest.pulls WHERE extract = %s AND as_of = %s AND status = 'pulled'",
                            (source.extract, as_of)).fetchone() is not None


def pulled_from(conn, department: str, file_name: str, sha256: str | None) -> dict | None:
    """Where a received file was pulled from (for its receipt), or None for a file the department dropped."""
    if not sha256:
        return None
    row = conn.execute(
        "SELECT source, conn_id, remote, pulled_at FROM ingest.pulls WHERE department = %s AND file_name = %s "
        "AND sha256 = %s AND status = 'pulled' ORDER BY pull_id DESC LIMIT 1",
        (department, file_name, sha256)).fetchone()
    if row is None:
        return None
    return {"source": row[0], "conn_id": row[1], "remote": row[2], "pulled_at": f"{row[3]:%Y-%m-%d %H:%M:%S}"}


# --------------------------------------------------------------------------------------------
# The demo: one department pulled from a database (crosscheck demo --pull)
# --------------------------------------------------------------------------------------------

DEMO_EXTRACT = "residents"
DEMO_CONN_ID = "demo_civil_db"


def prepare_demo_pull(demo_dir: Path, as_of: date, settings: Settings) -> tuple[Settings, str]:
    """Make civil's generated residents file the content of a department database and configure the
    extract as pulled from it: the machine's MariaDB (127.0.0.1:3306, root without password) when it
    answers, else a SQLite file under the demo folder. The file is moved out of landing (to
    ``demo_dir/source/``), so the night has residents only through the pull. Returns the settings with
    the demo's sources file and a line saying which database it is."""
    import dataclasses

    import pyarrow as pa
    from sqlalchemy import create_engine

    from crosscheck.read import open_extract

    contract = contracts()[DEMO_EXTRACT]
    generated = sorted((settings.landing_dir / contract.department).glob(f"{DEMO_EXTRACT}_{as_of:%Y%m%d}.*"))
    generated = [p for p in generated if not p.name.endswith(DONE_SUFFIX)]
    if not generated:
        raise SourceError(f"the demo has no {DEMO_EXTRACT} file for {as_of} to put into a database")
    source_dir = demo_dir / "source"
    source_dir.mkdir(parents=True, exist_ok=True)
    kept = source_dir / generated[0].name
    os.replace(generated[0], kept)
    generated[0].with_name(generated[0].name + DONE_SUFFIX).unlink(missing_ok=True)

    connection, where = _demo_database(demo_dir)
    os.environ[f"AIRFLOW_CONN_{DEMO_CONN_ID.upper()}"] = json.dumps(connection)  # this process only
    engine = create_engine(sqlalchemy_url(_connection(DEMO_CONN_ID)))
    extract = open_extract(kept, contract)
    rows = 0
    try:
        with engine.begin() as conn:
            first = True
            for batch in extract.batches(20_000):
                frame = pa.table({c.header: batch.column(c.name) for c in contract.columns}).to_pandas()
                frame.insert(0, "data_date", as_of)
                frame.to_sql("residents_export", conn, if_exists="replace" if first else "append", index=False)
                first, rows = False, rows + len(frame)
    finally:
        engine.dispose()
    sources_file = demo_dir / "sources.yaml"
    sources_file.write_text(yaml.safe_dump({DEMO_EXTRACT: {
        "source": "sql", "conn_id": DEMO_CONN_ID, "view": "residents_export", "date_column": "data_date",
        "order_by": [contract.column("id_number").header]}},
        allow_unicode=True), encoding="utf-8")
    return dataclasses.replace(settings, sources_file=sources_file), (
        f"{DEMO_EXTRACT} ({rows} rows of {kept.name}, {len(extract.invalid_rows)} malformed lines left out) "
        f"is pulled from {where} through the Airflow connection {DEMO_CONN_ID}")


def _demo_database(demo_dir: Path) -> tuple[dict, str]:
    import pymysql

    try:
        admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=2,
                                autocommit=True)
    except pymysql.err.OperationalError:
        path = demo_dir / "civil_db.sqlite"
        path.unlink(missing_ok=True)
        return {"conn_type": "sqlite", "host": str(path)}, f"the SQLite file {path} (no MariaDB at 127.0.0.1:3306)"
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS crosscheck_demo")
        cur.execute("CREATE DATABASE crosscheck_demo CHARACTER SET utf8mb4")
    admin.close()
    return ({"conn_type": "mysql", "host": "127.0.0.1", "port": 3306, "login": "root", "schema": "crosscheck_demo"},
            "MariaDB at 127.0.0.1:3306, database crosscheck_demo")
