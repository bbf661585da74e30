"""Ingest end to end against real PostgreSQL: drop files -> archive -> staging -> GX -> core, receipts.

Each test drops synthetic files into a tmp landing folder and runs ``ingest_department`` (what the
night and the Airflow ingest DAG run), then checks core.*, ingest.files, ingest.quarantine and the
receipts. The session warehouse is shared: every test uses its own drop date and its own ID numbers.
"""

from __future__ import annotations

import json
import os
from datetime import date
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import (
    OLD,
    age_file,
    assert_reconciles,
    core_rows,
    csv_bytes,
    file_row,
    id_number,
    ingest,
    landing_path,
    make_settings,
    only,
    put,
    quarantined,
    receipt,
    rows_of,
    unique_as_of,
)

from crosscheck.contracts import contracts
from crosscheck.ingest import _staged_schema, stage_drop
from crosscheck.normalise import check_char
from crosscheck.pickup import scan
from crosscheck.validate import suite_path

REEXPORT = "请将该列设置为文本格式后重新导出"






def by_id(rows):
    return {r["id_number"]: r for r in rows}


# ------------------------------------------------------------------------------------------ formats


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_csv_encodings(warehouse, settings, as_of, encoding):
    rows = rows_of("enrollment", {"name": "欧阳修"}, {"name": "张三丰", "town": "旧县街道"})
    put(landing_path(settings, "hrss", "enrollment", as_of), csv_bytes("enrollment", rows, encoding))
    out = only(ingest(warehouse, settings))
    assert (out.status, out.rows_received, out.rows_loaded, out.rows_quarantined) == ("loaded", 2, 2, 0)
    assert_reconciles(warehouse, out.file_id)
    core = by_id(core_rows(warehouse, "enrollment", out.file_id))
    assert core[rows[0]["id_number"]]["name"] == "欧阳修"
    assert core[rows[1]["id_number"]]["town"] == "旧县街道"
    assert {r["as_of"] for r in core.values()} == {as_of}
    assert file_row(warehouse, out.file_id)["encoding"] == encoding
    js, html = receipt(settings, "hrss", out.file_id)
    assert js["encoding"] == encoding and js["status"] == "loaded"
    assert (js["rows_received"], js["rows_loaded"], js["rows_quarantined"]) == (2, 2, 0)
    assert "字符编码 " + js["encoding_zh"] in html and "已接收入库" in html


def test_xlsx_title_row_and_sheet_named_after_extract(warehouse, settings, as_of):
    from openpyxl import Workbook

    rows = rows_of("enrollment", {}, {"enrol_date": "x"}, {})
    wb = Workbook()
    wb.active.title = "说明"
    wb.active.append(["本表为城乡居民养老保险参保信息"])  # not the data: the sheet named after the extract is
    ws = wb.create_sheet("enrollment")
    ws.append(["铜梁区2026年11月参保信息"])
    headers = [c for c in csv_bytes("enrollment", []).decode().strip().split(",")]
    ws.append(headers)
    keys = list(rows[0])
    for r in rows:
        values = [r[k] or None for k in keys]
        ws.append(values)
    ws.cell(row=3, column=5).value = date(2019, 3, 4)  # a real Excel date cell
    ws.cell(row=4, column=5).value = 43528  # a date as a serial number (2019-03-04)
    ws.cell(row=5, column=6).value = 300  # a numeric amount cell
    path = landing_path(settings, "hrss", "enrollment", as_of, "xlsx")
    path.parent.mkdir(parents=True)
    wb.save(path)
    age_file(path)
    out = only(ingest(warehouse, settings))
    assert (out.status, out.rows_received, out.rows_loaded) == ("loaded", 3, 3), out
    assert_reconciles(warehouse, out.file_id)
    core = core_rows(warehouse, "enrollment", out.file_id)
    assert [r["row_number"] for r in core] == [3, 4, 5]  # Excel row numbers: title row 1, header row 2
    assert [r["enrol_date"] for r in core] == [date(2019, 3, 4), date(2019, 3, 4), date(2020, 1, 2)]
    assert core[2]["contribution_level"] == Decimal("300")
    assert file_row(warehouse, out.file_id)["format"] == "xlsx"
    js, _ = receipt(settings, "hrss", out.file_id)
    assert any("标题行" in w for w in js["warnings"])


