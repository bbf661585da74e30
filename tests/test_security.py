"""Security rows of the fault matrix (docs/fault-matrix.md), against real PostgreSQL.

Hostile file names and hostile cell values go through pick-up, ingest, comparison and every output;
spreadsheet formulas are neutralised; SQL never interprets data; ID numbers stay masked in what is
distributed and out of the logs; the reporting role reads mart and nothing else; no secret is committed.
"""

from __future__ import annotations

import csv
import logging
import re
import subprocess
import uuid
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from helpers import csv_bytes, file_row, landing_path, make_settings, put, rows_of, unique_as_of
from openpyxl import load_workbook
from stdnum.cn import ric

from crosscheck import warehouse as wh
from crosscheck.normalise import check_char
from crosscheck.pipeline import compare_night, ingest_department, publish_night
from crosscheck.settings import ROOT

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
DROP = "'; DROP TABLE core.residents; --"


def _files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


def _is_full_id(text: str) -> bool:
    """An 18-character run with a right check character and a real birth date. The date matters: a work
    list's 64-hex seal can hold an 18-digit run, and one in eleven such runs has a right check character."""
    if not (len(text) == 18 and text[:17].isdigit() and check_char(text[:17]) == text[17].upper()):
        return False
    try:
        ric.get_birth_date(text)
    except ValueError:
        return False
    return True


# -------------------------------------------------------------------------------------- file names


def test_hostile_file_names_never_write_outside_the_folders(warehouse, tmp_path):
    """Names with ../ look-alikes, backslashes, control characters, markup and 250 bytes; a symlink to an
    absolute path; a department folder that is a symlink. Pick-up writes only into archive/ and outbox/,
    follows nothing, and every receipt's file name is safe for any file system."""
    settings = make_settings(tmp_path)
    d = f"{unique_as_of():%Y%m%d}"
    hrss = settings.landing_dir / "hrss"
    good = csv_bytes("enrollment", rows_of("enrollment", {}))
    names = [f"..\\..\\..\\enrollment_{d}.csv", f"enrollment_{d}.csv\n", f"\x1b[31menrollment_{d}.csv",
             f"C:\\Windows\\enrollment_{d}.csv", f"<img src=x onerror=alert(1)>_{d}.csv", "参" * 83 + ".csv",
             f"enrollment_{d}.csv:Zone.Identifier", f"{DROP}.csv", "..", "...csv"]
    for name in names:
        if name != "..":
            put(hrss / name, good)
    (hrss / f"training_{d}.csv").symlink_to("/etc/passwd")
    outside = tmp_path / "outside"
    put(outside / f"payments_{d}.csv", csv_bytes("payments", rows_of("payments", {})))
    settings.landing_dir.joinpath("finance").symlink_to(outside, target_is_directory=True)
    before = _files_under(tmp_path)

    outcomes = []
    for department in ("hrss", "finance"):
        outcomes += ingest_department(warehouse, department, settings.landing_dir, settings)

    assert {o.department for o in outcomes} == {"hrss"}  # the symlinked folder is never entered
    assert all(o.status == "rejected" for o in outcomes), [(o.file_name, o.status) for o in outcomes]
    assert len(outcomes) == len(names) - 3 + 1  # '..' is not a file, '...csv' is hidden; + the symlink
    new = _files_under(tmp_path) - before
    assert new and all(p.is_relative_to(settings.outbox_dir / "hrss") for p in new), sorted(map(str, new))
    assert _files_under(outside) == {outside / f"payments_{d}.csv"}
    for p in new:
        assert len(p.name.encode()) <= 255 and p.name.isprintable()
        assert not set(p.name) & set('/\\:*?"<>|'), p.name  # also safe on the bureau's Windows share
    for o in outcomes:
        stored = file_row(warehouse, o.file_id)["file_name"]
        assert stored.isprintable() and len(stored) <= 121
    assert DROP + ".csv" in {file_row(warehouse, o.file_id)["file_name"] for o in outcomes}  # stored verbatim
    with warehouse.connect() as conn:
        assert conn.execute("SELECT to_regclass('core.residents') IS NOT NULL").fetchone()[0]


