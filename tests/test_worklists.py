"""Town work lists: layout, drop-down, formula neutralisation, masking, and the feedback round trip."""

from __future__ import annotations

import dataclasses
from datetime import date

from openpyxl import load_workbook

from crosscheck.feedback import apply_feedback
from crosscheck.outputs import WORKLIST_SHEETS
from crosscheck.settings import get_settings
from crosscheck.worklists import write_worklists

AS_OF = date(2026, 11, 28)
FULL_ID = "500151199001011234"


def _add_finding(conn, rule, severity, town, name, detail, status="new", id_number=FULL_ID):
    finding_id = conn.execute(
        "INSERT INTO mart.findings (rule_code, subject_key, period, severity, id_number, name, town, village,"
        " departments, detail, amount, data_hash, status, first_seen, last_seen)"
        " VALUES (%s, %s, '', %s, %s, %s, %s, '坪漆村', '民政,人社', %s, 12.5, 'h', %s, %s, %s) RETURNING finding_id",
        (rule, id_number + rule, severity, id_number, name, town, detail, status, AS_OF, AS_OF)).fetchone()[0]
    conn.execute("INSERT INTO mart.finding_nights (as_of, finding_id, status) VALUES (%s, %s, %s)",
                 (AS_OF, finding_id, status))
    return finding_id


def _night(warehouse):
    with warehouse.transaction() as conn:
        ids = {
            "ss01": _add_finding(conn, "SS01", "high", "太平镇", "张三", "未参保"),
            "hostile": _add_finding(conn, "ID03", "high", "太平镇", "=HYPERLINK(\"http://x\")", "+cmd|' /C calc'!A0"),
            "other_town": _add_finding(conn, "EM03", "critical", "侣俸镇", "李四", "死亡后发放"),
            "resolved": _add_finding(conn, "SS05", "high", "太平镇", "王五", "已消除", status="resolved"),
        }
    return ids


def _header_row(sheet):
    for row in sheet.iter_rows(min_row=1, max_row=30):
        if row[0].value == "问题编号":
            return row[0].row
    raise AssertionError("no header row")


def test_worklists_layout_and_safety(fresh_warehouse, tmp_path):
    _night(fresh_warehouse)
    write_worklists(fresh_warehouse, AS_OF, tmp_path, get_settings())
    files = sorted(p.name for p in (tmp_path / "worklists").glob("*.xlsx"))
    assert files == ["侣俸镇.xlsx", "太平镇.xlsx"]
    book = load_workbook(tmp_path / "worklists" / "太平镇.xlsx")
    assert [s.title for s in book.worksheets if s.sheet_state == "visible"] == ["基础信息", "社保扶贫", "就业扶贫"]
    assert [s.sheet_state for s in book.worksheets if s.title not in WORKLIST_SHEETS.values()] == ["veryHidden"]
    sheet = book["基础信息"]
    header = _header_row(sheet)
    headers = [c.value for c in sheet[header]]
    assert "核查结论" in headers and "备注" in headers and "身份证号" in headers
    assert sheet.freeze_panes == f"A{header + 1}"
    assert sheet.auto_filter.ref.startswith(f"A{header}:")
    assert "ID03" in sheet["A2"].value  # the rule's explanation above the table
    values = [c.value for c in sheet[header + 1]]
    # Formula-looking text is neutralised: no cell starts with = + - @.
    assert all(not (isinstance(v, str) and v[:1] in "=+-@") for row in sheet.iter_rows() for v in
               (c.value for c in row))
    assert any(isinstance(v, str) and v.startswith("'=HYPERLINK") for v in values)
    # The 核查结论 drop-down covers the table rows.
    verdict_col = headers.index("核查结论")
    validations = sheet.data_validations.dataValidation
    assert len(validations) == 1 and validations[0].formula1 == '"属实,不属实,已整改"'
    assert sheet.cell(row=header + 1, column=verdict_col + 1).coordinate in validations[0].sqref
    # IDs masked by default; resolved findings are not worked on.
    pension = book["社保扶贫"]
    rows = [[c.value for c in r] for r in pension.iter_rows(min_row=_header_row(pension) + 1)]
    assert [r[headers.index("姓名")] for r in rows] == ["张三"]
    assert rows[0][headers.index("身份证号")] == "500151********1234"
    assert FULL_ID not in {c.value for r in book.worksheets for row in r.iter_rows() for c in row}


def test_worklists_can_show_full_ids(fresh_warehouse, tmp_path):
    _night(fresh_warehouse)
    settings = dataclasses.replace(get_settings(), worklist_mask_ids=False)
    write_worklists(fresh_warehouse, AS_OF, tmp_path, settings)
    book = load_workbook(tmp_path / "worklists" / "侣俸镇.xlsx")
    cells = {c.value for row in book["就业扶贫"].iter_rows() for c in row}
    assert FULL_ID in cells


def test_filled_worklist_comes_back_as_feedback(fresh_warehouse, tmp_path):
    ids = _night(fresh_warehouse)
    write_worklists(fresh_warehouse, AS_OF, tmp_path, get_settings())
    path = tmp_path / "worklists" / "太平镇.xlsx"
    book = load_workbook(path)
    sheet = book["社保扶贫"]
    header = _header_row(sheet)
    headers = [c.value for c in sheet[header]]
    sheet.cell(row=header + 1, column=headers.index("核查结论") + 1, value="不属实")
    sheet.cell(row=header + 1, column=headers.index("备注") + 1, value="已在外地参保")
    book.save(path)
    assert apply_feedback(fresh_warehouse, path).stored == 1
    with fresh_warehouse.connect() as conn:
        rows = conn.execute("SELECT finding_id, verdict, note FROM mart.feedback").fetchall()
    assert rows == [(ids["ss01"], "不属实", "已在外地参保")]
    # The next work list shows the verdict already given.
    write_worklists(fresh_warehouse, AS_OF, tmp_path / "again", get_settings())
    again = load_workbook(tmp_path / "again" / "worklists" / "太平镇.xlsx")["社保扶贫"]
    h = _header_row(again)
    assert again.cell(row=h + 1, column=headers.index("核查结论") + 1).value == "不属实"
