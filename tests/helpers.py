"""Helpers for the ingest and pick-up tests: settings in tmp folders, synthetic drop files, look-ups.

Everything is synthetic: ID numbers are made up (valid check character, Tongliang region code) and
unique per process, so tests can share one warehouse database without their files looking alike.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import time
import uuid
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import yaml

from crosscheck import warehouse as wh
from crosscheck.contracts import contracts
from crosscheck.normalise import check_char
from crosscheck.settings import INCLUDE_DIR, Settings, tunables

OLD = 3600  # seconds: a file this old is past any quiet period used in the tests

_ids = itertools.count(1)
_days = itertools.count(0)


HOLD_HISTORY_FILES = yaml.safe_load((INCLUDE_DIR / "settings.yaml").read_text(encoding="utf-8"))["hold_history_files"]


def make_settings(tmp_path: Path, **overrides) -> Settings:
    values = dict(
        var_dir=tmp_path / "var", landing_dir=tmp_path / "landing", archive_dir=tmp_path / "archive",
        outbox_dir=tmp_path / "outbox", reports_dir=tmp_path / "reports", feedback_dir=tmp_path / "feedback",
        warehouse_url=None, sources_file=None, quiet_period_seconds=2,
        # drop dates are unique days from 2030 on (unique_as_of), ingested without a night: the plausible
        # date window reaches them; tests of the window (test_held.py) set it as deployed
        as_of_max_future_days=3 * 3650,
        # a session's warehouse is shared by many tests whose files differ wildly in size: compared with
        # each other, a 3-row test file looks truncated. Only the absolute hold rules by default; the
        # tests of held files (test_held.py) compare with history as deployed (HOLD_HISTORY_FILES).
        hold_history_files=0)
    values.update(overrides)
    return Settings(**{**tunables(environment=False), **values})


def id_number(region: str = "500151", birth: date | None = None, seq: int | None = None) -> str:
    """A valid 18-character ID (ISO 7064 MOD 11-2 check character), unique per call unless pinned."""
    k = next(_ids)
    birth = birth or date(1940, 1, 1) + timedelta(days=k % 25000)
    first17 = f"{region}{birth:%Y%m%d}{(seq if seq is not None else k % 1000):03d}"
    return first17 + check_char(first17)


def unique_as_of() -> date:
    """A drop date no other test of this process uses (drops of one extract and date replace each other)."""
    return date(2030, 1, 1) + timedelta(days=next(_days))


def defaults(extract: str) -> dict[str, str]:
    """A valid row of an extract (canonical column -> value as a sender writes it)."""
    n = next(_ids)
    ident = id_number()
    return {
        "enrollment": {
            "person_no": f"P{n:08d}", "id_number": ident, "name": "张三", "enrol_status": "正常参保",
            "enrol_date": "2020-01-02", "contribution_level": "200", "subsidy_category": "无",
            "subsidy_amount_year": "0", "benefit_status": "未领取", "benefit_start_month": "",
            "monthly_pension": "0", "town": "太平镇", "village": "坪漆村"},
        "training": {
            "id_number": ident, "name": "李四", "trade": "焊工", "institution": "铜梁区职业教育中心",
            "completion_date": "2026-05-01", "qualified": "是", "training_subsidy": "1200",
            "travel_subsidy": "100"},
        "payments": {
            "serial_no": f"S{n:010d}", "batch_no": "B202611", "id_number": ident, "name": "王五",
            "item": "低保金", "period": "202611", "amount": "500.00", "paid_date": "2026-11-05",
            "bank_account": "6217****1234", "town": "太平镇"},
        "residents": {
            "id_number": ident, "name": "赵六", "sex": "男" if int(ident[16]) % 2 else "女",
            "birth_date": f"{ident[6:10]}-{ident[10:12]}-{ident[12:14]}", "ethnicity": "汉族",
            "hukou_no": f"H{n:09d}", "relation": "户主", "town": "太平镇", "village": "坪漆村", "status": "正常"},
    }[extract]


def rows_of(extract: str, *changes: dict) -> list[dict[str, str]]:
    """One valid row per dict of changes (canonical column -> value)."""
    return [{**defaults(extract), **change} for change in changes]


def header_of(extract: str, renamed: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """[(canonical, header as written)] in contract order, with some headers renamed."""
    renamed = renamed or {}
    return [(c.name, renamed.get(c.name, c.header)) for c in contracts()[extract].columns]


def csv_bytes(extract: str, rows: list[dict], encoding: str = "utf-8", renamed: dict | None = None,
              leave_out: tuple[str, ...] = ()) -> bytes:
    cols = [(name, header) for name, header in header_of(extract, renamed) if name not in leave_out]
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([header for _, header in cols])
    for row in rows:
        w.writerow([row.get(name, "") for name, _ in cols])
    return buf.getvalue().encode(encoding)


def put(path: Path, data: bytes, age: float = OLD) -> Path:
    """Write a drop file whose modification time lies ``age`` seconds in the past."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    age_file(path, age)
    return path