# ------------------------------------------------------------------------- hostile values and outputs


def _tables(conn) -> list[tuple[str, str]]:
    """The warehouse's tables, without the partitions that loading adds (one per file)."""
    return conn.execute("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE c.relkind IN ('r', 'p') AND NOT (c.relispartition AND c.relname ~ '_f[0-9]+$') "
                        "AND n.nspname IN ('ingest', 'staging', 'core', 'mart') ORDER BY 1, 2").fetchall()


def _cells_of_outputs(out_dir: Path) -> list[tuple[str, str]]:
    """(file, cell text) of every CSV and every work list cell of a night's outputs."""
    cells = []
    for path in sorted(out_dir.glob("*.csv")):
        with open(path, encoding="utf-8-sig", newline="") as f:
            cells += [(path.name, v) for row in csv.reader(f) for v in row]
    for path in sorted((out_dir / "worklists").glob("*.xlsx")):
        book = load_workbook(path, read_only=True)
        cells += [(path.name, c) for sheet in book.worksheets for row in sheet.iter_rows(values_only=True)
                  for c in row if isinstance(c, str)]
        book.close()
    return cells


def test_hostile_headers_and_values_are_data_not_sql_nor_formulas(fresh_warehouse, tmp_path):
    """SQL-looking, quoting, backslash and formula-looking headers and values go through ingest, the
    comparison and every output: tables intact, values stored verbatim, every spreadsheet cell inert."""
    settings = make_settings(tmp_path)
    as_of = unique_as_of()
    hostile_town = "../../" + "镇" * 100  # becomes a work list's file name
    residents = rows_of("residents",
                        {"name": "张三", "village": DROP, "town": "=HYPERLINK(\"http://x\",\"y\")"},
                        {"name": "@SUM(A1:A9)", "village": "C:\\temp\\\\x\\' \"q\"", "town": hostile_town},
                        {"name": "<script>alert(1)</script>", "village": "+1-2", "town": "-cmd"})
    enrollment = rows_of("enrollment",
                         {"id_number": residents[0]["id_number"], "name": "=1+2"},
                         {"id_number": residents[1]["id_number"], "name": "O'Brien\\\";--"},
                         {"id_number": residents[2]["id_number"], "name": "-2+3"},
                         {"name": "Robert');DROPTABLEstudents;--", "village": DROP})
    extra = {'"; DROP TABLE core.residents; --': "x'); DELETE FROM ingest.files; --"}

    def with_extra_column(extract, rows):
        text = csv_bytes(extract, rows).decode().splitlines()
        header = ",".join([text[0], *('"' + h.replace('"', '""') + '"' for h in extra)])
        lines = [header] + [line + ',"' + next(iter(extra.values())).replace('"', '""') + '"' for line in text[1:]]
        return ("\r\n".join(lines) + "\r\n").encode()

    put(landing_path(settings, "civil", "residents", as_of), with_extra_column("residents", residents))
    put(landing_path(settings, "hrss", "enrollment", as_of), with_extra_column("enrollment", enrollment))
    with fresh_warehouse.connect() as conn:
        tables = _tables(conn)

    outcomes = {o.extract: o for d in ("civil", "hrss")
                for o in ingest_department(fresh_warehouse, d, settings.landing_dir, settings)}
    assert {e: o.status for e, o in outcomes.items()} == {"residents": "loaded", "enrollment": "loaded"}
    assert outcomes["residents"].rows_loaded == 3 and outcomes["enrollment"].rows_loaded == 4
    compare_night(fresh_warehouse, as_of, settings, gx=False)
    out = tmp_path / "out"
    publish_night(fresh_warehouse, as_of, out, settings)

    with fresh_warehouse.connect() as conn:
        assert _tables(conn) == tables
        stored = conn.execute("SELECT name, village, town FROM core.residents ORDER BY row_number").fetchall()
        assert stored == [(r["name"], r["village"], r["town"]) for r in residents]
        names = conn.execute("SELECT name_raw FROM core.enrollment ORDER BY row_number").fetchall()
        assert [n for (n,) in names] == [r["name"] for r in enrollment]
        warnings = conn.execute("SELECT warnings FROM ingest.files WHERE file_id = %s",
                                (outcomes["residents"].file_id,)).fetchone()[0]
        assert any(next(iter(extra)) in w for w in warnings)  # the hostile header, reported verbatim
        details = {r[0]: r[1] for r in conn.execute(
            "SELECT id_number, detail FROM mart.findings WHERE rule_code = 'ID03'")}
        assert "=1+2" in details[residents[0]["id_number"]] and "O'Brien\\\";--" in details[residents[1]["id_number"]]

    cells = _cells_of_outputs(out)
    assert {f for f, _ in cells} >= {"mismatches.csv", "kpis.csv"} and any(f.endswith(".xlsx") for f, _ in cells)
    bad = [c for c in cells if c[1].startswith(FORMULA_START)]
    assert bad == [], "\n".join(map(repr, bad))
    texts = {c for _, c in cells}
    assert {"'@SUM(A1:A9)", "'-cmd", "'=HYPERLINK(\"http://x\",\"y\")"} <= texts  # neutralised by a leading quote, otherwise verbatim
    books = list((out / "worklists").glob("*.xlsx"))
    assert books and all(b.parent == out / "worklists" for b in books)
    assert _files_under(tmp_path) <= _files_under(tmp_path / "landing") | _files_under(settings.archive_dir) \
        | _files_under(settings.outbox_dir) | _files_under(settings.reports_dir) \
        | {out} | _files_under(out.resolve()) \
        | {settings.var_dir / "feedback.key"}  # the work lists' key, created on first use (crosscheck.feedback)
    # (the out path is a link onto its publish set, crosscheck.publishing: every output lies in that set)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in page