def test_parquet(warehouse, settings, as_of):
    rows = rows_of("training", {"qualified": "合格"}, {"qualified": "不合格", "training_subsidy": "1,234.50"})
    table = pa.table({header: [r[name] or None for r in rows]
                      for name, header in [("id_number", "身份证号码"), ("name", "姓名"), ("trade", "培训项目"),
                                           ("completion_date", "结业日期"), ("qualified", "考核结果"),
                                           ("training_subsidy", "培训补贴（元）")]})
    path = landing_path(settings, "hrss", "training", as_of, "parquet")
    path.parent.mkdir(parents=True)
    pq.write_table(table, path)
    age_file(path)
    out = only(ingest(warehouse, settings))
    assert (out.status, out.rows_received, out.rows_loaded) == ("loaded", 2, 2), out
    assert_reconciles(warehouse, out.file_id)
    core = core_rows(warehouse, "training", out.file_id)
    assert [r["qualified"] for r in core] == [True, False]
    assert [r["training_subsidy"] for r in core] == [Decimal("1200"), Decimal("1234.50")]
    assert [r["travel_subsidy"] for r in core] == [None, None]  # optional column absent
    assert file_row(warehouse, out.file_id)["format"] == "parquet"


def test_header_aliases_and_bracket_styles(warehouse, settings, as_of):
    renamed = {"id_number": " 公民身份号码 ", "person_no": "个人社保编号", "town": "乡镇(街道)",
               "village": "村【社区】", "name": "姓　名", "benefit_status": "待遇状态"}
    rows = rows_of("enrollment", {})
    put(landing_path(settings, "hrss", "enrollment", as_of), csv_bytes("enrollment", rows, renamed=renamed))
    out = only(ingest(warehouse, settings))
    assert out.status == "loaded" and out.rows_loaded == 1, out
    [row] = core_rows(warehouse, "enrollment", out.file_id)
    assert (row["id_number"], row["town"], row["village"], row["name"]) == (
        rows[0]["id_number"], "太平镇", "坪漆村", "张三")
    js, html = receipt(settings, "hrss", out.file_id)
    assert ["乡镇(街道)", "镇街"] in js["header_mapping"] and ["村【社区】", "村社区"] in js["header_mapping"]
    assert "列名对照" in html


# -------------------------------------------------------------------------------------- ID numbers


def test_id_number_spellings_are_normalised(warehouse, settings, as_of):
    full_width = id_number()
    lower_x = next(i for i in iter(id_number, None) if i.endswith("X"))
    spaced = id_number()
    legacy15 = "500151" + "800101" + "237"  # two-digit year, no check character
    changes = [{"id_number": full_width.translate(str.maketrans("0123456789", "０１２３４５６７８９"))},
               {"id_number": lower_x.lower()},
               {"id_number": f"{spaced[:6]} {spaced[6:14]} {spaced[14:]}"},
               {"id_number": legacy15}]
    rows = rows_of("enrollment", *changes)
    put(landing_path(settings, "hrss", "enrollment", as_of), csv_bytes("enrollment", rows))
    out = only(ingest(warehouse, settings))
    assert (out.status, out.rows_loaded, out.rows_quarantined) == ("loaded", 4, 0), out
    core = core_rows(warehouse, "enrollment", out.file_id)
    upgraded = "500151" + "19800101" + "237"
    upgraded += check_char(upgraded)
    assert [r["id_number"] for r in core] == [full_width, lower_x, spaced, upgraded]
    assert [r["id_number_raw"] for r in core] == [c["id_number"] for c in changes]  # kept as received


