"""The night's output files and their layouts: ``mismatches.csv`` and ``kpis.csv`` (interface.md), and
the work lists' layout (written by crosscheck.worklists, read back by crosscheck.feedback)."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from pathlib import Path

from psycopg.rows import dict_row

from crosscheck.catalogue import GROUPS, SEVERITIES, short_name
from crosscheck.contracts import contracts
from crosscheck.findings import FIRST_SEEN, LAST_SEEN, STATUSES
from crosscheck.masking import neutralise_formula
from crosscheck.reference import District
from crosscheck.warehouse import Warehouse

# Work lists (worklists/<town>.xlsx): one sheet per rule group, one row per finding, every header in
# Chinese; case workers fill 核查结论 (属实/不属实/已整改) and 备注. crosscheck.feedback reads back
# any sheet that has the 问题编号 and 核查结论 headers.
WORKLIST_SHEETS = GROUPS
WORKLIST_COLUMNS: tuple[tuple[str, str], ...] = (
    ("finding_id", "问题编号"),
    ("rule_code", "规则"),
    ("rule_title", "问题类型"),
    ("severity", "严重程度"),
    ("id_number", "身份证号"),
    ("name", "姓名"),
    ("town", "镇街"),
    ("village", "村社区"),
    ("departments", "涉及部门"),
    ("period", "期间"),
    ("detail", "问题描述"),
    ("amount", "金额（元）"),
    ("status", "状态"),
    ("first_seen", "首次发现"),
    ("last_seen", "最近发现"),
    ("verdict", "核查结论"),
    ("note", "备注"),
)
VERDICTS = ("属实", "不属实", "已整改")

MISMATCH_COLUMNS = ("rule_code", "severity", "id_number", "name", "town", "village", "departments", "period",
                    "detail", "amount", "status", "first_seen", "last_seen")
KPI_COLUMNS = ("indicator", "scope", "numerator", "denominator", "value")


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def stale_notes(warehouse: Warehouse, as_of: date) -> dict[str, str]:
    """{部门: note} for departments whose data used on night D is stale or missing."""
    notes: dict[str, list[str]] = {}
    with warehouse.reporting() as conn:
        rows = conn.execute("SELECT department, extract, data_as_of, age_days FROM mart.freshness "
                            "WHERE as_of = %s AND stale ORDER BY department, extract", (as_of,)).fetchall()
    for department, extract, data_as_of, age in rows:
        title = contracts()[extract].title if extract in contracts() else extract
        note = (f"{title}数据截至{data_as_of.isoformat()}，已{age}天未更新" if data_as_of
                else f"从未报送{title}")
        notes.setdefault(short_name(department), []).append(note)
    return {dept: "；".join(items) for dept, items in notes.items()}


def mismatch_rows(warehouse: Warehouse, as_of: date) -> list[dict]:
    """Every finding reported on night D (new, open, resolved), as of that night, sorted.

    first_seen / last_seen are computed from the nights up to D, so the output of an earlier night
    can be reproduced later.
    """
    with warehouse.reporting() as conn:
        cur = conn.cursor(row_factory=dict_row).execute(
            "SELECT m.finding_id, m.rule_code, m.severity, m.id_number, m.name, m.town, m.village, m.departments, "  # noqa: S608 (module constants)
            " m.period, m.detail, m.amount, n.status, s.first_seen, s.last_seen, m.subject_key "
            "FROM mart.finding_nights n JOIN mart.findings m USING (finding_id) "
            f"JOIN (SELECT finding_id, {FIRST_SEEN} AS first_seen, {LAST_SEEN} AS last_seen "
            "  FROM mart.finding_nights WHERE as_of <= %(d)s AND finding_id IN "
            "  (SELECT finding_id FROM mart.finding_nights WHERE as_of = %(d)s) GROUP BY finding_id) s USING (finding_id) "
            "WHERE n.as_of = %(d)s", {"d": as_of})
        rows = cur.fetchall()
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    srank = {s: i for i, s in enumerate(STATUSES)}
    rows.sort(key=lambda r: (rank.get(r["severity"], 9), r["rule_code"], srank.get(r["status"], 9),
                             r["town"] or "", r["village"] or "", r["id_number"] or "", r["period"],
                             r["subject_key"]))
    return rows


def write_mismatches(warehouse: Warehouse, as_of: date, path: Path, towns: tuple[str, ...] | None = None) -> int:
    """mismatches.csv for night D (interface.md): UTF-8 with BOM, one row per finding reported that night.

    Columns ``rule_code, severity, id_number, name, town, village, departments, period, detail,
    amount, status, first_seen, last_seen``; sorted by severity (critical first), rule, status,
    town, village, ID number, period. Cells a spreadsheet would take for a formula (starting with
    = + - @) are prefixed with a single quote.

    Stale data: when a department's extract used that night is older than ``stale_after_days``
    (or was never received), every finding involving that department gets the note
    ``【数据时效提示：人社：养老保险待遇发放明细数据截至2026-11-25，已3天未更新】`` at the end of
    its detail, so whoever reads the row knows it may reflect old data.
    """
    rows = [r for r in mismatch_rows(warehouse, as_of) if towns is None or r["town"] in towns]
    notes = stale_notes(warehouse, as_of)
    out = []
    for r in rows:
        r = dict(r)
        depts = (r["departments"] or "").split(",")
        flagged = [f"{d}：{notes[d]}" for d in depts if d in notes]
        if flagged:
            r["detail"] = (r["detail"] or "") + "【数据时效提示：" + "；".join(flagged) + "】"
        out.append([r[c] for c in MISMATCH_COLUMNS])
    return _write_csv(Path(path), MISMATCH_COLUMNS, out)


def _write_csv(path: Path, header, rows) -> int:
    """A CSV for spreadsheets (interface.md): UTF-8 with BOM, formula-looking cells neutralised."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([neutralise_formula(_text(v)) for v in row] for row in rows)
    return len(rows)


