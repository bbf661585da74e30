"""The night's quality report: one self-contained ``report.html`` (inline CSS, JS and SVG charts).

Charts are drawn by matplotlib into SVG with text kept as text (``svg.fonttype = none``), so
Chinese labels are rendered by the reader's browser fonts and nothing is fetched from a network.
ID numbers are masked. Data come only from the warehouse's mart and ingest tables.
"""

from __future__ import annotations

import io
import json
import logging
import os
from datetime import date
from functools import cache
from pathlib import Path

import jinja2
from psycopg.rows import dict_row

from crosscheck.catalogue import RULES, SEVERITIES, SEVERITY_ZH, short_name
from crosscheck.contracts import contracts
from crosscheck.findings import STATUS_ZH
from crosscheck.masking import row_for_people
from crosscheck.outputs import WORKLIST_SHEETS, district_scope
from crosscheck.reference import District, deployment_districts
from crosscheck.settings import INCLUDE_DIR, USERS_TIMEZONE, Settings
from crosscheck.warehouse import Warehouse
from crosscheck.worklists import NO_TOWN, town_bucket

# ---------------------------------------------------------------- names people read instead of codes
# The one accessor of each name (the catalogue of departments, extracts and rules lives elsewhere; when
# it moves only these change).


def department_zh(code: str | None) -> str:
    return short_name(code) if code else ""


def extract_zh(code: str | None) -> str:
    contract = contracts().get(code)
    return contract.title if contract else (code or "")


def rule_title(code: str) -> str:
    return RULES[code].title if code in RULES else code


def file_status_zh(status: str | None) -> str:
    from crosscheck.receipts import STATUS_ZH as FILE_STATUS_ZH  # the receipts' wording, one place

    return FILE_STATUS_ZH.get(status, status or "")


HEADLINE = ["参保率", "代缴率", "待遇应享尽享率", "贫困人员就业人数", "公益性岗位安置", "死亡冒领金额"]


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(INCLUDE_DIR / "templates"), autoescape=True)
    env.filters["tojson_safe"] = lambda v: json.dumps(v, ensure_ascii=False).replace("</", "<\\/")
    return env.get_template("report.html.j2")


def _rows(conn, query: str, params=()) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def gather(warehouse: Warehouse, as_of: date) -> dict:
    """Everything the report shows, as plain data (also handy for tests)."""
    with warehouse.reporting() as conn:
        findings = _rows(conn, """
            SELECT f.rule_code, f.severity, f.id_number, f.name, f.town, f.village, f.departments, f.period,
                   f.detail, f.amount, n.status, f.first_seen, f.last_seen
            FROM mart.finding_nights n JOIN mart.findings f USING (finding_id)
            WHERE n.as_of = %s ORDER BY f.rule_code, f.town NULLS LAST, f.id_number, f.period""", (as_of,))
        indicators = _rows(conn, """SELECT as_of, indicator, scope, numerator, denominator, value
            FROM mart.indicators WHERE as_of <= %s ORDER BY as_of, indicator, scope""", (as_of,))
        freshness = _rows(conn, """SELECT department, extract, data_as_of, age_days, stale, held_file_id, held_as_of
            FROM mart.freshness WHERE as_of = %s ORDER BY department, extract""", (as_of,))
        previous = conn.execute("SELECT max(as_of) FROM mart.runs WHERE as_of < %s", (as_of,)).fetchone()[0]
        files = _rows(conn, """SELECT file_id, department, extract, as_of, file_name, status, reason,
                   rows_received, rows_loaded, rows_quarantined, received_at
            FROM mart.files_received
            WHERE status <> 'abandoned' AND ((as_of <= %s AND as_of > coalesce(%s, '-infinity'::date))
                  OR (as_of IS NULL AND (received_at AT TIME ZONE %s)::date <= %s))
            ORDER BY department, file_name, file_id""", (as_of, previous, USERS_TIMEZONE, as_of))
        # extracts pulled from a department's database or SFTP server: tonight's attempt (pulled, empty, failed)
        pulls = _rows(conn, """SELECT department, extract, source, conn_id, remote, status, rows_pulled, reason
            FROM mart.pull_status WHERE as_of = %s ORDER BY department, extract""", (as_of,))
    return {"findings": findings, "indicators": indicators, "freshness": freshness, "files": files, "pulls": pulls}


