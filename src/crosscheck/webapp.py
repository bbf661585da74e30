"""The quality reports served inside the Airflow UI (a FastAPI app mounted by plugins/crosscheck_ui.py).

Only logged-in Airflow users get anything: every route depends on Airflow's own authentication.
Who sees what comes from the user's roles in the auth manager (``towns_of``): data engineers and
analysts (roles Admin, Op, Analyst) see every night's every file — report, kpis.csv, mismatches.csv,
each town's work list, districts/, the departments' receipts and the Data Docs; a town's case workers
(a role ``镇街:<town>``) see only their town's work lists and get 403 on anything else; a user with
neither kind of role sees nothing.
Served files are confined to their folder: a night is a date, a path may not leave its folder.
A night's folder is a link onto its current publish set (crosscheck.publishing), which must lie in
the reports folder too: a link planted there pointing elsewhere serves nothing.
Pages (HTML, JSON) are served through the masking policy (``masking.for_people``).
"""

import html
import logging
import re
from datetime import date
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from crosscheck.masking import for_people
from crosscheck.settings import get_settings

NIGHT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Roles (case-insensitive) that read everything: FAB's Admin and Op (data engineers), Analyst (a role made
# for the bureau's analysts); SimpleAuthManager's admin and op in development.
ALL_ROLES = frozenset({"admin", "op", "analyst"})
TOWN_ROLE_PREFIX = "镇街:"
DOWNLOADS = {".csv": "text/csv; charset=utf-8",
             ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
log = logging.getLogger(__name__)


def role_names(user) -> set[str]:
    """The names of a user's roles: FAB users carry role objects, SimpleAuthManager's one role name."""
    if user is None:
        return set()
    roles = getattr(user, "roles", None)
    if roles is not None:
        return {getattr(r, "name", str(r)) for r in roles}
    role = getattr(user, "role", None)
    return {role} if role else set()


def towns_of(user) -> frozenset[str] | None:
    """None: the user reads everything; else the towns whose work lists the user may read (maybe none)."""
    names = role_names(user)
    if {n.lower() for n in names} & ALL_ROLES:
        return None
    return frozenset(n[len(TOWN_ROLE_PREFIX):] for n in names if n.startswith(TOWN_ROLE_PREFIX))


def _night_folder(reports_dir: Path, night: str) -> Path | None:
    """The folder a night's link resolves to, if it is one inside the reports folder."""
    root = reports_dir.resolve()
    folder = (reports_dir / night).resolve()
    return folder if folder.is_relative_to(root) and folder != root and folder.is_dir() else None


def _nights(reports_dir: Path) -> list[str]:
    if not reports_dir.is_dir():
        return []
    return sorted((p.name for p in reports_dir.iterdir()
                   if NIGHT.match(p.name) and (folder := _night_folder(reports_dir, p.name))
                   and (folder / "report.html").is_file()), reverse=True)


def _serve(root: Path, path: str):
    """A file under root (never outside it, links resolved): pages through the masking policy, CSV and
    XLSX as downloads, anything else as it is."""
    root = root.resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise HTTPException(404, html.escape(f"no such file {path}"))
    if target.suffix in (".html", ".json"):
        # served through the masking policy too: a page written before it (an older night) leaks nothing
        media = "text/html; charset=utf-8" if target.suffix == ".html" else "application/json"
        return Response(for_people(target.read_text(encoding="utf-8", errors="replace")), media_type=media)
    if target.suffix in DOWNLOADS:
        return FileResponse(target, media_type=DOWNLOADS[target.suffix], filename=target.name)
    return FileResponse(target)


def _worklist_name(town: str) -> str:
    from crosscheck.worklists import _file_stem

    return f"{_file_stem(town)}.xlsx"


def _page(title: str, body: str) -> str:
    return ("<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>"
            "body{font-family:'Microsoft YaHei','PingFang SC','Noto Sans CJK SC',sans-serif;margin:0;color:#1f2933;"
            "background:#f7f8fa}header{background:#1d3f6e;color:#fff;padding:14px 24px}h1{margin:0;font-size:1.4em}"
            "main{padding:14px 24px;max-width:1300px}section{background:#fff;border:1px solid #d8dde3;"
            "border-radius:6px;padding:10px 16px;margin-bottom:14px;overflow-x:auto}h2{font-size:1.1em;margin:4px 0 8px}"
            "table{border-collapse:collapse}th,td{border:1px solid #d8dde3;padding:3px 8px;text-align:left;"
            "vertical-align:top}th{background:#eef2f6;white-space:nowrap}.num{text-align:right}.bad{color:#b42318}"
            ".up{color:#1d6b1d}.down{color:#b42318}a{color:#1d5fae}"
            f"</style></head><body><header><h1>{html.escape(title)}</h1></header><main>{body}</main></body></html>")


def _link(href: str, text: str) -> str:
    return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'


def _status_sections(night: str) -> str:
    """Last night's state from the warehouse: each department's extracts (received, held, stale), the
    headline indicators with their trend, and the findings new/open/resolved. An unreachable warehouse
    costs only these sections, not the page."""
    from crosscheck.findings import STATUS_ZH
    from crosscheck.report import HEADLINE, department_zh, extract_zh
    from crosscheck.warehouse import open_warehouse

    as_of = date.fromisoformat(night)
    try:
        warehouse = open_warehouse(get_settings().warehouse_url, migrate=False)
        with warehouse.reporting() as conn:
            freshness = conn.execute(
                "SELECT department, extract, data_as_of, age_days, stale, held_file_id, held_as_of FROM mart.freshness"
                " WHERE as_of = %s ORDER BY department, extract", (as_of,)).fetchall()
            received = dict(conn.execute(
                "SELECT extract, count(*) FROM mart.files_received WHERE as_of = %s AND status = 'loaded'"
                " GROUP BY extract", (as_of,)).fetchall())
            trend = conn.execute(
                "SELECT indicator, as_of, value FROM mart.indicators WHERE scope = 'district' AND as_of <= %s"
                " AND as_of > %s::date - 14 AND indicator = ANY(%s) ORDER BY indicator, as_of",
                (as_of, as_of, HEADLINE)).fetchall()
            counts = dict(conn.execute("SELECT status, count(*) FROM mart.finding_nights WHERE as_of = %s"
                                       " GROUP BY status", (as_of,)).fetchall())
    except Exception as exc:  # the page still lists every file
        log.warning("report page: warehouse not readable: %s", exc)
        return "<section><h2>昨夜状态</h2><p class='bad'>数据仓库暂时无法读取，状态从略；下列文件照常可下载。</p></section>"
    rows = []
    for department, extract, data_as_of, age, stale, held, held_as_of in freshness:
        state = ("暂扣（" + str(held_as_of) + " 的文件未入库）") if held else ("数据过期" if stale else "正常")
        rows.append(f"<tr><td>{html.escape(department_zh(department))}</td><td>{html.escape(extract_zh(extract))}</td>"
                    f"<td class='num'>{received.get(extract, 0)}</td><td>{data_as_of or '未收到'}</td>"
                    f"<td class='num'>{'' if age is None else age}</td>"
                    f"<td class='{'bad' if held or stale else ''}'>{state}</td></tr>")
    by_name: dict[str, list] = {}
    for indicator, night_of, value in trend:
        by_name.setdefault(indicator, []).append((night_of, value))
    cards = []
    for name in HEADLINE:
        series = [v for _, v in by_name.get(name, []) if v is not None]
        if not series:
            continue
        last = float(series[-1])
        shown = f"{last * 100:.2f}%" if name.endswith("率") else f"{last:,.2f}"
        change = ""
        if len(series) > 1:
            delta = last - float(series[-2])
            change = (f" <span class='{'up' if delta > 0 else 'down' if delta < 0 else ''}'>"
                      f"{'↑' if delta > 0 else '↓' if delta < 0 else '→'}</span>")
        history = " · ".join(f"{float(v) * 100:.1f}%" if name.endswith("率") else f"{float(v):,.0f}"
                             for v in series[-7:])
        cards.append(f"<tr><td>{html.escape(name)}</td><td class='num'>{shown}{change}</td>"
                     f"<td>{html.escape(history)}</td></tr>")
    findings = " / ".join(f"{z} {counts.get(s, 0)}" for s, z in STATUS_ZH.items())
    return ("<section><h2>昨夜各部门数据（" + night + "）</h2><table><tr><th>部门</th><th>数据项</th>"
            "<th>本期入库文件</th><th>采用的数据日期</th><th>距今天数</th><th>状态</th></tr>" + "".join(rows)
            + "</table></section><section><h2>核心指标与趋势（近两周，全区）</h2><table><tr><th>指标</th>"
            "<th>本期</th><th>逐晚</th></tr>" + "".join(cards) + "</table></section>"
            f"<section><h2>问题</h2><p>{html.escape(findings)}</p></section>")


def _night_outputs(reports_dir: Path, night: str) -> str:
    folder = _night_folder(reports_dir, night)
    base = f"nights/{night}/"
    links = [_link(base + name, label) for name, label in (
        ("report.html", "质量报告"), ("kpis.csv", "kpis.csv"), ("mismatches.csv", "mismatches.csv"))
        if (folder / name).is_file()]
    for district in sorted((folder / "districts").glob("*/report.html")):
        links.append(_link(base + f"districts/{district.parent.name}/report.html", f"{district.parent.name} 报告"))
    towns = [_link(base + "worklists/" + quote(p.name), p.stem) for p in sorted((folder / "worklists").glob("*.xlsx"))]
    return (f"<tr><td>{night}</td><td>{' · '.join(links)}</td>"
            f"<td>{' '.join(towns) or '—'}</td></tr>")


def _receipts(outbox: Path) -> list[Path]:
    return sorted(outbox.glob("**/*.receipt.html")) if outbox.is_dir() else []


def create_app(require_user=None, current_user=None) -> FastAPI:
    """``require_user`` is a FastAPI dependency that rejects anonymous requests (Airflow's in production);
    ``current_user`` one that returns the logged-in user (Airflow's ``get_user``), whose roles decide what
    is served (``towns_of``). Without it every request reads everything (the app alone, in tests)."""
    dependencies = [Depends(require_user)] if require_user else []
    app = FastAPI(title="crosscheck reports", dependencies=dependencies)

    async def no_user():
        return None

    # FastAPI reads these annotations at route definition: no postponed evaluation in this module
    async def scope(user: Annotated[object, Depends(current_user or no_user)]) -> frozenset[str] | None:
        return None if current_user is None else towns_of(user)

    Towns = Annotated[frozenset[str] | None, Depends(scope)]

    def everything(towns: Towns) -> None:
        if towns is not None:
            raise HTTPException(403, "只有数据工程师和分析人员可以查看 / data engineers and analysts only")

    @app.get("/", response_class=HTMLResponse)
    def index(towns: Towns) -> str:
        settings = get_settings()
        nights = _nights(settings.reports_dir)
        if towns is not None:  # a town's case workers: their lists, nothing else
            rows = []
            for night in nights:
                folder = _night_folder(settings.reports_dir, night)
                own = [_link(f"nights/{night}/worklists/{quote(_worklist_name(t))}", f"{t} 核查清单")
                       for t in sorted(towns) if (folder / "worklists" / _worklist_name(t)).is_file()]
                if own:
                    rows.append(f"<tr><td>{night}</td><td>{' '.join(own)}</td></tr>")
            body = (f"<section><h2>{html.escape('、'.join(sorted(towns)) or '（无镇街权限）')} 的核查清单</h2>"
                    + (f"<table><tr><th>数据日期</th><th>清单</th></tr>{''.join(rows)}</table>" if rows
                       else "<p>暂无可查看的清单。</p>") + "</section>")
            return for_people(_page("核查清单", body))
        status = _status_sections(nights[0]) if nights else "<section><p>还没有报告。</p></section>"
        docs = settings.reports_dir / "data_docs" / "index.html"
        extra = [_link("latest", f"最新报告 {nights[0]}")] if nights else []
        if docs.is_file():
            extra.append(_link("nights/data_docs/index.html", "数据校验明细（Data Docs）"))
        if _receipts(settings.outbox_dir):
            extra.append(_link("outbox/", "各部门回执"))
        table = "".join(_night_outputs(settings.reports_dir, n) for n in nights)
        body = (f"<section><p>{' · '.join(extra)}</p></section>{status}"
                "<section><h2>历次输出（每晚的每个文件）</h2><table><tr><th>数据日期</th><th>报告与数据</th>"
                f"<th>各镇街核查清单</th></tr>{table}</table></section>")
        return for_people(_page("社保扶贫数据比对 质量报告", body))

    @app.get("/latest", dependencies=[Depends(everything)])
    def latest():
        nights = _nights(get_settings().reports_dir)
        if not nights:
            raise HTTPException(404, "no report yet")
        return RedirectResponse(f"nights/{nights[0]}/report.html")

    @app.get("/outbox/", response_class=HTMLResponse, dependencies=[Depends(everything)])
    def receipts() -> str:
        outbox = get_settings().outbox_dir
        items = "".join(f"<li>{_link(quote(str(p.relative_to(outbox))), str(p.relative_to(outbox)))}</li>"
                        for p in _receipts(outbox))
        return for_people(_page("各部门回执", f"<section><ul>{items or '<li>无</li>'}</ul></section>"))

    @app.get("/outbox/{path:path}", dependencies=[Depends(everything)])
    def receipt(path: str):
        return _serve(get_settings().outbox_dir, path)

    @app.get("/nights/{night}/{path:path}")
    def night_file(night: str, path: str, towns: Towns):
        reports = get_settings().reports_dir
        if towns is not None:
            # a town's case worker: only the own town's work list of a published night
            allowed = {f"worklists/{_worklist_name(t)}" for t in towns}
            if not (NIGHT.match(night) and path in allowed):
                raise HTTPException(403, "只能查看本镇街的核查清单 / your own town's work list only")
        if night == "data_docs":  # the report links ../data_docs/ beside the nights
            return _serve(reports / "data_docs", path)
        folder = _night_folder(reports, night) if NIGHT.match(night) else None
        if folder is None:
            raise HTTPException(404, "no such night")
        return _serve(folder, path)

    return app
