"""The masking policy end to end: a generated district with hostile ID spellings injected into a landing
file, the night run through ``crosscheck run`` in-process, and every finding's row checked in every
human-facing output — report.html, every work-list cell of every town, the Airflow plugin pages, the Data
Docs pages and the captured logs: no full ID of the district, and no birth date of an ID of the row
beside it (mismatches.csv, the analysts' file, keeps full IDs).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from openpyxl import load_workbook
from test_dags import (  # noqa: F401  (fixtures: a migrated Airflow home, its DagBag, the task environment)
    PLUGIN_CHECK,
    airflow_home,
    crosscheck_env,
    dagbag,
    night_date,
    run_dag,
    write_minimal_district,
)
from test_masking import FULL_WIDTH, _dates_in, _squeeze

from crosscheck.feedback import SEAL_SHEET
from crosscheck.outputs import WORKLIST_COLUMNS
from crosscheck.settings import ROOT, get_settings

AS_OF = date(2026, 11, 28)
pytestmark = pytest.mark.xdist_group("airflow")


def hostile_variants(valid: str) -> list[str]:
    """Spellings of a resident's ID a department might send (extracts.md) and malformed ones."""
    wrong = next(c for c in "0123456789X" if c != valid[17])
    return [valid[:17], valid + "7", "9" + valid + "12", valid[:17] + wrong, valid[:15] + "000",
            f"{valid[0]}.{valid[1:6]}E+17", " ".join([valid[:6], valid[6:14], valid[14:]]).translate(FULL_WIDTH),
            valid.lower(), f"{valid[:6]}-{valid[6:14]}-{valid[14:]}"]


def inject(landing: Path) -> list[str]:
    """Enrollment rows of residents under hostile spellings of their IDs (one resident with a name that
    carries another resident's ID); return the residents' IDs used."""
    residents = _read_csv(landing / "civil" / "residents_20261128.csv")[1]
    path = landing / "hrss" / "enrollment_20261128.csv"
    encoding, rows = _read_csv(path)
    header, template = rows[0], rows[1]
    col = {h: i for i, h in enumerate(header)}
    clean = [r for r in residents[1:] if len(r) > 8 and re.fullmatch(r"[0-9]{17}[0-9X]", r[0]) and r[7] and r[8]]
    chosen = [r for r in clean if r[0][17] != "X"][:6] + [r for r in clean if r[0][17] == "X"][:2]
    used = []
    for n, person in enumerate(chosen):
        used.append(person[0])
        for k, spelling in enumerate(hostile_variants(person[0])):
            row = list(template)
            row[col["个人社保编号"]] = f"H{n:03d}{k:03d}"
            row[col["身份证号"]] = spelling
            row[col["姓名"]] = person[1] if n else f"{person[1]}{' '.join(chosen[-1][0])}"
            row[col["镇街"]], row[col["村社区"]] = person[7], person[8]
            rows.append(row)
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    path.write_text(buffer.getvalue(), encoding=encoding)
    # a file whose name carries a resident's ID inside 19 digits and the birth date: rejected, and logged
    person = chosen[1]
    (landing / "hrss" / f"{person[1]}{person[0]}7 {person[0][6:14]}.csv").write_bytes(b"x")
    return used


def _read_csv(path: Path) -> tuple[str, list[list[str]]]:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return encoding, list(csv.reader(io.StringIO(raw.decode(encoding), newline="")))
        except UnicodeDecodeError:
            continue
    raise AssertionError(f"cannot read {path}")


def _ids_of(squeezed: str, prefixes: set[str]) -> set[str]:
    """The district's IDs whose first 17 digits stand in a (squeezed) text."""
    found = set()
    for run in re.findall(r"[0-9]{17,}", squeezed):
        found |= {run[i:i + 17] for i in range(len(run) - 16)} & prefixes
    return found


