import os
import subprocess
import sys
import uuid

import pytest

from crosscheck import warehouse as wh


def test_migrations_create_the_schemas(warehouse):
    with warehouse.connect() as conn:
        schemas = {r[0] for r in conn.execute("SELECT schema_name FROM information_schema.schemata")}
        applied = [r[0] for r in conn.execute("SELECT name FROM meta.schema_migrations ORDER BY version")]
    assert {"meta", "ingest", "staging", "core", "mart"} <= schemas
    assert applied == [p.name for p in wh.migration_files()]


def test_migrate_is_idempotent(warehouse):
    with warehouse.connect() as conn:
        before = conn.execute("SELECT version, applied_at FROM meta.schema_migrations ORDER BY 1").fetchall()
    assert warehouse.migrate() == []
    assert warehouse.migrate() == []
    with warehouse.connect() as conn:
        after = conn.execute("SELECT version, applied_at FROM meta.schema_migrations ORDER BY 1").fetchall()
    assert before == after


def test_concurrent_migrations_apply_once(warehouse_server):
    """Two processes migrating a new database at once: each migration is applied exactly once."""
    name = f"crosscheck_test_{uuid.uuid4().hex[:10]}"
    url = wh.with_database(warehouse_server, name)
    wh.ensure_database(warehouse_server, name)
    code = "import sys; from crosscheck.warehouse import Warehouse; print(len(Warehouse(sys.argv[1]).migrate()))"
    try:
        procs = [subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, text=True) for _ in range(2)]
        counts = sorted(int(p.communicate(timeout=120)[0].strip()) for p in procs)
        assert counts == [0, len(wh.migration_files())]
    finally:
        wh.drop_database(warehouse_server, name)


def test_edited_migration_is_refused(fresh_warehouse):
    with fresh_warehouse.connect() as conn:
        conn.execute("UPDATE meta.schema_migrations SET sha256 = 'x' WHERE version = 1")
        conn.commit()
    with pytest.raises(RuntimeError, match="changed after it was applied"):
        fresh_warehouse.migrate()


def test_url_override_from_environment(monkeypatch, warehouse_server):
    """CROSSCHECK_WAREHOUSE_URL points the warehouse at that server instead of the embedded one."""
    from crosscheck import settings

    name = f"crosscheck_test_{uuid.uuid4().hex[:10]}"
    url = wh.with_database(warehouse_server, name)
    monkeypatch.setenv("CROSSCHECK_WAREHOUSE_URL", url.replace("postgresql://", "postgresql+psycopg://", 1))
    settings.get_settings.cache_clear()
    try:
        with pytest.raises(wh.WarehouseMissing):  # a URL's database is created only when asked for
            wh.open_warehouse()
        wh.ensure_database(warehouse_server, name)
        w = wh.open_warehouse()
        assert w.url == url
        with w.connect() as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == name
    finally:
        settings.get_settings.cache_clear()
        wh.drop_database(warehouse_server, name)