def test_excel_damaged_ids_are_quarantined_with_re_export_reason(warehouse, settings, as_of):
    good = id_number()
    # what Excel makes of an 18-digit number: the last three digits 000, the check character failing
    trailing = next(i[:15] + "000" for i in iter(lambda: id_number(seq=100), None) if check_char(i[:15] + "00") != "0")
    rows = rows_of("enrollment", {"id_number": good}, {"id_number": "5.00151E+17"},
                   {"id_number": trailing}, {"id_number": "500151198001011000.0"})
    put(landing_path(settings, "hrss", "enrollment", as_of), csv_bytes("enrollment", rows))
    out = only(ingest(warehouse, settings))
    assert (out.rows_received, out.rows_loaded, out.rows_quarantined) == (4, 1, 3), out
    assert_reconciles(warehouse, out.file_id)
    q = quarantined(warehouse, out.file_id)
    assert [(r["row_number"], r["column_name"], r["rule"]) for r in q] == [
        (3, "id_number", "ID02"), (4, "id_number", "ID02"), (5, "id_number", "ID02")]
    assert [r["value_raw"] for r in q] == ["5.00151E+17", trailing, "500151198001011000.0"]
    assert all(REEXPORT in r["reason"] for r in q)
    assert q[0]["row_raw"]["person_no"] == rows[1]["person_no"]  # the whole row is kept
    js, html = receipt(settings, "hrss", out.file_id)
    assert [(r["row_number"], r["column"], r["rule"]) for r in js["rejected_rows"]] == [
        (3, "身份证号", "ID02"), (4, "身份证号", "ID02"), (5, "身份证号", "ID02")]
    assert REEXPORT in html and "5.00151E+17" in html


def test_numeric_id_cell_in_xlsx_is_excel_damage(warehouse, settings, as_of):
    from openpyxl import Workbook

    rows = rows_of("enrollment", {}, {})
    wb = Workbook()
    ws = wb.active
    ws.append(csv_bytes("enrollment", []).decode().strip().split(","))
    for r in rows:
        ws.append([r[k] or None for k in r])
    ws.cell(row=3, column=2).value = int(rows[1]["id_number"][:15] + "000")  # what Excel keeps of it
    path = landing_path(settings, "hrss", "enrollment", as_of, "xlsx")
    path.parent.mkdir(parents=True)
    wb.save(path)
    age_file(path)
    out = only(ingest(warehouse, settings))
    assert (out.rows_received, out.rows_loaded, out.rows_quarantined) == (2, 1, 1), out
    [q] = quarantined(warehouse, out.file_id)
    assert (q["row_number"], q["rule"]) == (3, "ID02") and REEXPORT in q["reason"]


def test_unusable_ids_are_id01(warehouse, settings, as_of):
    good = id_number()
    bad_check = good[:17] + ("1" if good[17] != "1" else "2")
    rows = rows_of("enrollment", {"id_number": good}, {"id_number": good[:16]}, {"id_number": bad_check},
                   {"id_number": "50015119801301123X"}, {"id_number": "身份证丢失"})
    put(landing_path(settings, "hrss", "enrollment", as_of), csv_bytes("enrollment", rows))
    out = only(ingest(warehouse, settings))
    assert (out.rows_received, out.rows_loaded, out.rows_quarantined) == (5, 1, 4), out
    assert_reconciles(warehouse, out.file_id)
    q = quarantined(warehouse, out.file_id)
    assert [(r["row_number"], r["rule"]) for r in q] == [(3, "ID01"), (4, "ID01"), (5, "ID01"), (6, "ID01")]
    assert "校验位" in q[1]["reason"] and "出生日期" in q[2]["reason"]
    assert [r["id_number"] for r in core_rows(warehouse, "enrollment", out.file_id)] == [good]


# ------------------------------------------------------------------------------------------ values


def test_dot_names_normalised_and_raw_kept(warehouse, settings, as_of):
    spellings = ["阿依·木沙", "阿依•木沙", "阿依・木沙", "阿依.木沙", "阿依．木沙", "阿依∙木沙", " 阿依 · 木沙 "]
    rows = rows_of("enrollment", *({"name": s} for s in spellings))
    put(landing_path(settings, "hrss", "enrollment", as_of), csv_bytes("enrollment", rows))
    out = only(ingest(warehouse, settings))
    assert out.rows_loaded == len(spellings), out
    core = core_rows(warehouse, "enrollment", out.file_id)
    assert {r["name"] for r in core} == {"阿依\u00b7木沙"}
    assert [r["name_raw"] for r in core] == spellings


