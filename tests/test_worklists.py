"""Town work lists: layout, drop-down, formula neutralisation, masking, and the feedback round trip."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from datetime import date

import pytest
from openpyxl import load_workbook

from crosscheck.feedback import apply_feedback
from crosscheck.outputs import WORKLIST_SHEETS
from crosscheck.settings import get_settings
from crosscheck.worklists import NO_TOWN, write_worklists

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
    assert apply_feedback(fresh_warehouse, path, get_settings()).stored == 1
    with fresh_warehouse.connect() as conn:
        rows = conn.execute("SELECT finding_id, verdict, note FROM mart.feedback").fetchall()
    assert rows == [(ids["ss01"], "不属实", "已在外地参保")]
    # The next work list shows the verdict already given.
    write_worklists(fresh_warehouse, AS_OF, tmp_path / "again", get_settings())
    again = load_workbook(tmp_path / "again" / "worklists" / "太平镇.xlsx")["社保扶贫"]
    h = _header_row(again)
    assert again.cell(row=h + 1, column=headers.index("核查结论") + 1).value == "不属实"


def test_findings_without_a_town_share_one_list(fresh_warehouse, tmp_path):
    """A person no register places (the night names the town 镇街不详) and a finding stored without a town
    go to one work list, not two."""
    with fresh_warehouse.transaction() as conn:
        _add_finding(conn, "ID07", "medium", NO_TOWN, "赵六", "民政无此人")
        _add_finding(conn, "EM03", "critical", None, "钱七", "死亡后发放", id_number="500151199002021234")
    write_worklists(fresh_warehouse, AS_OF, tmp_path, get_settings())
    assert sorted(p.name for p in (tmp_path / "worklists").glob("*.xlsx")) == [f"{NO_TOWN}.xlsx"]


def test_worklist_page_setup(fresh_warehouse, tmp_path):
    _night(fresh_warehouse)
    write_worklists(fresh_warehouse, AS_OF, tmp_path, get_settings())
    book = load_workbook(tmp_path / "worklists" / "太平镇.xlsx")
    for title in WORKLIST_SHEETS.values():
        sheet = book[title]
        header = _header_row(sheet)
        assert sheet.page_setup.orientation == "landscape"
        assert sheet.sheet_properties.pageSetUpPr.fitToPage and sheet.page_setup.fitToWidth == 1
        assert sheet.page_setup.fitToHeight == 0
        assert sheet.print_title_rows == f"${header}:${header}"
        assert "太平镇" in sheet.oddHeader.left.text and str(AS_OF) in sheet.oddHeader.right.text
        assert "&P" in sheet.oddFooter.center.text and "&N" in sheet.oddFooter.center.text
    # Columns as wide as their content: 问题类型 holds the longest rule title unbroken.
    sheet = book["基础信息"]
    headers = [c.value for c in sheet[_header_row(sheet)]]
    column = sheet.column_dimensions[chr(ord("A") + headers.index("问题类型"))]
    assert column.width >= 2 * len("同一身份证号姓名不一致")


SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")


def _pdf_pages(pdf) -> list[tuple[float, float, str]]:
    """(width, height, text) of each page, by poppler's pdfinfo and pdftotext."""
    info = subprocess.run(["pdfinfo", "-f", "1", "-l", "999", str(pdf)], capture_output=True, text=True,
                          check=True).stdout
    sizes = [tuple(float(x) for x in m) for m in re.findall(r"Page\s+\d+ size:\s+([\d.]+) x ([\d.]+)", info)]
    texts = [subprocess.run(["pdftotext", "-layout", "-f", str(n), "-l", str(n), str(pdf), "-"], capture_output=True,
                            text=True, check=True).stdout for n in range(1, len(sizes) + 1)]
    return [(w, h, t) for (w, h), t in zip(sizes, texts, strict=True)]


# CI installs LibreOffice Calc, poppler and a CJK font (.ci/run); there the print test must run, not skip.
@pytest.mark.skipif(not (SOFFICE and shutil.which("pdfinfo")) and not os.environ.get("CI"),
                    reason="LibreOffice or poppler-utils is not installed (.ci/run installs them)")
def test_worklist_prints_one_page_wide(fresh_warehouse, tmp_path):
    """Printed by LibreOffice, a long town list is A4 landscape pages, each holding every column (the
    header row repeated, 问题编号 … 备注), the town and date in the header and the page number below."""
    with fresh_warehouse.transaction() as conn:
        for i in range(90):
            _add_finding(conn, "SS01", "high", "太平镇", f"张{i}", "贫困人口年满16周岁未参保" * 3,
                         id_number=f"5001511990010{i:05d}")
    write_worklists(fresh_warehouse, AS_OF, tmp_path, get_settings())
    book = tmp_path / "worklists" / "太平镇.xlsx"
    # A row is as tall as its wrapped 问题描述 (36 wide characters in a 40-unit column: two lines); without a
    # height LibreOffice prints it on one line, cut off.
    sheet = load_workbook(book)["社保扶贫"]
    rows = [r for r in sheet.iter_rows(min_row=_header_row(sheet) + 1) if r[0].value]
    assert len(rows) == 90 and all((sheet.row_dimensions[r[0].row].height or 0) >= 30 for r in rows)
    profile = tmp_path / "lo-profile"
    subprocess.run([SOFFICE, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "pdf",
                    "--outdir", str(tmp_path), str(book)], check=True, capture_output=True, timeout=240)
    pages = _pdf_pages(tmp_path / "太平镇.pdf")
    pension = [p for p in pages if "社保扶贫问题核查清单" in p[2]]
    assert len(pension) >= 2  # 90 rows run down several pages…
    for number, (width, height, text) in enumerate(pages, start=1):
        assert width > height and round(width) == 842  # A4 landscape (points)
        assert f"第 {number} 页，共 {len(pages)} 页" in text and str(AS_OF) in text
    for _, _, text in pension:  # …but never across: every page has the whole header row
        assert "问题编号" in text and "核查结论" in text and "备注" in text
    assert len(pages) == 2 + len(pension)  # the two short sheets one page each: a page width per sheet