# ------------------------------------------------------------------------------------ ID numbers


def test_full_ids_stay_out_of_logs_report_and_work_lists(fresh_warehouse, tmp_path, caplog):
    """A generated district's whole night (ingest, compare, publish) with every log record captured: no
    ID number of the district appears in any log message; report.html and the default work lists show
    masked IDs only (mismatches.csv, an internal file, keeps them full)."""
    from crosscheck.generate import generate
    from crosscheck.pipeline import run_night

    as_of = date(2026, 11, 28)
    generate(tmp_path / "district", 500, 7, as_of)
    settings = make_settings(tmp_path)
    caplog.set_level(logging.DEBUG)
    result = run_night(tmp_path / "district" / "landing", as_of, fresh_warehouse.url, tmp_path / "out", settings)
    assert result.files and all(f.status == "loaded" for f in result.files)

    with fresh_warehouse.connect() as conn:
        ids = {r[0] for r in conn.execute(
            "SELECT id_number FROM core.residents UNION SELECT id_number FROM core.registry "
            "UNION SELECT id_number FROM core.enrollment UNION SELECT id_number FROM core.payments "
            "UNION SELECT value_raw FROM ingest.quarantine WHERE column_name = 'id_number'") if r[0]}
    assert len(ids) > 500
    pattern = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])|(?<![0-9])[0-9]{15}(?![0-9])")
    records = [r.getMessage() for r in caplog.records]
    assert len(records) > 20
    leaks = [m for m in records for hit in pattern.findall(m) if hit in ids or _is_full_id(hit)]
    assert leaks == []

    def full_ids_in(text: str) -> list[str]:
        return [hit for hit in pattern.findall(text) if hit in ids or _is_full_id(hit)]

    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert full_ids_in(page) == []  # neither in the ID column nor quoted in a finding's detail
    assert re.search(r"500151\*{8}[0-9]{3}[0-9X]", page)
    books = list((tmp_path / "out" / "worklists").glob("*.xlsx"))
    assert books
    for book in books:
        wb = load_workbook(book, read_only=True)
        cells = [c for s in wb.worksheets for row in s.iter_rows(values_only=True) for c in row if isinstance(c, str)]
        wb.close()
        assert [c for c in cells if full_ids_in(c)] == [], book.name
    with open(tmp_path / "out" / "mismatches.csv", encoding="utf-8-sig") as f:
        assert {r["id_number"] for r in csv.DictReader(f)} & ids  # the internal CSV keeps full IDs (interface.md)