def test_date_and_month_spellings_and_amounts(warehouse, settings, as_of):
    dates = ["2026-11-28", "2026/11/28", "20261128", "2026年11月28日", "46354"]
    months = ["202611", "2026-11", "2026年11月", "2026/11", "202611"]
    amounts = ["1,234.50", "1234.5", "¥1,234.50", "1,234.50元", "１２３４.５"]
    rows = rows_of("payments", *({"paid_date": d, "period": m, "amount": a}
                                 for d, m, a in zip(dates, months, amounts, strict=True)))
    put(landing_path(settings, "finance", "payments", as_of), csv_bytes("payments", rows))
    out = only(ingest(warehouse, settings, "finance"))
    assert (out.rows_received, out.rows_loaded, out.rows_quarantined) == (5, 5, 0), (out, quarantined(
        warehouse, out.file_id))
    core = core_rows(warehouse, "payments", out.file_id)
    assert {r["paid_date"] for r in core} == {date(2026, 11, 28)}
    assert {r["period"] for r in core} == {date(2026, 11, 1)}
    assert {r["amount"] for r in core} == {Decimal("1234.50")}


def test_yes_no_variants(warehouse, settings, as_of):
    answers = {"是": True, "否": False, "Y": True, "N": False, "y": True, "1": True, "0": False,
               "合格": True, "不合格": False, "": None}
    rows = rows_of("training", *({"qualified": a} for a in answers))
    put(landing_path(settings, "hrss", "training", as_of), csv_bytes("training", rows, renamed={
        "qualified": "考核结果"}))
    out = only(ingest(warehouse, settings))
    assert out.rows_loaded == len(answers), out
    assert [r["qualified"] for r in core_rows(warehouse, "training", out.file_id)] == list(answers.values())


def test_bad_values_are_quarantined_with_reason(warehouse, settings, as_of):
    rows = rows_of("payments", {}, {"paid_date": "2026-02-30"}, {"period": "2026年13月"}, {"amount": "一百元"})
    put(landing_path(settings, "finance", "payments", as_of), csv_bytes("payments", rows))
    out = only(ingest(warehouse, settings, "finance"))
    assert (out.rows_received, out.rows_loaded, out.rows_quarantined) == (4, 1, 3), out
    assert_reconciles(warehouse, out.file_id)
    q = quarantined(warehouse, out.file_id)
    assert [(r["row_number"], r["column_name"], r["rule"]) for r in q] == [
        (3, "paid_date", "VALUE"), (4, "period", "VALUE"), (5, "amount", "VALUE")]
    assert q[0]["reason"].startswith("发放日期：") and q[2]["value_raw"] == "一百元"


def test_enum_value_outside_the_set_is_quarantined_by_gx(warehouse, settings, as_of):
    rows = rows_of("enrollment", {}, {"enrol_status": "暂停"}, {"benefit_status": "正常 领取"},
                   {"subsidy_category": "五保"})
    put(landing_path(settings, "hrss", "enrollment", as_of), csv_bytes("enrollment", rows))
    out = only(ingest(warehouse, settings))
    assert (out.rows_received, out.rows_loaded, out.rows_quarantined) == (4, 2, 2), out  # inner space forgiven
    assert_reconciles(warehouse, out.file_id)
    q = quarantined(warehouse, out.file_id)
    assert [(r["row_number"], r["column_name"], r["value_raw"], r["rule"]) for r in q] == [
        (3, "enrol_status", "暂停", "VALUE_SET"), (5, "subsidy_category", "五保", "VALUE_SET")]
    assert "正常参保、暂停缴费、终止参保" in q[0]["reason"]
    with warehouse.connect() as conn:
        failed = conn.execute(
            "SELECT column_name, unexpected_count FROM ingest.validation_results WHERE file_id = %s "
            "AND expectation = 'expect_column_values_to_be_in_set' AND NOT success ORDER BY 1",
            (out.file_id,)).fetchall()
    assert failed == [("enrol_status", 1), ("subsidy_category", 1)]
    js, html = receipt(settings, "hrss", out.file_id)
    assert {r["rule"] for r in js["rejected_rows"]} == {"VALUE_SET"} and "参保状态" in html