@pytest.fixture(scope="module")
def hostile_night(tmp_path_factory, warehouse_server):
    from helpers import throwaway_warehouse

    from crosscheck.cli import main
    from crosscheck.generate import generate

    tmp = tmp_path_factory.mktemp("hostile")
    generate(tmp / "district", 600, 23, AS_OF)
    used = inject(tmp / "district" / "landing")
    var = tmp / "var"
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    keep = Keep(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(keep)
    root.setLevel(logging.DEBUG)
    os.environ["CROSSCHECK_VAR"] = str(var)
    get_settings.cache_clear()
    try:
        with throwaway_warehouse(warehouse_server) as w:
            out = get_settings().reports_dir / AS_OF.isoformat()
            assert main(["run", "--landing", str(tmp / "district" / "landing"), "--date", AS_OF.isoformat(),
                         "--warehouse", w.url, "--out", str(out)]) == 0
            with w.connect() as conn:
                ids = {r[0] for r in conn.execute(
                    "SELECT id_number FROM core.residents UNION SELECT id_number FROM core.registry "
                    "UNION SELECT id_number FROM core.enrollment UNION SELECT id_number FROM core.payments")
                       if r[0] and len(r[0]) == 18}
                findings = {r[0]: r[1:] for r in conn.execute(
                    "SELECT finding_id, id_number, detail, name FROM mart.findings")}
            from crosscheck.report import gather

            gathered = gather(w, AS_OF)["findings"]
            yield {"out": out, "settings": get_settings(), "ids": ids, "used": used, "findings": findings,
                   "gathered": gathered, "records": records}
    finally:
        root.removeHandler(keep)
        root.setLevel(old_level)
        os.environ.pop("CROSSCHECK_VAR", None)
        get_settings.cache_clear()


def _births(raw_texts: list[str], prefixes: set[str], by_prefix: dict[str, str]) -> set[date]:
    """Birth dates of every district ID a finding's unmasked texts carry (ID column, detail, name)."""
    found = set()
    for prefix in _ids_of(_squeeze("\n".join(t for t in raw_texts if t)), prefixes):
        valid = by_prefix[prefix]
        found.add(date(int(valid[6:10]), int(valid[10:12]), int(valid[12:14])))
    return found


def _assert_row_clean(cells: list[str], raw_texts: list[str], night: dict, where: str) -> None:
    prefixes, by_prefix = night["prefixes"], night["by_prefix"]
    text = "\n".join(cells)
    squeezed = _squeeze(text)
    assert not _ids_of(squeezed, prefixes), (where, text)
    births = _births(raw_texts, prefixes, by_prefix)
    assert not births & _dates_in(text), (where, text)
    assert not [b for b in births if f"{b:%Y%m%d}" in squeezed], (where, text)


@pytest.fixture(scope="module")
def night(hostile_night):
    by_prefix = {i[:17]: i for i in hostile_night["ids"]}
    return {**hostile_night, "prefixes": set(by_prefix), "by_prefix": by_prefix}


def _assert_hostile_ids_became_findings(night):
    """The injected spellings are there to be masked: they made ID01/ID02 findings quoting them."""
    with open(night["out"] / "mismatches.csv", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    hostile = [r for r in rows if r["rule_code"] in ("ID01", "ID02") and r["id_number"][:6] in
               {u[:6] for u in night["used"]} and any(u[:15] in _squeeze(r["id_number"]) for u in night["used"])]
    assert len(hostile) >= 20
    assert {r["id_number"] for r in rows} & night["ids"]  # the analysts' file keeps full IDs


def test_report_rows_are_masked(night):
    _assert_hostile_ids_became_findings(night)
    page = (night["out"] / "report.html").read_text(encoding="utf-8")
    assert not _ids_of(_squeeze(page), night["prefixes"])
    table = json.loads(re.search(r'id="findings-data">(.*?)</script>', page, re.S).group(1).replace("<\\/", "</"))
    assert len(table) == len(night["gathered"]) > 50
    for shown, raw in zip(table, night["gathered"], strict=True):
        _assert_row_clean([str(v) for v in shown.values()], [raw["id_number"], raw["detail"], raw["name"]], night,
                          f"report {raw['rule_code']}")


def test_every_work_list_cell_is_masked(night):
    books = sorted((night["out"] / "worklists").glob("*.xlsx"))
    assert books
    keys = [k for k, _ in WORKLIST_COLUMNS]
    checked = 0
    for book in books:
        wb = load_workbook(book, read_only=True)
        for sheet in wb.worksheets:
            for row in sheet.iter_rows(values_only=True):
                cells = [str(c) for c in row if c is not None]
                # the very hidden seal sheet (feedback.SEAL_SHEET) lists finding ids too: checked, not a finding row
                is_table = sheet.title != SEAL_SHEET
                finding = night["findings"].get(row[0]) if is_table and isinstance(row[0], int) else None
                raw = list(finding) if finding else []
                _assert_row_clean(cells, raw, night, f"{book.name}/{sheet.title}")
                checked += finding is not None
                if finding:
                    assert len(row) >= len(keys)
        wb.close()
    assert checked > 50


def test_data_docs_and_logs_are_masked(night):
    docs = sorted((night["settings"].reports_dir / "data_docs").glob("*.html"))
    assert len(docs) > 5
    for page in docs:
        assert not _ids_of(_squeeze(page.read_text(encoding="utf-8")), night["prefixes"]), page.name
    messages = [r.getMessage() + (r.exc_text or "") for r in night["records"]]
    assert len(messages) > 20
    assert [m for m in messages if _ids_of(_squeeze(m), night["prefixes"])] == []
    person = night["used"][1]
    assert [m for m in messages if f"{person[:6]}*" in m]  # the hostile file name was logged, masked


def test_data_docs_never_show_sample_ids(warehouse, tmp_path):
    """GX can list unexpected values (partial_unexpected_list): a page of such a result shows them masked."""
    from helpers import id_number

    from crosscheck.validate import import_gx, run_suite, write_data_docs

    import_gx()
    import great_expectations as gx

    ids = [id_number() for _ in range(3)]
    table = f"mask_probe_{os.getpid()}"
    with warehouse.transaction() as conn:
        conn.execute(f"CREATE TABLE staging.{table} (row_number int, id_number text)")  # noqa: S608
        for n, value in enumerate([ids[0], ids[1] + "7", " ".join(ids[2])], start=1):
            conn.execute(f"INSERT INTO staging.{table} VALUES (%s, %s)", (n, value))  # noqa: S608
    probe = gx.ExpectationSuite(name="mask_probe", expectations=[
        gx.expectations.ExpectColumnValuesToMatchRegex(column="id_number", regex="^$")])
    result = run_suite(warehouse, probe, "staging", table, "probe", result_format={
        "result_format": "COMPLETE", "partial_unexpected_count": 20})
    assert result.results[0].result["partial_unexpected_list"]  # GX did list the values
    page = write_data_docs(result, tmp_path / "probe.html").read_text(encoding="utf-8")
    prefixes = {i[:17] for i in ids}
    assert not _ids_of(_squeeze(page), prefixes)
    assert ids[0][:6] + "********" in page


def test_plugin_pages_are_masked(night, airflow_home, tmp_path):  # noqa: F811
    """The Airflow UI plugin through Airflow's own app: tonight's report, and a page of an older night
    written before the policy (a full ID and its birth date in it) served masked."""
    reports = night["settings"].reports_dir
    valid = sorted(night["ids"])[0]
    older = reports / "2026-11-27"
    older.mkdir(exist_ok=True)
    (older / "report.html").write_text(f"<html>{valid} {valid[6:10]}-{valid[10:12]}-{valid[12:14]}</html>",
                                       encoding="utf-8")
    check = PLUGIN_CHECK.replace('"escape":', '"older": client.get("/crosscheck/nights/2026-11-27/report.html",'
                                              ' headers=auth).text, "escape":')
    env = {**os.environ, "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
           "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False", "CROSSCHECK_REPORTS": str(reports)}
    done = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert "findings-data" in out["report"]
    for page in (out["index"][1], out["report"], out["older"]):
        assert not _ids_of(_squeeze(page), night["prefixes"])
    assert f"{valid[6:10]}-{valid[10:12]}-{valid[12:14]}" not in out["older"]


def test_airflow_task_logs_are_masked(dagbag, crosscheck_env, airflow_home, caplog, capfd):  # noqa: F811
    """An ingest DAG run by Airflow (dag.test) on a drop whose file name carries an ID inside 19 digits and
    its birth date: the task log (records, what Airflow prints, its log files), the run's XComs and its map
    indexes (stored in Airflow's database, shown in its UI) show neither."""
    from stdnum.cn import ric

    first17 = "50022419750413128"
    valid = first17 + ric.calc_check_digit(first17)
    landing = Path(crosscheck_env.landing_dir)
    write_minimal_district(landing, night_date(), rows=5)
    (landing / "hrss" / f"张三{valid}7 {valid[6:14]}.csv").write_bytes(b"x")
    caplog.set_level(logging.DEBUG)
    run, _ = run_dag(dagbag, "crosscheck_ingest_hrss")
    assert str(run.state) == "success"
    printed = capfd.readouterr()
    texts = [r.getMessage() + (r.exc_text or "") for r in caplog.records] + [printed.out, printed.err]
    texts += [p.read_text(encoding="utf-8", errors="replace") for p in (airflow_home / "logs").rglob("*")
              if p.is_file()]
    # What Airflow stores and shows in its UI: every XCom of the run and every task's map index.
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        stored = [json.dumps(XComModel.deserialize_value(x), ensure_ascii=False) for x in session.scalars(
            XComModel.get_many(run_id=run.run_id, dag_ids="crosscheck_ingest_hrss"))]
        stored += [ti.rendered_map_index or "" for ti in run.get_task_instances(session=session)]
    assert any(f"张三{valid[:6]}*" in text for text in stored)  # the file did travel (as its masked name)
    texts += stored
    squeezed = _squeeze("\n".join(texts))
    assert first17 not in squeezed
    assert valid[6:14] not in squeezed and "1975-04-13" not in squeezed
    assert f"张三{valid[:6]}*" in "\n".join(texts)  # the rejected name was logged, masked