# ---------------------------------------------------------------------------------- warehouse roles


def test_reporting_role_reads_mart_only(warehouse):
    with warehouse.connect() as conn:
        roles = dict(conn.execute("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'crosscheck\\_%%' "
                                  "AND rolname IN ('crosscheck_loader', 'crosscheck_reporting')").fetchall())
    assert roles == {"crosscheck_loader": False, "crosscheck_reporting": False}

    with warehouse.reporting() as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "crosscheck_reporting"
        conn.execute("SELECT count(*) FROM mart.findings").fetchone()
        conn.execute("SELECT count(*) FROM mart.files_received").fetchone()
    for statement in ("SELECT * FROM core.residents LIMIT 1", "SELECT * FROM ingest.quarantine LIMIT 1",
                      "SELECT * FROM core.enrollment_default LIMIT 1", "SELECT * FROM ingest.files LIMIT 1",
                      "INSERT INTO mart.runs (as_of) VALUES ('2031-01-01')",
                      "UPDATE mart.findings SET name = 'x'", "DELETE FROM mart.feedback",
                      "CREATE TABLE mart.sneaky (x int)"):
        with warehouse.connect() as conn:  # the role itself, not only the read-only transaction
            conn.execute("SET ROLE crosscheck_reporting")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with warehouse.connect() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        with conn.transaction():
            conn.execute("SET LOCAL ROLE crosscheck_reporting")
            conn.execute("SELECT count(*) FROM core.enrollment")

    with warehouse.connect() as conn:  # the loader writes everywhere the pipeline writes
        conn.execute("SET ROLE crosscheck_loader")
        conn.execute("SELECT count(*) FROM core.residents")
        conn.execute("INSERT INTO mart.runs (as_of) VALUES ('2031-01-02')")
        conn.execute("INSERT INTO ingest.files (department, file_name, status) VALUES ('hrss', 'x', 'rejected')")
        conn.rollback()


def test_roles_migration_tolerates_existing_roles_and_a_non_superuser_owner(warehouse_server):
    """The roles already exist on this server (other databases created them): new databases migrate anyway,
    also when their owner is an ordinary login role the administrator has granted the two roles (the
    docker-compose set-up), and the reporting path works for that owner."""
    owner = f"crosscheck_test_owner_{uuid.uuid4().hex[:8]}"
    name = f"crosscheck_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(warehouse_server, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{owner}" LOGIN')
        admin.execute(f'GRANT crosscheck_loader, crosscheck_reporting TO "{owner}"')
        admin.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    try:
        parts = urlsplit(wh.with_database(warehouse_server, name))
        url = urlunsplit(parts._replace(netloc=f"{owner}@" + parts.netloc.rpartition("@")[2]))
        w = wh.open_warehouse(url)
        assert w.migrate() == []
        with w.connect() as conn:
            assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
            assert conn.execute("SELECT max(version) FROM meta.schema_migrations").fetchone()[0] >= 6
        with w.reporting() as conn:
            assert conn.execute("SELECT count(*) FROM mart.findings").fetchone() == (0,)
        with w.reporting() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM core.residents")
    finally:
        wh.drop_database(warehouse_server, name)
        with psycopg.connect(warehouse_server, autocommit=True) as admin:
            admin.execute(f'DROP ROLE IF EXISTS "{owner}"')


# --------------------------------------------------------------------------------------- secrets

SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret": re.compile(r"(?i)aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+=]{40}"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})"),
    "Slack token or webhook": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}|hooks\.slack\.com/services/T[A-Za-z0-9]+/"),
    "API key": re.compile(r"\b(?:sk-[A-Za-z0-9]{32,}|AIza[0-9A-Za-z_-]{35})\b"),
    "robot webhook key": re.compile(r"(?i)(?:webhook/send\?key=|access_token=)[0-9a-f-]{20,}"),
    "password in URL": re.compile(r"[a-z][a-z0-9+.-]*://[^\s/:@'\"]+:([^\s/@'\"]+)@"),
    # password = "…", PASSWORD: "…", "DB_PASSWORD": "…" (not psql's  PASSWORD :'variable')
    "password assignment": re.compile(
        r"(?i)(?:password|passwd|secret|token|api_key)['\"]?\s*(?:=|:(?=\s))\s*['\"]([^'\"\s]{6,})['\"]"),
}
# Placeholders a password in an example may be: ${VAR}, <...>, ***, or words saying so.
PLACEHOLDER = re.compile(r"^(?:\$\{?[A-Za-z_][A-Za-z0-9_:-]*\}?|<[^>]*>|\*+|%\(.*\)s|\{[a-z_]*\}|"
                         r"(?i:password|passwd|secret|pass|pw|changeme|change-me|example|xxx+|dummy|placeholder|"
                         r"airflow|crosscheck))$")


# The made-up credentials tests feed to a compose file or a URL parser, by file: reviewed, never used.
TEST_DUMMIES = {"tests/test_compose.py": {"pw-postgres", "pw-airflow", "pw-warehouse", "pw-admin",
                                         # secret files with characters a URL must escape, and their escapes
                                         "pw-air/flow@1", "pw-air%2Fflow%401", "pw-ware:house%", "pw-ware%3Ahouse%25"},
                "tests/test_dags.py": {"p"},
                "tests/test_pull.py": {"not-the-password", "refused-"},  # logins meant to be refused
                "tests/test_warehouse.py": {"p%40ss%3A%2Fw"}}  # a connection's password, escaped in its URL


def find_secrets(text: str, allowed: set[str] = frozenset()) -> list[tuple[str, str]]:
    found = []
    for kind, pattern in SECRET_PATTERNS.items():
        for m in pattern.finditer(text):
            value = m.group(1) if pattern.groups else m.group(0)
            if pattern.groups and (PLACEHOLDER.match(value) or value in allowed):
                continue
            found.append((kind, m.group(0)[:60]))
    return found


def test_the_secret_scanner_finds_planted_secrets():
    # Built at run time so that this file itself holds no secret.
    samples = ["-----BEGIN RSA " + "PRIVATE KEY-----", "AKIA" + "ABCDEFGHIJKLMNOP",
               "postgresql://crosscheck:" + "s3cr3tPa55" + "@db:5432/crosscheck", "gh" + "p_" + "a1B2" * 9,
               'password = "' + "hunter2hunter2" + '"', "xox" + "b-123456789012-abcdefghij"]
    assert [bool(find_secrets(s)) for s in samples] == [True] * len(samples)
    harmless = ["postgresql://postgres@127.0.0.1:5432/postgres", "postgresql://${WAREHOUSE_DB_USER}:"
                "${WAREHOUSE_DB_PASSWORD}@postgres/db", "https://user:***@host/", 'password: "${AIRFLOW_PASSWORD}"',
                "postgresql+psycopg2://airflow:airflow@localhost/airflow"]
    assert [find_secrets(s) for s in harmless] == [[]] * len(harmless)


def test_no_secrets_in_the_repository():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    hits = []
    for name in files.decode().split("\0"):
        path = ROOT / name
        if not name or not path.is_file() or path.stat().st_size > 5_000_000:
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        hits += [(name, kind, text) for kind, text in
                 find_secrets(data.decode("utf-8", "replace"), TEST_DUMMIES.get(name, set()))]
    assert hits == []
    assert ".env" not in files.decode().split("\0")  # the real secrets live there, never committed
