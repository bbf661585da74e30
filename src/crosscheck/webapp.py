"""The quality reports served inside the Airflow UI (a FastAPI app mounted by plugins/crosscheck_ui.py).

Only logged-in Airflow users get anything: every route depends on Airflow's own authentication.
Served files are confined to the reports folder: a night is a date, a path may not leave its folder.
A night's folder is a link onto its current publish set (crosscheck.publishing), which must lie in
the reports folder too: a link planted there pointing elsewhere serves nothing.
Pages (HTML, JSON) are served through the masking policy (``masking.for_people``).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from crosscheck.masking import for_people
from crosscheck.settings import get_settings

NIGHT = re.compile(r"^\d{4}-\d{2}-\d{2}$")


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


def create_app(require_user=None) -> FastAPI:
    """``require_user`` is a FastAPI dependency that rejects anonymous requests (Airflow's in production)."""
    dependencies = [Depends(require_user)] if require_user else []
    app = FastAPI(title="crosscheck reports", dependencies=dependencies)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        nights = _nights(get_settings().reports_dir)
        items = "".join(f'<li><a href="nights/{n}/report.html">{n}</a></li>' for n in nights)
        latest = f'<p><a href="latest">最新报告 {nights[0]}</a></p>' if nights else "<p>还没有报告。</p>"
        return ("<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'><title>质量报告</title></head>"
                "<body style='font-family:sans-serif'><h1>社保扶贫数据比对 质量报告</h1>"
                f"{latest}<h2>历次报告</h2><ul>{items}</ul></body></html>")

    @app.get("/latest")
    def latest():
        nights = _nights(get_settings().reports_dir)
        if not nights:
            raise HTTPException(404, "no report yet")
        return RedirectResponse(f"nights/{nights[0]}/report.html")

    @app.get("/nights/{night}/{path:path}")
    def night_file(night: str, path: str):
        folder = _night_folder(get_settings().reports_dir, night) if NIGHT.match(night) else None
        if folder is None:
            raise HTTPException(404, "no such night")
        target = (folder / path).resolve()
        if not target.is_relative_to(folder) or not target.is_file() or target.suffix not in (
                ".html", ".css", ".js", ".png", ".svg", ".json"):
            raise HTTPException(404, html.escape(f"no such file {path}"))
        if target.suffix in (".html", ".json"):
            # served through the masking policy too: a page written before it (an older night) leaks nothing
            media = "text/html; charset=utf-8" if target.suffix == ".html" else "application/json"
            return Response(for_people(target.read_text(encoding="utf-8", errors="replace")), media_type=media)
        return FileResponse(target)

    return app
