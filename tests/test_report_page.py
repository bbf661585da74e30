"""The report page inside Airflow: every output of every night one click away, for those allowed.

A generated district is ingested, compared and published once (real receipts, Data Docs, work lists);
the page is then asked through the app alone (what each kind of user is served) and through Airflow's
own API server app with the FAB auth manager and real FAB users and roles (an analyst reads every file;
a town's case worker gets their own town's work list and 403 on another town's and on the report).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from conftest import _server_url
from helpers import make_settings, throwaway_warehouse

D = date(2026, 11, 28)
ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """(settings, warehouse url, two towns with work lists) of a published night."""
    from crosscheck.generate import generate
    from crosscheck.pipeline import compare_night, ingest_departments, publish_night
    from crosscheck.settings import DEPARTMENTS, get_settings

    base = tmp_path_factory.mktemp("page")
    generate(base / "district", persons=600, seed=7, as_of=D)
    settings = make_settings(base, landing_dir=base / "district" / "landing", quiet_period_seconds=0)
    saved = {k: os.environ.get(k) for k in ("CROSSCHECK_REPORTS", "CROSSCHECK_OUTBOX")}
    os.environ.update(CROSSCHECK_REPORTS=str(settings.reports_dir), CROSSCHECK_OUTBOX=str(settings.outbox_dir))
    get_settings.cache_clear()  # Data Docs go to the configured reports folder
    try:
        with throwaway_warehouse(_server_url("embedded")) as w:
            ingest_departments(w, DEPARTMENTS, settings.landing_dir, settings)
            compare_night(w, D, settings)
            publish_night(w, D, settings.reports_dir / D.isoformat(), settings)
            towns = sorted(p.stem for p in (settings.reports_dir / D.isoformat() / "worklists").glob("*.xlsx"))
            assert len(towns) >= 2
            yield settings, w.url, towns
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
        get_settings.cache_clear()


def _client(user, monkeypatch, settings, url):
    from fastapi.testclient import TestClient

    from crosscheck.settings import get_settings
    from crosscheck.webapp import create_app

    monkeypatch.setenv("CROSSCHECK_REPORTS", str(settings.reports_dir))
    monkeypatch.setenv("CROSSCHECK_OUTBOX", str(settings.outbox_dir))
    monkeypatch.setenv("CROSSCHECK_WAREHOUSE_URL", url)
    get_settings.cache_clear()

    async def current_user():
        return user

    return TestClient(create_app(current_user=current_user), follow_redirects=False)


def test_analyst_reaches_every_output_of_the_night(published, monkeypatch):
    settings, url, towns = published
    client = _client(SimpleNamespace(roles=[SimpleNamespace(name="Analyst")]), monkeypatch, settings, url)
    index = client.get("/")
    assert index.status_code == 200
    page = index.text
    # last night's state per department, indicators, findings — in words
    assert "民政" in page and "人口基础信息" in page and "参保率" in page and "新增" in page
    night = f"nights/{D}/"
    for href in (night + "report.html", night + "kpis.csv", night + "mismatches.csv",
                 night + "worklists/" + quote(f"{towns[0]}.xlsx"), "nights/data_docs/index.html", "outbox/"):
        assert f'href="{href}"' in page, href
        got = client.get(href)
        assert got.status_code == 200, href
    assert client.get(night + "kpis.csv").headers["content-type"].startswith("text/csv")
    assert "attachment" in client.get(night + "mismatches.csv").headers["content-disposition"]
    # the report's own links (receipts, Data Docs) resolve inside the page
    report = client.get(night + "report.html").text
    for link in ("../data_docs/index.html",):
        assert f'href="{link}"' in report
    assert client.get(f"nights/{D}/../data_docs/index.html").status_code == 200
    receipts = client.get("outbox/").text
    first = receipts.split('href="', 1)[1].split('"', 1)[0]
    assert client.get("outbox/" + first).status_code == 200 and "回执" in client.get("outbox/" + first).text
    # nothing else: missing files and escapes are 404
    assert client.get(night + "nothing.csv").status_code == 404
    assert client.get(night + "..%2F..%2Foutbox").status_code == 404
    assert client.get("outbox/..%2Freports%2F" + str(D) + "%2Fkpis.csv").status_code == 404
    assert client.get("nights/data_docs/..%2F..%2Foutbox").status_code == 404


def test_town_case_worker_reads_only_the_own_town(published, monkeypatch):
    settings, url, towns = published
    own, other = towns[0], towns[1]
    client = _client(SimpleNamespace(roles=[SimpleNamespace(name="Viewer"), SimpleNamespace(name=f"镇街:{own}")]),
                     monkeypatch, settings, url)
    page = client.get("/").text
    assert own in page and other not in page and "mismatches.csv" not in page
    assert client.get(f"nights/{D}/worklists/{quote(own)}.xlsx").status_code == 200
    for path in (f"nights/{D}/worklists/{quote(other)}.xlsx", f"nights/{D}/report.html", f"nights/{D}/kpis.csv",
                 f"nights/{D}/mismatches.csv", "nights/data_docs/index.html", "outbox/", "latest"):
        assert client.get(path).status_code == 403, path
    # a user with no role of either kind reads nothing
    nobody = _client(SimpleNamespace(roles=[SimpleNamespace(name="Viewer")]), monkeypatch, settings, url)
    assert nobody.get(f"nights/{D}/worklists/{quote(own)}.xlsx").status_code == 403


AIRFLOW_CHECK = r'''
import json, sys
from urllib.parse import quote
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app, get_auth_manager

night, own, other = sys.argv[1:4]
client = TestClient(create_app(), follow_redirects=False)
manager = get_auth_manager()
with manager.flask_app.app_context():
    sm = manager.security_manager
    def user(name, role):
        found = sm.find_role(role) or sm.add_role(role)
        made = sm.find_user(username=name) or sm.add_user(name, name, "x", f"{name}@example.org", [found], "pw-" + name)
        return {"Authorization": "Bearer " + manager.generate_jwt(made)}
    analyst, town = user("analyst", "Analyst"), user("caseworker", "镇街:" + own)
def get(path, headers=None):
    return client.get("/crosscheck/" + path, headers=headers or {}).status_code
out = {
    "manager": type(manager).__name__,
    "anonymous": get(""),
    "analyst": {p: get(p, analyst) for p in (f"nights/{night}/report.html", f"nights/{night}/kpis.csv",
                f"nights/{night}/mismatches.csv", f"nights/{night}/worklists/{quote(other)}.xlsx",
                "nights/data_docs/index.html", "outbox/", f"nights/{night}/missing.csv")},
    "town": {p: get(p, town) for p in (f"nights/{night}/worklists/{quote(own)}.xlsx",
             f"nights/{night}/worklists/{quote(other)}.xlsx", f"nights/{night}/report.html", "")},
}
print(json.dumps(out))
'''


def test_report_page_in_airflow_with_fab_roles(published, tmp_path):
    """Airflow's API server app with the FAB auth manager: real users, roles and tokens."""
    settings, url, towns = published
    home = tmp_path / "airflow"
    home.mkdir()
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
           "AIRFLOW__CORE__AUTH_MANAGER": "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
           "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING", "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
           "CROSSCHECK_REPORTS": str(settings.reports_dir), "CROSSCHECK_OUTBOX": str(settings.outbox_dir),
           "CROSSCHECK_WAREHOUSE_URL": url}
    subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True,
                   timeout=300)
    done = subprocess.run([sys.executable, "-c", AIRFLOW_CHECK, str(D), towns[0], towns[1]], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["manager"] == "FabAuthManager"
    assert out["anonymous"] == 401
    missing = f"nights/{D}/missing.csv"
    assert {p: s for p, s in out["analyst"].items() if p != missing} == {
        p: 200 for p in out["analyst"] if p != missing}
    assert out["analyst"][missing] == 404
    town = out["town"]
    assert town[f"nights/{D}/worklists/{quote(towns[0])}.xlsx"] == 200
    assert town[f"nights/{D}/worklists/{quote(towns[1])}.xlsx"] == 403
    assert town[f"nights/{D}/report.html"] == 403
    assert town[""] == 200


def test_data_docs_read_offline_with_file_date_and_results(published):
    """Every validation has the project's summary beside GX's page; the index names file, date, pass/fail;
    GX's pages carry neither their script (it needs jQuery from the web) nor the newsletter footer."""
    import re
    import shutil

    settings, _, _ = published
    docs = settings.reports_dir / "data_docs"
    index = (docs / "index.html").read_text(encoding="utf-8")
    rows = re.findall(r"<tr><td><a href='([^']+)'>([^<]+)</a>[^<]*</td><td>([^<]*)</td><td[^>]*>(通过|未通过)</td>", index)
    gx_pages = [p for p in docs.glob("*.html") if p.name != "index.html" and not p.name.endswith(".summary.html")]
    assert len(rows) == len(gx_pages)  # each validation with its summary
    names = {name for _, name, _, _ in rows}
    assert any(n.startswith("residents_") for n in names), names
    assert any(n.startswith("比对规则") for n in names)
    assert all(day == str(D) for _, name, day, _ in rows if not name.startswith("比对规则")) and rows
    summary = (docs / rows[0][0]).read_text(encoding="utf-8")
    assert "检查项" in summary and re.search(r">(通过|未通过)</td><td class='num'>\d*</td>", summary)
    counted = [p for p in docs.glob("*-warnings.summary.html")]
    assert counted and re.search(r"<td class='num'>\d+</td><td class='num'>\d+</td>",
                                 counted[0].read_text(encoding="utf-8"))
    for page in docs.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text.lower() and "newsletter" not in text.lower(), page.name
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None and not os.environ.get("CI"):
        return
    from playwright.sync_api import sync_playwright

    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        for name in ("index.html", rows[0][0], sorted(docs.glob("*-warnings.html"))[0].name):
            page.goto((docs / name).as_uri())
        browser.close()
    assert errors == []