def test_required_value_empty_is_quarantined(warehouse, settings, as_of):
    rows = rows_of("enrollment", {}, {"person_no": ""}, {"id_number": "  "}, {"name": ""})
    put(landing_path(settings, "hrss", "enrollment", as_of), csv_bytes("enrollment", rows))
    out = only(ingest(warehouse, settings))
    assert (out.rows_received, out.rows_loaded, out.rows_quarantined) == (4, 1, 3), out
    assert_reconciles(warehouse, out.file_id)
    q = quarantined(warehouse, out.file_id)
    assert [(r["row_number"], r["column_name"], r["rule"]) for r in q] == [
        (3, "person_no", "REQUIRED"), (4, "id_number", "REQUIRED"), (5, "name", "REQUIRED")]
    assert "必填项“姓名”为空" in q[2]["reason"]


def test_nul_character_quarantines_the_row_not_the_department(warehouse, settings, as_of):
    rows = rows_of("enrollment", {}, {"name": "张\x00三"})
    put(landing_path(settings, "hrss", "enrollment", as_of), csv_bytes("enrollment", rows))
    out = only(ingest(warehouse, settings))
    assert (out.status, out.rows_loaded, out.rows_quarantined) == ("loaded", 1, 1), out
    [q] = quarantined(warehouse, out.file_id)
    assert (q["row_number"], q["column_name"], q["value_raw"]) == (3, "name", "张\\x00三")


def test_binary_copy_sends_every_staged_column_in_its_table_type(warehouse):
    """COPY BINARY takes no conversion: an int8 sent for an integer column, or a column out of place,
    fails the file. What _copy_to_staging sends is the core table's columns (staging tables are LIKE
    them), for every extract."""
    pg_types = {pa.string(): "text", pa.date32(): "date", pa.decimal128(14, 2): "numeric(14,2)",
                pa.int32(): "integer", pa.int64(): "bigint", pa.bool_(): "boolean"}
    with warehouse.connect() as conn:
        for extract, contract in contracts().items():
            schema = _staged_schema(contract)
            table = dict(conn.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
                (f"core.{extract}",)).fetchall())
            assert {f.name: pg_types[f.type] for f in schema} == table, extract


# ------------------------------------------------------------------------------- drops over time


def test_duplicate_drop_is_reported_not_loaded_twice(warehouse, settings, as_of):
    data = csv_bytes("enrollment", rows_of("enrollment", {}, {}))
    path = put(landing_path(settings, "hrss", "enrollment", as_of), data)
    first = only(ingest(warehouse, settings))
    assert first.status == "loaded"
    put(path, data, age=OLD / 2)  # the same bytes copied again: a new modification time
    second = only(ingest(warehouse, settings))
    assert second.status == "duplicate" and second.file_id != first.file_id
    assert file_row(warehouse, first.file_id)["status"] == "loaded"
    with warehouse.connect() as conn:
        n = conn.execute("SELECT count(*) FROM core.enrollment WHERE as_of = %s", (as_of,)).fetchone()[0]
    assert n == 2
    js, html = receipt(settings, "hrss", second.file_id)
    assert js["status"] == "duplicate" and "重复报送" in js["reason"] and first.file_name in js["reason"]
    assert "重复报送（未重复入库）" in html
    # and the archive holds the bytes once
    assert len(list((settings.archive_dir / "hrss").rglob("*.csv"))) == 1


def test_same_bytes_under_a_new_date_is_that_dates_snapshot(warehouse, settings, as_of):
    """A registry that did not change overnight arrives with the same bytes under the next date."""
    data = csv_bytes("enrollment", rows_of("enrollment", {}, {}))
    next_night = unique_as_of()  # a date no other test of this session uses
    put(landing_path(settings, "hrss", "enrollment", as_of), data)
    put(landing_path(settings, "hrss", "enrollment", next_night), data)
    outcomes = ingest(warehouse, settings)
    assert [o.status for o in outcomes] == ["loaded", "loaded"]
    with warehouse.connect() as conn:
        dates = conn.execute("SELECT DISTINCT as_of FROM core.enrollment WHERE as_of IN (%s, %s) ORDER BY 1",
                             (as_of, next_night)).fetchall()
    assert [d[0] for d in dates] == sorted([as_of, next_night])


