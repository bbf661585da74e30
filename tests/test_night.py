"""The whole night through the command line, on a generated district, against real PostgreSQL.

Findings must equal the generator's truth.csv (precision and recall 1.00 for every rule), a rerun
must leave warehouse and outputs identical, and failures must exit non-zero with one line.
"""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import throwaway_warehouse

from crosscheck import warehouse as wh
from crosscheck.catalogue import RULES

AS_OF = "2026-11-28"
pytestmark = pytest.mark.xdist_group("night")  # one worker builds the night once for the module


def crosscheck(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "crosscheck.cli", *args], capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"crosscheck {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def district(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("district")
    crosscheck("generate", "--out", str(out), "--persons", "3000", "--seed", "11", "--date", AS_OF)
    return out


@pytest.fixture(scope="module")
def night(district, warehouse_server, tmp_path_factory):
    """One database, the night run once; yields (url, env, out dir)."""
    var = tmp_path_factory.mktemp("var")
    env = {"CROSSCHECK_VAR": str(var)}
    out = var / "out"
    with throwaway_warehouse(warehouse_server) as w:
        crosscheck("run", "--landing", str(district / "landing"), "--date", AS_OF, "--warehouse", w.url,
                   "--out", str(out), env=env)
        yield w.url, env, out


def _keys(path: Path, status_filter=None) -> set[tuple[str, str, str]]:
    with path.open(encoding="utf-8-sig") as f:
        return {(r["rule_code"], r["id_number"], r.get("period") or "") for r in csv.DictReader(f)
                if status_filter is None or r["status"] in status_filter}


def test_findings_equal_the_planted_truth(district, night):
    _, _, out = night
    truth = _keys(district / "truth.csv")
    found = _keys(out / "mismatches.csv")
    report = []
    for code in RULES:
        t = {k for k in truth if k[0] == code}
        f = {k for k in found if k[0] == code}
        precision = len(t & f) / len(f) if f else 1.0
        recall = len(t & f) / len(t) if t else 1.0
        report.append((code, len(t), len(f), precision, recall))
    assert all(t > 0 for _, t, _, _, _ in report), "every rule must be planted"
    bad = [r for r in report if r[3] != 1.0 or r[4] != 1.0]
    assert not bad, f"(rule, planted, found, precision, recall): {bad}"


def test_outputs_follow_the_interface(night):
    _, _, out = night
    raw = (out / "mismatches.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    header = raw[3:].split(b"\r\n" if b"\r\n" in raw else b"\n", 1)[0].decode()
    assert header == ("rule_code,severity,id_number,name,town,village,departments,period,detail,amount,status,"
                      "first_seen,last_seen")
    with (out / "kpis.csv").open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["indicator", "scope", "numerator", "denominator", "value"]
    scopes = {r["scope"] for r in rows}
    assert "district" in scopes and "太平镇" in scopes
    assert {"参保率", "代缴率", "待遇应享尽享率"} <= {r["indicator"] for r in rows}
    assert (out / "report.html").stat().st_size > 10_000
    assert list((out / "worklists").glob("*.xlsx"))


def _fingerprint(url: str, out: Path) -> dict:
    """Contents of every warehouse table that a rerun could touch, and of every output file."""
    tables = {}
    with wh.Warehouse(url).connect() as conn:
        names = conn.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
            " AND table_schema IN ('core', 'staging', 'mart', 'ingest') ORDER BY 1").fetchall()
        for (name,) in names:
            # received_at and run times are wall-clock; everything else must be identical
            rows = conn.execute(f"SELECT to_jsonb(t) - 'received_at' - 'started_at' - 'finished_at' "  # noqa: S608
                                f"FROM {name} t").fetchall()
            tables[name] = sorted(str(r[0]) for r in rows)
    files = {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(out.rglob("*")) if p.is_file() and p.suffix in (".csv", ".html")}
    return {"tables": tables, "files": files}


def test_rerunning_the_night_changes_nothing(district, night):
    url, env, out = night
    before = _fingerprint(url, out)
    for _ in range(2):
        crosscheck("run", "--landing", str(district / "landing"), "--date", AS_OF, "--warehouse", url,
                   "--out", str(out), env=env)
    after = _fingerprint(url, out)
    assert after["tables"].keys() == before["tables"].keys()
    changed = [t for t in before["tables"] if before["tables"][t] != after["tables"][t]]
    assert changed == []
    assert after["files"] == before["files"]


def test_missing_landing_folder_fails_with_one_line(tmp_path):
    result = crosscheck("run", "--landing", str(tmp_path / "nope"), "--date", AS_OF, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr


def test_unreachable_warehouse_fails_with_one_line(tmp_path):
    (tmp_path / "landing").mkdir()
    result = crosscheck("run", "--landing", str(tmp_path / "landing"), "--date", AS_OF, "--warehouse",
                        "postgresql://nobody@127.0.0.1:1/none", check=False)
    assert result.returncode == 2
    assert "cannot open the warehouse" in result.stderr and result.stderr.strip().count("\n") == 0


def test_returned_worklist_in_the_feedback_folder_is_stored(district, night):
    from openpyxl import load_workbook

    url, env, out = night
    path = sorted((out / "worklists").glob("*.xlsx"))[0]
    book = load_workbook(path)
    filled = 0
    for sheet in (s for s in book.worksheets if s.sheet_state == "visible"):  # not the hidden digest
        header = next(r[0].row for r in sheet.iter_rows(max_row=40) if r[0].value == "问题编号")
        verdict = [c.value for c in sheet[header]].index("核查结论") + 1
        for row in range(header + 1, sheet.max_row + 1):
            if sheet.cell(row=row, column=1).value is not None:
                sheet.cell(row=row, column=verdict, value="属实")
                filled += 1
    feedback = Path(env["CROSSCHECK_VAR"]) / "feedback"
    feedback.mkdir(exist_ok=True)
    book.save(feedback / path.name)
    crosscheck("run", "--landing", str(district / "landing"), "--date", AS_OF, "--warehouse", url,
               "--out", str(out), env=env)
    with wh.Warehouse(url).connect() as conn:
        stored = conn.execute("SELECT count(*) FROM mart.feedback WHERE verdict = '属实'").fetchone()[0]
    assert filled > 0 and stored == filled


def test_data_docs_are_offline_and_hold_no_id_numbers(district, night):
    _, env, out = night
    docs = Path(env["CROSSCHECK_VAR"]) / "reports" / "data_docs"
    pages = sorted(docs.glob("*.html"))
    names = {p.stem.split("-")[0] for p in pages}
    assert {"index", "residents", "pension_payments", "rules"} <= names
    ids = {r["id_number"] for r in csv.DictReader((district / "truth.csv").open(encoding="utf-8-sig"))}
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text, page.name
        assert not any(i in text for i in ids if len(i) == 18), page.name
    assert "data_docs/index.html" in (out / "report.html").read_text(encoding="utf-8")
