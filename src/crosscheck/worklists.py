"""Work lists for case workers: ``worklists/<town>.xlsx``, one sheet per rule group.

Each sheet: a title, what each rule of the group means, then the table (Chinese headers, frozen
header row, autofilter, a 核查结论 drop-down and a 备注 column), and a very hidden sheet with the
list's keyed digest (crosscheck.feedback.seal_workbook). The layout is the one
``feedback.apply_feedback`` reads back when the filled-in file is dropped in the feedback folder.
Text that a spreadsheet would run as a formula is neutralised; every cell passes the masking policy
(``masking.row_for_people``), the ID column is left whole only when the setting ``worklist_mask_ids``
is off.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from psycopg import sql
from psycopg.rows import dict_row

from crosscheck.catalogue import RULES, SEVERITY_ZH
from crosscheck.feedback import seal_workbook
from crosscheck.findings import STATUS_ZH
from crosscheck.masking import for_people, neutralise_formula, row_for_people
from crosscheck.outputs import VERDICTS, WORKLIST_COLUMNS, WORKLIST_SHEETS
from crosscheck.partitions import WHOLE_NIGHT, Partition
from crosscheck.settings import Settings
from crosscheck.warehouse import Warehouse

# What each rule asks the case worker to check: the front matter of the rule's SQL file.
EXPLANATIONS = {code: rule.explanation for code, rule in RULES.items()}
HEADER_FILL = PatternFill("solid", fgColor="DDE6F0")
# Least widths (characters); a column grows to its longest cell up to MAX_WIDTH, 问题描述 wraps instead.
WIDTHS = {"finding_id": 9, "rule_code": 7, "rule_title": 18, "severity": 8, "id_number": 21, "name": 12,
          "town": 10, "village": 12, "departments": 12, "period": 9, "detail": 40, "amount": 11, "status": 7,
          "first_seen": 11, "last_seen": 11, "verdict": 10, "note": 16}
MAX_WIDTH = 30
LINE_HEIGHT = 15  # points per printed line of a wrapped cell (11-point text)
# The one bucket of findings whose person has no known town: the night's SQL (sql/night/10_people.sql)
# already names such a person's town so; a finding stored without any town joins it.
NO_TOWN = "（镇街不详）"


def town_bucket(town: str | None) -> str:
    """The work list a finding goes to: its town, or the one NO_TOWN list."""
    return town or NO_TOWN


def _text_width(value) -> int:
    """Printed width of a cell in Excel's character units: a CJK (wide) character counts two."""
    import unicodedata

    text = "" if value is None else str(value)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _page_layout(sheet, town: str, as_of: date, header_row: int) -> None:
    """Print as a document: A4 landscape, all columns on one page's width (as many pages down as it
    takes), the table's header row on every page, the town and night in the page header, page numbers
    in the footer."""
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0  # 0: as many pages down as needed
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.print_title_rows = f"{header_row}:{header_row}"
    sheet.print_options.horizontalCentered = True
    sheet.page_margins.left = sheet.page_margins.right = 0.4
    sheet.page_margins.top = sheet.page_margins.bottom = 0.75  # inches: room for the page header and footer
    sheet.page_margins.header = sheet.page_margins.footer = 0.3
    # "&" starts a header code in Excel: a town (sent data) carrying one must print as text
    title = for_people(f"{town} {sheet.title}问题核查清单").replace("&", "&&")
    sheet.oddHeader.left.text = title
    sheet.oddHeader.right.text = f"数据日期 {as_of}"
    sheet.oddFooter.center.text = "第 &P 页，共 &N 页"


def worklist_rows(warehouse: Warehouse, as_of: date, partition: Partition = WHOLE_NIGHT) -> list[dict]:
    """Findings to work on tonight (new and open) of the partition's towns, with the latest verdict."""
    with warehouse.reporting() as conn:
        cur = conn.cursor(row_factory=dict_row).execute(sql.SQL("""
            SELECT f.finding_id, f.rule_code, f.severity, f.id_number, f.name, f.town, f.village, f.departments,
                   f.period, f.detail, f.amount, n.status, f.first_seen, f.last_seen,
                   (SELECT verdict FROM mart.feedback b WHERE b.finding_id = f.finding_id
                     ORDER BY received_at DESC LIMIT 1) AS verdict,
                   (SELECT note FROM mart.feedback b WHERE b.finding_id = f.finding_id
                     ORDER BY received_at DESC LIMIT 1) AS note
            FROM mart.finding_nights n JOIN mart.findings f USING (finding_id)
            WHERE n.as_of = %s AND n.status IN ('new', 'open') AND {}
            ORDER BY f.town NULLS LAST, f.rule_code, f.village NULLS LAST, f.id_number, f.period""").format(
            partition.where(sql.SQL("f.town"))), (as_of,))
        return cur.fetchall()


def row_cells(r: dict, mask: bool) -> list:
    """A finding's cells in a work list, in WORKLIST_COLUMNS order (feedback checks returned rows
    against them): every cell under the masking policy (masking.py), the ID column whole only when
    ``mask`` is off."""
    r = row_for_people(r, mask_ids=mask)
    values = dict(r, rule_title=RULES[r["rule_code"]].title, severity=SEVERITY_ZH.get(r["severity"], r["severity"]),
                  status=STATUS_ZH.get(r["status"], r["status"]),
                  amount=None if r["amount"] is None else float(r["amount"]),
                  first_seen=str(r["first_seen"]), last_seen=str(r["last_seen"]))
    return [neutralise_formula(values.get(key)) for key, _ in WORKLIST_COLUMNS]