def test_upper_case_extension_is_accepted(warehouse, settings, as_of):
    path = landing_path(settings, "hrss", "enrollment", as_of)
    put(path.with_name(path.name.replace(".csv", ".CSV")), csv_bytes("enrollment", rows_of("enrollment", {})))
    assert only(ingest(warehouse, settings)).status == "loaded"


def test_rerun_over_untouched_files_does_nothing(warehouse, settings, as_of):
    put(landing_path(settings, "hrss", "enrollment", as_of), csv_bytes("enrollment", rows_of("enrollment", {})))
    put(landing_path(settings, "hrss", "training", as_of), b"not,a,contract\r\n1,2,3\r\n")
    put(settings.landing_dir / "hrss" / "readme.txt", b"hello")
    first = ingest(warehouse, settings)
    assert sorted(o.status for o in first) == ["loaded", "rejected", "rejected"]
    with warehouse.connect() as conn:
        before = conn.execute("SELECT count(*), max(file_id) FROM ingest.files").fetchone()
    receipts = sorted(p.name for p in (settings.outbox_dir / "hrss").iterdir())
    assert ingest(warehouse, settings) == []
    ready = [d for d in scan(settings.landing_dir, settings, ["hrss"]) if d.state == "ready"]
    assert {stage_drop(warehouse, d, settings).status for d in ready} == {"skipped"}
    with warehouse.connect() as conn:
        assert conn.execute("SELECT count(*), max(file_id) FROM ingest.files").fetchone() == before
        assert conn.execute("SELECT count(*) FROM core.enrollment WHERE as_of = %s", (as_of,)).fetchone()[0] == 1
    assert sorted(p.name for p in (settings.outbox_dir / "hrss").iterdir()) == receipts


def test_superseding_drop_replaces_the_rows_of_that_date(warehouse, settings, as_of):
    old_rows = rows_of("enrollment", {}, {}, {})
    path = put(landing_path(settings, "hrss", "enrollment", as_of), csv_bytes("enrollment", old_rows))
    first = only(ingest(warehouse, settings))
    new_rows = rows_of("enrollment", {}, {"enrol_status": "终止参保"})
    put(path, csv_bytes("enrollment", new_rows), age=OLD / 2)
    second = only(ingest(warehouse, settings))
    assert second.status == "loaded" and second.rows_loaded == 2
    assert file_row(warehouse, first.file_id)["status"] == "superseded"
    old_js, old_html = receipt(settings, "hrss", first.file_id)  # rewritten: it no longer counts
    assert old_js["status"] == "superseded" and old_js["superseded_by"]["file_id"] == second.file_id
    assert "已入库，后被同日期的更正文件替代" in old_html
    new_js, new_html = receipt(settings, "hrss", second.file_id)
    assert [e["file_id"] for e in new_js["supersedes"]] == [first.file_id] and "本文件替代了" in new_html
    with warehouse.connect() as conn:
        ids = {r[0] for r in conn.execute("SELECT id_number FROM core.enrollment WHERE as_of = %s", (as_of,))}
    assert ids == {r["id_number"] for r in new_rows}
    # a corrected file in another format for the same date replaces it too
    xlsx_rows = rows_of("enrollment", {})
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.append(csv_bytes("enrollment", []).decode().strip().split(","))
    wb.active.append([v or None for v in xlsx_rows[0].values()])
    xlsx = landing_path(settings, "hrss", "enrollment", as_of, "xlsx")
    wb.save(xlsx)
    age_file(xlsx, OLD / 4)  # newer than the CSV: of two files of one date, the newest counts (test_held.py)
    third = only(ingest(warehouse, settings))
    assert third.status == "loaded" and file_row(warehouse, second.file_id)["status"] == "superseded"
    with warehouse.connect() as conn:
        ids = {r[0] for r in conn.execute("SELECT id_number FROM core.enrollment WHERE as_of = %s", (as_of,))}
    assert ids == {xlsx_rows[0]["id_number"]}