def age_file(path: Path, age: float = OLD) -> None:
    t = time.time() - age
    os.utime(path, (t, t), follow_symlinks=False)


def landing_path(settings: Settings, department: str, extract: str, as_of: date, ext: str = "csv") -> Path:
    return settings.landing_dir / department / f"{extract}_{as_of:%Y%m%d}.{ext}"


def receipt(settings: Settings, department: str, file_id: int) -> tuple[dict, str]:
    """The JSON receipt (parsed) and the HTML receipt (text) of a file."""
    folder = settings.outbox_dir / department
    [js] = folder.glob(f"*.{file_id}.receipt.json")
    [html] = folder.glob(f"*.{file_id}.receipt.html")
    return json.loads(js.read_text(encoding="utf-8")), html.read_text(encoding="utf-8")


def file_row(warehouse, file_id: int) -> dict:
    with warehouse.connect() as conn:
        cur = conn.execute("SELECT * FROM ingest.files WHERE file_id = %s", (file_id,))
        names = [d.name for d in cur.description]
        return dict(zip(names, cur.fetchone(), strict=True))


def quarantined(warehouse, file_id: int) -> list[dict]:
    with warehouse.connect() as conn:
        cur = conn.execute("SELECT row_number, column_name, value_raw, rule, reason, row_raw FROM ingest.quarantine "
                           "WHERE file_id = %s ORDER BY row_number, rule", (file_id,))
        names = [d.name for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def core_rows(warehouse, extract: str, file_id: int) -> list[dict]:
    with warehouse.connect() as conn:
        # extract names come from the contracts in this repository
        cur = conn.execute(f"SELECT * FROM core.{extract} WHERE file_id = %s ORDER BY row_number",  # noqa: S608
                           (file_id,))
        names = [d.name for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def assert_reconciles(warehouse, file_id: int) -> dict:
    """rows_received = rows_loaded + rows_quarantined, and the counts match core and quarantine."""
    f = file_row(warehouse, file_id)
    assert f["status"] == "loaded", f
    assert f["rows_received"] == f["rows_loaded"] + f["rows_quarantined"], f
    assert len(core_rows(warehouse, f["extract"], file_id)) == f["rows_loaded"]
    assert len({q["row_number"] for q in quarantined(warehouse, file_id)}) == f["rows_quarantined"]
    return f


def ingest(warehouse, settings: Settings, department: str = "hrss"):
    """Run the department's ingest; every file loaded must reconcile (received = loaded + quarantined)."""
    from crosscheck.pipeline import ingest_department

    outcomes = ingest_department(warehouse, department, settings.landing_dir, settings)
    for o in outcomes:
        if o.status == "loaded":
            assert_reconciles(warehouse, o.file_id)
    return outcomes


def only(outcomes):
    assert len(outcomes) == 1, outcomes
    return outcomes[0]


@contextmanager
def throwaway_warehouse(server_url: str):
    """A migrated database of its own on the server, dropped afterwards."""
    name = f"crosscheck_test_{uuid.uuid4().hex[:10]}"
    # Asked for explicitly: a URL's database is never created by default.
    w = wh.open_warehouse(wh.with_database(server_url, name), create=True)
    try:
        yield w
    finally:
        w.engine.dispose()
        wh.drop_database(server_url, name)


def night_state(w, as_of: date) -> dict:
    """What a compared night leaves in the warehouse: tonight's findings, their statuses, the indicators."""
    with w.connect() as conn:
        return {
            "findings": conn.execute(
                "SELECT rule_code, subject_key, period, severity, id_number, name, town, village, departments, "
                "detail, amount, data_hash FROM night.findings ORDER BY 1, 2, 3").fetchall(),
            "statuses": conn.execute(
                "SELECT f.rule_code, f.subject_key, f.period, n.status FROM mart.finding_nights n "
                "JOIN mart.findings f USING (finding_id) WHERE n.as_of = %s ORDER BY 1, 2, 3", (as_of,)).fetchall(),
            "indicators": conn.execute(
                "SELECT indicator, scope, numerator, denominator, value FROM mart.indicators WHERE as_of = %s "
                "ORDER BY 1, 2", (as_of,)).fetchall(),
        }


def fill_worklist(path: Path, answers: dict, out: Path | None = None, note: str = "已核实") -> Path:
    """A work list as a case worker returns it: 核查结论 (and 备注) filled in on the rows whose 问题编号
    is a key of ``answers``; saved to ``out`` (default: over itself)."""
    from openpyxl import load_workbook

    from crosscheck.outputs import WORKLIST_COLUMNS

    headers = dict(WORKLIST_COLUMNS)
    book = load_workbook(path)
    for sheet in book.worksheets:
        rows = list(sheet.iter_rows())
        header = next((r for r in rows if [c.value for c in r][:1] == [headers["finding_id"]]), None)
        if header is None:
            continue
        labels = [c.value for c in header]
        for row in rows[header[0].row:]:
            finding_id = row[0].value
            if finding_id in answers:
                row[labels.index(headers["verdict"])].value = answers[finding_id]
                row[labels.index(headers["note"])].value = note
    out = out or path
    book.save(out)
    return out