def write_kpis(warehouse: Warehouse, as_of: date, path: Path, district: District | None = None) -> int:
    """kpis.csv for night D: ``indicator, scope, numerator, denominator, value`` (UTF-8 with BOM).

    Scope is ``district`` or a town name; rates have value = numerator / denominator (4 decimals,
    empty when the denominator is 0); counts and amounts have no denominator and value = numerator.
    ``数据时效_<部门>`` gives each department's data age in days (empty: an extract never received),
    ``数据过期部门数`` how many departments are stale.
    """
    with warehouse.reporting() as conn:
        rows = conn.execute("SELECT indicator, scope, numerator, denominator, value FROM mart.indicators "
                            "WHERE as_of = %s", (as_of,)).fetchall()
    if district is not None:
        rows = [(r[0], scope, *r[2:]) for r in rows
                if (scope := district_scope(district, r[0], r[1], {x[0] for x in rows if x[1] == district.name}))]
    rows.sort(key=lambda r: (_indicator_rank(r[0]), r[0], r[1] != "district", r[1]))
    return _write_csv(Path(path), KPI_COLUMNS, rows)


def district_scope(district: District, indicator: str, scope: str, per_district: set[str]) -> str | None:
    """The scope of an indicator row in one district's outputs, or None when the row is not the
    district's: its towns stay, its own totals become ``district``, and deployment-wide rows of
    indicators not computed per district (data age) stay ``district``."""
    if scope == district.name:
        return "district"
    if scope in district.towns or (scope == "district" and indicator not in per_district):
        return scope
    return None


INDICATOR_ORDER = ("参保率", "代缴率", "待遇应享尽享率", "贫困人员就业人数", "公益性岗位安置", "扶贫车间吸纳人数",
                   "扶贫车间吸纳贫困人数", "培训合格人数", "培训补贴人次", "培训补贴金额", "交通食宿补贴人次",
                   "交通食宿补贴金额", "死亡冒领金额")


def _indicator_rank(name: str) -> int:
    return INDICATOR_ORDER.index(name) if name in INDICATOR_ORDER else len(INDICATOR_ORDER)