def test_incomplete_file_waits_and_done_marker_makes_it_ready(warehouse, settings, as_of, tmp_path):
    slow = make_settings(tmp_path, quiet_period_seconds=600)
    path = put(landing_path(slow, "hrss", "enrollment", as_of), csv_bytes("enrollment", rows_of("enrollment", {})),
               age=0)
    assert ingest(warehouse, slow) == []
    with warehouse.connect() as conn:
        assert conn.execute("SELECT count(*) FROM ingest.files WHERE as_of = %s", (as_of,)).fetchone()[0] == 0
    assert not slow.archive_dir.exists() or not any(slow.archive_dir.rglob("*.csv"))
    path.with_name(path.name + ".done").write_bytes(b"")
    out = only(ingest(warehouse, slow))
    assert out.status == "loaded" and out.rows_loaded == 1
    # the marker is read with its file, never reported on its own
    assert not list((slow.outbox_dir / "hrss").glob("*.done.*"))


def test_missing_required_column_rejects_the_file(warehouse, settings, as_of):
    renamed = {"id_number": "身份证", "name": "姓名称"}
    data = csv_bytes("enrollment", rows_of("enrollment", {}), renamed=renamed, leave_out=("benefit_status",))
    path = put(landing_path(settings, "hrss", "enrollment", as_of), data)
    out = only(ingest(warehouse, settings))
    assert out.status == "rejected"
    f = file_row(warehouse, out.file_id)
    assert (f["status"], f["rows_loaded"]) == ("rejected", None)
    with warehouse.connect() as conn:
        assert conn.execute("SELECT count(*) FROM core.enrollment WHERE as_of = %s", (as_of,)).fetchone()[0] == 0
    js, html = receipt(settings, "hrss", out.file_id)
    assert js["missing_columns"] == ["身份证号", "姓名", "待遇状态"]
    assert js["closest_headers"]["身份证号"][0] == "身份证" and "姓名称" in js["closest_headers"]["姓名"]
    for text in ("身份证号", "待遇状态", "「身份证」", "姓名称"):
        assert text in js["reason"] and text in html
    assert "缺少的列" in html and "拒收" in html
    assert path.exists()  # nothing leaves landing


def test_truncated_csv_quarantines_the_cut_row_only(warehouse, settings, as_of):
    text = csv_bytes("enrollment", rows_of("enrollment", {}, {}, {})).decode()
    cut = text[: text.rstrip().rfind("\n") + 1 + 40]  # the last row cut mid-row, no final newline
    put(landing_path(settings, "hrss", "enrollment", as_of), cut.encode())
    out = only(ingest(warehouse, settings))
    assert (out.status, out.rows_received, out.rows_loaded, out.rows_quarantined) == ("loaded", 3, 2, 1), out
    assert_reconciles(warehouse, out.file_id)
    [q] = quarantined(warehouse, out.file_id)
    assert (q["row_number"], q["rule"], q["column_name"]) == (4, "ROW", None)
    assert q["value_raw"] == cut.splitlines()[-1]
    js, html = receipt(settings, "hrss", out.file_id)
    assert js["rejected_rows"][0]["rule"] == "ROW" and "整行" in html


# ---------------------------------------------------------------------------------- a whole district