def test_embedded_server_starts_and_stops_in_its_own_folder(tmp_path):
    """A separate embedded server in a fresh folder: initdb, start, query, stop cleanly."""
    code = (
        "import sys; from pathlib import Path; import psycopg;"
        "from crosscheck import warehouse as wh;"
        "s = wh.embedded_server(Path(sys.argv[1]));"
        "print(psycopg.connect(s.get_uri('postgres')).execute('SELECT 1').fetchone()[0]);"
        "wh.stop_embedded_server()"
    )
    pgdata = tmp_path / "pgdata"
    out = subprocess.run([sys.executable, "-c", code, str(pgdata)], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("1")
    assert (pgdata / "PG_VERSION").exists()
    assert not (pgdata / "postmaster.pid").exists(), "server still running after the last user left"


def test_redact_hides_password():
    assert wh.redact("postgresql://u:secret@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert wh.redact("postgresql://u@h/d") == "postgresql://u@h/d"


def test_a_new_embedded_server_is_configured_once_while_processes_start_together(tmp_path):
    """Three processes start the embedded server of a new var/ at once: one creates and configures it
    (a restart for wal_level and shared_buffers), the others wait and join it; all three open the
    same migrated warehouse, and the server runs with EMBEDDED_SETTINGS."""
    code = ("from crosscheck import warehouse as wh\n"
            "w = wh.open_warehouse()\n"
            "with w.connect() as c:\n"
            "    print(','.join(c.execute('SELECT current_setting(%s)', (k,)).fetchone()[0]"
            " for k in wh.EMBEDDED_SETTINGS))\n")
    env = {**os.environ, "CROSSCHECK_VAR": str(tmp_path)}
    env.pop("CROSSCHECK_WAREHOUSE_URL", None)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outs]
    assert {out.strip() for out, _ in outs} == {",".join(wh.EMBEDDED_SETTINGS.values())}


def test_migration_0007_moves_each_snapshot_into_its_partition(warehouse_server, monkeypatch):
    """A warehouse of before 0007 (core tables holding every snapshot, the night's views selecting
    from them) is upgraded: each date becomes a partition named after its file, no row is lost or
    moved to another date, the night's views are dropped (the next comparison rebuilds them), and
    a new snapshot can be attached beside the migrated ones."""
    from datetime import date

    name = f"crosscheck_test_{uuid.uuid4().hex[:10]}"
    url = wh.with_database(warehouse_server, name)
    wh.ensure_database(warehouse_server, name)
    warehouse = wh.Warehouse(url)
    try:
        before_0007 = [p for p in wh.migration_files() if int(p.name[:4]) < 7]
        monkeypatch.setattr(wh, "migration_files", lambda: before_0007)
        warehouse.migrate()
        with warehouse.transaction() as conn:
            for file_id, as_of, ids in [(11, date(2026, 11, 27), ["a", "b"]), (12, date(2026, 11, 28), ["c"])]:
                for row, id_number in enumerate(ids, start=2):
                    conn.execute("INSERT INTO core.residents (as_of, file_id, row_number, id_number) "
                                 "VALUES (%s, %s, %s, %s)", (as_of, file_id, row, id_number))
            conn.execute("CREATE SCHEMA IF NOT EXISTS night")
            conn.execute("CREATE VIEW night.residents AS SELECT * FROM core.residents WHERE as_of = '2026-11-28'")
        monkeypatch.undo()
        assert warehouse.migrate()[0].startswith("0007_")
        with warehouse.connect() as conn:
            parts = conn.execute(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'core.residents'::regclass "
                "ORDER BY 1").fetchall()
            assert parts == [("residents_default", "DEFAULT"),
                             ("residents_f11", "FOR VALUES IN ('2026-11-27')"),
                             ("residents_f12", "FOR VALUES IN ('2026-11-28')")]
            rows = conn.execute("SELECT tableoid::regclass::text, as_of, id_number FROM core.residents "
                                "ORDER BY id_number").fetchall()
            assert rows == [("core.residents_f11", date(2026, 11, 27), "a"),
                            ("core.residents_f11", date(2026, 11, 27), "b"),
                            ("core.residents_f12", date(2026, 11, 28), "c")]
            assert conn.execute("SELECT to_regnamespace('night')").fetchone()[0] is None
            assert conn.execute("SELECT to_regclass('staging.residents')").fetchone()[0] is None
            # a new snapshot: created like a file's staging table, attached like a load
            conn.execute("CREATE TABLE staging.residents_f13 (LIKE core.residents INCLUDING DEFAULTS)")
            conn.execute("INSERT INTO staging.residents_f13 (as_of, file_id, row_number, id_number) "
                         "VALUES ('2026-11-29', 13, 2, 'd')")
            conn.execute("ALTER TABLE core.residents ATTACH PARTITION staging.residents_f13 "
                         "FOR VALUES IN ('2026-11-29')")
            assert conn.execute("SELECT count(*) FROM core.residents").fetchone()[0] == 4
    finally:
        warehouse.engine.dispose()
        wh.drop_database(warehouse_server, name)


def test_migration_0008_rekeys_unusable_ids_and_rehashes_verdicts(warehouse_server, monkeypatch):
    """A warehouse of before 0008: ID01/ID02 subjects '<extract>:<raw id>' become the raw ID (the oldest
    finding of a raw ID found in two extracts keeps the history, the other stays and resolves); a verdict
    given on a finding's current data gets the new hash (detail and amount), one on older data does not."""
    from datetime import date

    from crosscheck.findings import DATA_HASH

    name = f"crosscheck_test_{uuid.uuid4().hex[:10]}"
    wh.ensure_database(warehouse_server, name)
    warehouse = wh.Warehouse(wh.with_database(warehouse_server, name))
    try:
        before_0008 = [p for p in wh.migration_files() if int(p.name[:4]) < 8]
        monkeypatch.setattr(wh, "migration_files", lambda: before_0008)
        warehouse.migrate()
        with warehouse.transaction() as conn:
            ids = [conn.execute(
                "INSERT INTO mart.findings (rule_code, subject_key, period, severity, id_number, detail, amount, "
                "data_hash, status, first_seen, last_seen) VALUES (%s, %s, '', 'high', 'x', %s, NULL, %s, 'open', "
                "%s, %s) RETURNING finding_id", (rule, key, f"detail {key}", f"old-{key}", date(2026, 11, 27),
                                                  date(2026, 11, 27))).fetchone()[0]
                for rule, key in [("ID01", "enrollment:51022419"), ("ID01", "payments:51022419"),
                                  ("ID02", "payments:5.1E+17"), ("SS07", "500151199001011234")]]
            conn.execute("INSERT INTO mart.feedback (finding_id, verdict, data_hash, source_file) VALUES "
                         "(%s, '不属实', 'old-500151199001011234', 'a'), (%s, '不属实', 'older data', 'b')",
                         (ids[3], ids[2]))
        monkeypatch.undo()
        assert warehouse.migrate()[0].startswith("0008_")
        with warehouse.connect() as conn:
            keys = conn.execute("SELECT subject_key FROM mart.findings ORDER BY finding_id").fetchall()
            assert [k for (k,) in keys] == ["51022419", "payments:51022419", "5.1E+17", "500151199001011234"]
            new_hash = conn.execute(f"SELECT {DATA_HASH.format(t='m')} FROM mart.findings m "  # noqa: S608
                                    "WHERE finding_id = %s", (ids[3],)).fetchone()[0]
            hashes = dict(conn.execute("SELECT source_file, data_hash FROM mart.feedback").fetchall())
            assert hashes == {"a": new_hash, "b": "older data"}
            assert conn.execute("SELECT data_hash FROM mart.findings WHERE finding_id = %s",
                                (ids[3],)).fetchone()[0] == new_hash
    finally:
        warehouse.engine.dispose()
        wh.drop_database(warehouse_server, name)


def test_connection_json_round_trips_through_the_postgres_hook(monkeypatch):
    """The URL → AIRFLOW_CONN_CROSSCHECK_WAREHOUSE (what `crosscheck airflow` and compose define) → the
    postgres provider's hook → the same psycopg URL: a TCP server with a password of URL-special
    characters and sslmode, and the embedded server's socket directory."""
    for url in ("postgresql://crosscheck:p%40ss%3A%2Fw@db.example:5433/warehouse?sslmode=require",
                "postgresql://postgres@/crosscheck?host=%2Fsrv%2Fpgdata"):
        monkeypatch.setenv("AIRFLOW_CONN_CROSSCHECK_WAREHOUSE", wh.connection_json(url))
        assert wh.connection_url() == url
    monkeypatch.delenv("AIRFLOW_CONN_CROSSCHECK_WAREHOUSE")
    assert wh.connection_url() is None  # no connection: the tasks fall back to CROSSCHECK_WAREHOUSE_URL


def test_the_cli_uses_the_url_not_the_connection(monkeypatch, capsys, fresh_warehouse):
    """`crosscheck warehouse url` goes by CROSSCHECK_WAREHOUSE_URL even when an Airflow connection
    crosscheck_warehouse (here naming a database that does not exist) is defined."""
    from crosscheck import settings
    from crosscheck.cli import main

    monkeypatch.setenv("CROSSCHECK_WAREHOUSE_URL", fresh_warehouse.url)
    monkeypatch.setenv("AIRFLOW_CONN_CROSSCHECK_WAREHOUSE",
                       wh.connection_json(wh.with_database(fresh_warehouse.url, "no_such_database")))
    settings.get_settings.cache_clear()
    try:
        assert main(["warehouse", "url"]) == 0
    finally:
        settings.get_settings.cache_clear()
    assert capsys.readouterr().out.strip() == wh.redact(fresh_warehouse.url)