def _svg(fig) -> str:
    buffer = io.StringIO()
    # No creator/date metadata: the page stays byte-identical between reruns and names no web address.
    fig.savefig(buffer, format="svg", bbox_inches="tight",
                metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE: the SVG is inlined in HTML


def _charts(data: dict, as_of: date) -> dict:
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.dates import DateFormatter
    from matplotlib.ticker import MaxNLocator

    # Text stays text in the SVG; the reader's browser draws it with its own Chinese fonts. Without a
    # CJK font here matplotlib only mis-measures label widths, so its missing-glyph warning is noise.
    warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    plt.rcParams.update({"svg.fonttype": "none", "font.family": ["sans-serif"], "font.sans-serif": [
        "Microsoft YaHei", "Noto Sans CJK SC", "PingFang SC", "DejaVu Sans"],
        "font.size": 10, "svg.hashsalt": "crosscheck"})
    charts = {}
    district = [r for r in data["indicators"] if r["scope"] == "district"]
    for name in HEADLINE:
        series = [(r["as_of"], r["value"]) for r in district if r["indicator"] == name and r["value"] is not None]
        if len(series) < 2:
            continue  # a trend needs two nights
        fig, ax = plt.subplots(figsize=(3.4, 1.6))
        xs = [s[0] for s in series]
        ys = [float(s[1]) for s in series]
        ax.plot(xs, ys, marker="o", color="#2f6db5")
        ax.set_title(name)
        # ticks on nights only (at most 5, first and last kept): a free locator puts several ticks in
        # one day and prints its date on each
        step = max(1, -(-(len(xs) - 1) // 4))
        ax.set_xticks(sorted(set(xs[::-1][::step]) | {xs[0]}))
        ax.xaxis.set_major_formatter(DateFormatter("%m-%d"))
        ax.tick_params(axis="both", labelsize=7)
        ax.grid(alpha=0.3)
        charts[name] = _svg(fig)
    by_rule: dict[str, dict[str, int]] = {}
    for f in data["findings"]:
        by_rule.setdefault(f["rule_code"], {"new": 0, "open": 0, "resolved": 0})[f["status"]] += 1
    if by_rule:
        rules = sorted(by_rule, reverse=True)  # drawn bottom-up: the first rule on top
        # horizontal bars: the rules' Chinese names read along the axis, code beside them
        fig, ax = plt.subplots(figsize=(9, 0.8 + 0.28 * len(rules)))
        labels = [f"{rule_title(r)} {r}" for r in rules]
        left = [0] * len(rules)
        for status, colour in (("new", "#d9534f"), ("open", "#f0ad4e"), ("resolved", "#5cb85c")):
            values = [by_rule[r][status] for r in rules]
            ax.barh(labels, values, left=left, color=colour, label=STATUS_ZH[status])
            left = [b + v for b, v in zip(left, values, strict=True)]
        ax.legend(ncols=3, fontsize=8, loc="lower right")
        ax.set_title(f"{as_of} 各规则问题数（新增/持续/已消除）")
        ax.tick_params(axis="y", labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        charts["by_rule"] = _svg(fig)
    return charts


def for_district(data: dict, district: District) -> dict:
    """The report data of one district of a deployment: its towns' findings and indicators, its own
    totals as scope ``district``; files and freshness stay the deployment's (extracts are shared)."""
    towns = set(district.towns)
    own = {(r["as_of"], r["indicator"]) for r in data["indicators"] if r["scope"] == district.name}
    return {**data, "findings": [f for f in data["findings"] if f["town"] in towns],
            "indicators": [{**r, "scope": scope} for r in data["indicators"]
                           if (scope := district_scope(district, r["indicator"], r["scope"],
                                                       {i for a, i in own if a == r["as_of"]}))]}


def _indicator_table(rows: list[dict]) -> list[dict]:
    """Tonight's indicators as read: headline ones first, an indicator that is zero everywhere last;
    within an indicator the district first, then its towns, largest value first."""
    def zero(r):
        return not r["value"] and not r["numerator"]

    all_zero = {i for i in {r["indicator"] for r in rows} if all(zero(r) for r in rows if r["indicator"] == i)}
    order = {name: n for n, name in enumerate(HEADLINE)}

    def key(r):
        return (r["indicator"] in all_zero, order.get(r["indicator"], len(order)), r["indicator"],
                r["scope"] != "district", zero(r), -float(r["value"] or 0), r["scope"])
    return sorted(rows, key=key)


def render(data: dict, as_of: date, links: dict, districts: tuple[District, ...]) -> str:
    """The report of the districts (the deployment's; or one district with ``for_district`` data)."""
    # Everything the page shows passes the masking policy here, row by row (masking.py).
    findings = [dict(row_for_people(f), town=town_bucket(f["town"])) for f in data["findings"]]
    files = [dict(row_for_people(f), department_zh=department_zh(f["department"]), extract_zh=extract_zh(f["extract"]),
                  status_zh=file_status_zh(f["status"])) for f in data["files"]]
    freshness = [dict(f, department_zh=department_zh(f["department"]), extract_zh=extract_zh(f["extract"]))
                 for f in data["freshness"]]
    pulls = [dict(p, department_zh=department_zh(p["department"]), extract_zh=extract_zh(p["extract"]))
             for p in data.get("pulls", [])]
    table = [{
        "rule": f["rule_code"], "rule_title": rule_title(f["rule_code"]), "severity": f["severity"],
        "id": f["id_number"], "name": f["name"] or "", "town": f["town"], "village": f["village"] or "", "departments": f["departments"] or "",
        "period": f["period"] or "", "detail": f["detail"] or "",
        "amount": None if f["amount"] is None else float(f["amount"]), "status": f["status"],
        "first_seen": str(f["first_seen"]), "last_seen": str(f["last_seen"]),
    } for f in findings]
    counts = {s: sum(1 for f in findings if f["status"] == s) for s in STATUS_ZH}
    by_severity = {s: sum(1 for f in findings if f["severity"] == s and f["status"] != "resolved")
                   for s in SEVERITIES}
    rules = [(code, rule_title(code)) for code in sorted({f["rule_code"] for f in findings})]
    towns = sorted({f["town"] for f in findings} - {NO_TOWN}) + ([NO_TOWN] if any(
        f["town"] == NO_TOWN for f in findings) else [])  # the bucket without a town last
    # Every town of the districts appears in the grid, a town with nothing open too.
    known = [t for d in districts for t in d.towns]
    grid_towns = known + [t for t in towns if t not in known]
    town_grid = []
    for town in grid_towns:
        row = {"town": town, "total": 0, "by_group": {}}
        for f in findings:
            if f["town"] == town and f["status"] != "resolved":
                group = WORKLIST_SHEETS[RULES[f["rule_code"]].group]
                row["by_group"][group] = row["by_group"].get(group, 0) + 1
                row["total"] += 1
        town_grid.append(row)
    top = max((r["total"] for r in town_grid), default=0) or 1
    headline = []
    for name in HEADLINE:
        current = next((r for r in data["indicators"] if r["indicator"] == name and r["scope"] == "district"
                        and r["as_of"] == as_of), None)
        headline.append({"name": name, "row": current})
    return _template().render(
        scope_name="、".join(d.name for d in districts),
        as_of=as_of, table=table, counts=counts, by_severity=by_severity, severity_zh=SEVERITY_ZH,
        status_zh=STATUS_ZH, rules=rules, towns=towns, town_grid=town_grid, top=top, groups=list(WORKLIST_SHEETS.values()),
        headline=headline, charts=_charts(data, as_of), freshness=freshness, files=files, pulls=pulls,
        indicators=_indicator_table([r for r in data["indicators"] if r["as_of"] == as_of]), links=links,
    )


def write_report(warehouse: Warehouse, as_of: date, out_dir: Path, settings: Settings,
                 district: District | None = None, data: dict | None = None) -> dict:
    """Write report.html of the deployment (or of one of its districts) into out_dir; return {"report": path}.
    ``data``: what ``gather`` returned, when the caller writes several reports of one night."""
    out_dir.mkdir(parents=True, exist_ok=True)
    links = {}
    docs = settings.reports_dir / "data_docs" / "index.html"
    if docs.exists():
        links["data_docs"] = os.path.relpath(docs, out_dir)
    if settings.outbox_dir.exists():
        links["receipts"] = os.path.relpath(settings.outbox_dir, out_dir)
    path = out_dir / "report.html"
    data = data or gather(warehouse, as_of)
    if district is None:
        html = render(data, as_of, links, deployment_districts(settings.districts))
    else:
        html = render(for_district(data, district), as_of, links, (district,))
    path.write_text(html, encoding="utf-8")
    return {"report": path}