def test_generated_district_reconciles(fresh_warehouse, tmp_path):
    """A whole generated district: every file reconciles and the unusable IDs are exactly the planted ones."""
    generate = getattr(pytest.importorskip("crosscheck.generate"), "generate", None)
    if generate is None:
        pytest.skip("crosscheck.generate.generate is not there yet")
    import csv
    from collections import Counter

    out = tmp_path / "district"
    generate(out, persons=2000, seed=7, as_of=date(2026, 11, 28))
    settings = make_settings(tmp_path, landing_dir=out / "landing")
    for path in settings.landing_dir.rglob("*"):
        age_file(path)  # past the quiet period: files without a .done marker are complete too
    outcomes = []
    for department in ("civil", "poverty", "finance", "hrss"):
        outcomes += ingest(fresh_warehouse, settings, department)
    assert len(outcomes) == 9 and {o.status for o in outcomes} == {"loaded"}, [o.summary() for o in outcomes]
    for o in outcomes:
        assert o.rows_received == o.rows_loaded + o.rows_quarantined, o.summary()
        assert_reconciles(fresh_warehouse, o.file_id)
    with open(out / "truth.csv", encoding="utf-8", newline="") as f:
        truth = Counter((r["rule_code"], r["department"], r["extract"], r["id_number"])
                        for r in csv.DictReader(f) if r["rule_code"] in ("ID01", "ID02"))
    with fresh_warehouse.connect() as conn:
        got = Counter(conn.execute(
            "SELECT q.rule, f.department, f.extract, q.value_raw FROM ingest.quarantine q "
            "JOIN ingest.files f USING (file_id) WHERE q.rule IN ('ID01', 'ID02')").fetchall())
    assert got == truth


def test_drop_swapped_for_a_symlink_after_the_scan_is_refused(warehouse, settings, as_of, tmp_path):
    path = put(landing_path(settings, "hrss", "enrollment", as_of), csv_bytes("enrollment", rows_of("enrollment", {})))
    [drop] = scan(settings.landing_dir, settings, ["hrss"])
    assert drop.state == "ready"
    target = put(tmp_path / "elsewhere.csv", csv_bytes("enrollment", rows_of("enrollment", {})))
    path.unlink()
    path.symlink_to(target)
    out = stage_drop(warehouse, drop, settings)
    assert out.status == "rejected" and "快捷方式" in out.reason
    assert file_row(warehouse, out.file_id)["status"] == "rejected"
    assert not settings.archive_dir.exists() or not any(p.is_file() for p in settings.archive_dir.rglob("*"))
    assert os.readlink(path) == str(target)


def test_warning_checks_report_but_keep_the_rows(warehouse, settings, as_of):
    """ID04 (sex / birth date vs the ID number) is a warning: rows stay in core, the count is recorded.
    Its query holds a regex quantifier ({17}) that GX's placeholder filling must leave alone."""
    rows = rows_of("residents", {}, {}, {})
    rows[1]["sex"] = "男" if rows[1]["sex"] == "女" else "女"
    rows[2]["birth_date"] = "1901-01-01"
    put(landing_path(settings, "civil", "residents", as_of), csv_bytes("residents", rows))
    out = only(ingest(warehouse, settings, "civil"))
    assert (out.rows_loaded, out.rows_quarantined) == (3, 0), out
    with warehouse.connect() as conn:
        results = conn.execute(
            "SELECT result->'meta'->>'rule', success, unexpected_count FROM ingest.validation_results "
            "WHERE file_id = %s AND expectation = 'unexpected_rows_expectation' ORDER BY 3", (out.file_id,)).fetchall()
    assert results == [("ID04", False, 1), ("ID04", False, 1)]
    with warehouse.connect() as conn:  # every expectation of the suite ran (none lost to an upsert)
        ran = conn.execute("SELECT count(*) FROM ingest.validation_results WHERE file_id = %s",
                           (out.file_id,)).fetchone()[0]
    assert ran == len(json.loads(suite_path("residents").read_text(encoding="utf-8"))["expectations"])


def test_date_order_check_quarantines(warehouse, settings, as_of):
    ok = {"id_number": id_number(), "name": "甲", "category": "城乡低保", "start_date": "2025-01-01", "end_date": ""}
    bad = {**ok, "id_number": id_number(), "end_date": "2024-12-31"}
    put(landing_path(settings, "civil", "assistance", as_of), csv_bytes("assistance", [ok, bad]))
    out = only(ingest(warehouse, settings, "civil"))
    assert (out.rows_loaded, out.rows_quarantined) == (1, 1), out
    [q] = quarantined(warehouse, out.file_id)
    assert (q["row_number"], q["rule"]) == (3, "DATE_ORDER")