def _sheet(book: Workbook, title: str, group: str, rows: list[dict], town: str, as_of: date, mask: bool) -> None:
    sheet = book.create_sheet(title)
    codes = sorted({r["rule_code"] for r in rows}) or sorted(c for c, r in RULES.items() if r.group == group)
    sheet.append([neutralise_formula(for_people(f"{town} {title}问题核查清单（数据日期 {as_of}）"))])  # town: sent data
    sheet["A1"].font = Font(bold=True, size=14)
    for code in codes:
        sheet.append([f"{code} {RULES[code].title}：{EXPLANATIONS.get(code, '')}"])
    sheet.append(["请在“核查结论”列选择 属实 / 不属实 / 已整改，必要时填写备注，保存后交回数据管理员。"])
    header_row = sheet.max_row + 2  # one blank row between the explanations and the table
    for index, (_, label) in enumerate(WORKLIST_COLUMNS, start=1):
        sheet.cell(row=header_row, column=index, value=label)
    for cell in sheet[header_row]:
        cell.font = Font(bold=True)
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(vertical="center", wrap_text=True)
    for r in rows:
        sheet.append(row_cells(r, mask))
    last_row = max(sheet.max_row, header_row + 1)
    last_col = get_column_letter(len(WORKLIST_COLUMNS))
    sheet.freeze_panes = sheet.cell(row=header_row + 1, column=1)
    sheet.auto_filter.ref = f"A{header_row}:{last_col}{last_row}"
    keys = [key for key, _ in WORKLIST_COLUMNS]
    verdict_col = get_column_letter(keys.index("verdict") + 1)
    validation = DataValidation(type="list", formula1='"' + ",".join(VERDICTS) + '"', allow_blank=True,
                                showErrorMessage=True, errorTitle="核查结论",
                                error="请从下拉列表中选择：" + "、".join(VERDICTS))
    validation.add(f"{verdict_col}{header_row + 1}:{verdict_col}{max(last_row, header_row + 500)}")
    sheet.add_data_validation(validation)
    longest = {key: max((_text_width(c.value) for c in column), default=0)
               for key, column in zip(keys, sheet.iter_cols(min_row=header_row, max_row=last_row), strict=True)}
    for index, key in enumerate(keys, start=1):
        grown = WIDTHS.get(key, 12) if key == "detail" else min(max(WIDTHS.get(key, 12), longest[key] + 2), MAX_WIDTH)
        sheet.column_dimensions[get_column_letter(index)].width = grown
    _page_layout(sheet, town, as_of, header_row)
    widths = {index: sheet.column_dimensions[get_column_letter(index)].width for index in range(1, len(keys) + 1)}
    for row in sheet.iter_rows(min_row=header_row + 1, max_row=last_row):
        lines = 1
        for cell in row:  # a long text wraps within its column rather than running off the page
            cell.alignment = Alignment(wrap_text=True, vertical="top")
            lines = max(lines, -(-_text_width(cell.value) // max(int(widths[cell.column]) - 1, 1)))
        # an explicit height: a printer (LibreOffice, Excel without a recalculation) keeps a row one line tall
        sheet.row_dimensions[row[0].row].height = LINE_HEIGHT * lines


def _file_stem(town: str) -> str:
    """A town as a file name: no path separators, characters Windows forbids or control characters, at most
    150 bytes (a town is data a department sent). A name that had to change gets a short hash of the
    original, so two towns never share a file, whichever partition writes them."""
    safe = "".join(ch for ch in town if ch.isprintable() and ch not in '/\\:*?"<>|').strip(" .") or NO_TOWN
    safe = safe.encode("utf-8")[:150].decode("utf-8", "ignore")
    return safe if safe == town else f"{safe}_{hashlib.sha1(town.encode('utf-8')).hexdigest()[:6]}"


def clear_worklists(out_dir: Path) -> Path:
    """Empty worklists/ of a night's folder: a rerun must not leave the previous run's towns behind."""
    folder = out_dir / "worklists"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.xlsx"):
        old.unlink()
    return folder


def write_worklists(warehouse: Warehouse, as_of: date, out_dir: Path, settings: Settings) -> dict:
    """One workbook per town with findings to work on, worklists/ emptied first; return {"worklists": folder}."""
    clear_worklists(out_dir)
    write_partition_worklists(warehouse, as_of, out_dir, settings, WHOLE_NIGHT)
    return {"worklists": out_dir / "worklists"}


def write_partition_worklists(warehouse: Warehouse, as_of: date, out_dir: Path, settings: Settings,
                              partition: Partition) -> list[Path]:
    """The workbooks of one partition's towns (the nightly DAG maps this over the night's partitions,
    after emptying worklists/ once); return the files written."""
    folder = out_dir / "worklists"
    folder.mkdir(parents=True, exist_ok=True)
    by_town: dict[str, list[dict]] = {}
    for row in worklist_rows(warehouse, as_of, partition):
        by_town.setdefault(town_bucket(row["town"]), []).append(row)
    written = []
    for town, rows in sorted(by_town.items()):
        book = Workbook()
        book.remove(book.active)
        for group, title in WORKLIST_SHEETS.items():
            _sheet(book, title, group, [r for r in rows if RULES[r["rule_code"]].group == group], town, as_of,
                   settings.worklist_mask_ids)
        seal_workbook(book, town, as_of, [r["finding_id"] for r in rows], settings)
        book.properties.creator = "crosscheck"
        written.append(folder / f"{_file_stem(town)}.xlsx")
        book.save(written[-1])
    return written
