"""Returned work lists (issue 14, classes 2 and 3): verdicts only from the town that owns the finding,
tamper evidence by the keyed digest, the feedback receipt, and bad files that never stop the night."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from helpers import fill_worklist, make_settings
from openpyxl import load_workbook

from crosscheck.feedback import KEY_ENV, SEAL_SHEET, _digest, apply_feedback, feedback_key
from crosscheck.outputs import WORKLIST_COLUMNS
from crosscheck.pipeline import run_night
from crosscheck.worklists import write_worklists

AS_OF = date(2026, 11, 28)
HEADERS = dict(WORKLIST_COLUMNS)
OWN, OTHER = "太平镇", "侣俸镇"


def _id(n: int) -> str:
    return f"5001511990{n:07d}1"[:18]


def _add(conn, rule, severity, town, name, id_number, status="new", as_of=AS_OF) -> int:
    finding_id = conn.execute(
        "INSERT INTO mart.findings (rule_code, subject_key, period, severity, id_number, name, town, village,"
        " departments, detail, amount, data_hash, status, first_seen, last_seen)"
        " VALUES (%s, %s, '', %s, %s, %s, %s, '坪漆村', '人社', '死亡后仍发放养老金', 120, 'h', %s, %s, %s)"
        " RETURNING finding_id",
        (rule, id_number, severity, id_number, name, town, status, as_of, as_of)).fetchone()[0]
    conn.execute("INSERT INTO mart.finding_nights (as_of, finding_id, status) VALUES (%s, %s, %s)",
                 (as_of, finding_id, status))
    return finding_id


@pytest.fixture
def night(fresh_warehouse, tmp_path):
    """Two towns: three findings of 太平镇, 79 critical ones of 侣俸镇; the night's work lists written.
    Yields (warehouse, settings, {key: finding_id}, other town's ids, 太平镇's list)."""
    with fresh_warehouse.transaction() as conn:
        ids = {"ss01": _add(conn, "SS01", "high", OWN, "张三", _id(1)),
               "ss06": _add(conn, "SS06", "critical", OWN, "李四", _id(2)),
               "id03": _add(conn, "ID03", "high", OWN, "王五", _id(3))}
        foreign = [_add(conn, "SS06", "critical", OTHER, f"赵{n}", _id(100 + n)) for n in range(79)]
    settings = make_settings(tmp_path)
    write_worklists(fresh_warehouse, AS_OF, tmp_path / "out", settings)
    return fresh_warehouse, settings, ids, foreign, tmp_path / "out" / "worklists" / f"{OWN}.xlsx"


def _table(book, title="社保扶贫"):
    sheet = book[title]
    header = next(r for r in sheet.iter_rows() if r[0].value == HEADERS["finding_id"])
    return sheet, header[0].row, [c.value for c in header]


def _stored(w) -> dict[int, str]:
    with w.connect() as conn:
        return dict(conn.execute("SELECT finding_id, verdict FROM mart.feedback").fetchall())


def _receipt(result) -> tuple[dict, str]:
    html = result.receipt.read_text(encoding="utf-8")
    return json.loads(result.receipt.with_suffix(".json").read_text(encoding="utf-8")), html


def test_own_verdicts_are_taken_with_a_receipt(night):
    w, settings, ids, _, path = night
    result = apply_feedback(w, fill_worklist(path, {ids["ss01"]: "不属实", ids["ss06"]: "属实"}), settings)
    assert (result.status, result.stored, result.refused) == ("accepted", 2, 0)
    assert _stored(w) == {ids["ss01"]: "不属实", ids["ss06"]: "属实"}
    data, html = _receipt(result)
    assert result.receipt.parent == settings.outbox_dir / "feedback"
    assert (data["town"], data["as_of"], data["taken"], data["refused"], data["unanswered"]) == (OWN, "2026-11-28", 2, 0, 1)
    assert {r["finding_id"]: r["reason"] for r in data["rows"]} == {str(ids["ss01"]): "已采用", str(ids["ss06"]): "已采用"}
    assert "核查结论回执" in html and "已采用" in html and "500151" in html
    for text in (html, json.dumps(data, ensure_ascii=False)):  # masked only
        assert _id(1) not in text and _id(2) not in text
    assert "500151********" in html


def test_other_towns_ids_are_refused_row_by_row(night):
    """The attack of issue 14: 太平镇's list edited to hold 79 findings of 侣俸镇 marked 不属实."""
    w, settings, ids, foreign, path = night
    book = load_workbook(path)
    sheet, _, headers = _table(book)
    for n, finding_id in enumerate(foreign):
        row = dict.fromkeys(headers, "")
        row.update({HEADERS["finding_id"]: finding_id, HEADERS["rule_code"]: "SS06", HEADERS["name"]: f"赵{n}",
                    HEADERS["id_number"]: _id(100 + n)[:6] + "********" + _id(100 + n)[-4:],
                    HEADERS["town"]: OWN, HEADERS["verdict"]: "不属实"})
        sheet.append([row[h] for h in headers])
    book.save(path)
    fill_worklist(path, {ids["ss06"]: "属实"})
    result = apply_feedback(w, path, settings)
    assert (result.status, result.stored, result.taken, result.refused) == ("accepted", 1, 1, 79)
    assert _stored(w) == {ids["ss06"]: "属实"}
    data, html = _receipt(result)
    refused = [r for r in data["rows"] if not r["taken"]]
    assert {int(r["finding_id"]) for r in refused} == set(foreign)
    assert all("不在本清单" in r["reason"] for r in refused)
    assert "未采用" in html and "79" in html


def test_edited_rule_id_or_name_is_refused(night):
    w, settings, ids, _, path = night
    fill_worklist(path, {ids["ss01"]: "不属实", ids["ss06"]: "不属实", ids["id03"]: "不属实"})
    book = load_workbook(path)
    sheet, header, headers = _table(book)
    rows = {sheet.cell(row=r, column=1).value: r for r in range(header + 1, sheet.max_row + 1)}
    sheet.cell(row=rows[ids["ss01"]], column=headers.index(HEADERS["rule_code"]) + 1, value="SS07")
    sheet.cell(row=rows[ids["ss06"]], column=headers.index(HEADERS["name"]) + 1, value="李四四")
    identity, h2, headers2 = _table(book, "基础信息")
    row = next(r for r in range(h2 + 1, identity.max_row + 1) if identity.cell(row=r, column=1).value == ids["id03"])
    identity.cell(row=row, column=headers2.index(HEADERS["id_number"]) + 1, value="500151********9999")
    book.save(path)
    result = apply_feedback(w, path, settings)
    assert (result.stored, result.refused) == (0, 3)
    reasons = {int(r.finding_id): r.reason for r in result.rows}
    assert HEADERS["rule_code"] in reasons[ids["ss01"]] and HEADERS["name"] in reasons[ids["ss06"]]
    assert HEADERS["id_number"] in reasons[ids["id03"]]
    assert _stored(w) == {}


def test_two_verdicts_for_one_finding_are_both_refused(night):
    w, settings, ids, _, path = night
    fill_worklist(path, {ids["ss01"]: "属实", ids["ss06"]: "属实"})
    book = load_workbook(path)
    sheet, header, headers = _table(book)
    row = next(r for r in range(header + 1, sheet.max_row + 1) if sheet.cell(row=r, column=1).value == ids["ss01"])
    copy = [c.value for c in sheet[row]]
    copy[headers.index(HEADERS["verdict"])] = "不属实"
    sheet.append(copy)
    book.save(path)
    result = apply_feedback(w, path, settings)
    assert _stored(w) == {ids["ss06"]: "属实"}  # not silently the last one
    dup = [r for r in result.rows if int(r.finding_id) == ids["ss01"]]
    assert len(dup) == 2 and all(not r.taken and "2条核查结论" in r.reason for r in dup)


def test_bad_numbers_and_verdicts_are_refused_rows(night):
    w, settings, ids, _, path = night
    book = load_workbook(path)
    sheet, _, headers = _table(book)
    for value in ("1e400", 10**30, "abc", -5):
        row = dict.fromkeys(headers, "")
        row.update({HEADERS["finding_id"]: value, HEADERS["verdict"]: "不属实"})
        sheet.append([row[h] for h in headers])
    book.save(path)
    fill_worklist(path, {ids["ss06"]: "假的"})
    result = apply_feedback(w, path, settings)
    assert (result.status, result.stored, result.refused) == ("accepted", 0, 5)
    assert [r.reason for r in result.rows if r.finding_id != str(ids["ss06"])] == ["问题编号无效"] * 4
    assert "核查结论不是" in next(r.reason for r in result.rows if r.finding_id == str(ids["ss06"]))


def test_finding_no_longer_on_the_night_is_refused(night):
    w, settings, ids, _, path = night
    with w.transaction() as conn:  # the night was rerun meanwhile and no longer has it
        conn.execute("DELETE FROM mart.finding_nights WHERE finding_id = %s", (ids["ss01"],))
    result = apply_feedback(w, fill_worklist(path, {ids["ss01"]: "不属实", ids["ss06"]: "属实"}), settings)
    assert _stored(w) == {ids["ss06"]: "属实"}
    assert "已不是" in next(r.reason for r in result.rows if int(r.finding_id) == ids["ss01"])


def _seal(path):
    book = load_workbook(path)
    return book, book[SEAL_SHEET]


def test_forged_or_missing_digest_refuses_the_whole_file(night, tmp_path):
    w, settings, ids, foreign, path = night
    fill_worklist(path, {ids["ss01"]: "不属实"})
    variants = {}
    # the hidden sheet's ids extended with another town's findings, digest left as it was
    book, seal = _seal(path)
    seal.append([foreign[0]])
    variants["ids"] = book
    # the town changed
    book, seal = _seal(path)
    seal["B1"] = json.dumps(OTHER, ensure_ascii=False)
    variants["town"] = book
    # a digest recomputed with a guessed key
    book, seal = _seal(path)
    ids_signed = [c.value for c in seal["A"][1:]] + [foreign[0]]
    seal.append([foreign[0]])
    seal["D1"] = _digest(b"guess", OWN, AS_OF.isoformat(), ids_signed)
    variants["forged"] = book
    # the hidden sheet removed
    book, _ = _seal(path)
    del book[SEAL_SHEET]
    variants["missing"] = book
    for name, book in variants.items():
        forged = tmp_path / f"{name}.xlsx"
        book.save(forged)
        result = apply_feedback(w, forged, settings)
        assert (result.status, result.stored) == ("refused", 0), name
        data, html = _receipt(result)
        assert data["status"] == "refused" and ("校验" in data["reason"]) and "整份文件未采用" in html, name
    # a list signed with another deployment's key
    other = make_settings(tmp_path / "elsewhere")
    assert feedback_key(other) != feedback_key(settings)
    write_worklists(w, AS_OF, tmp_path / "elsewhere-out", other)
    result = apply_feedback(w, fill_worklist(tmp_path / "elsewhere-out" / "worklists" / f"{OWN}.xlsx",
                                             {ids["ss01"]: "不属实"}), settings)
    assert result.status == "refused"
    assert _stored(w) == {}


def test_key_file_is_private_and_the_environment_wins(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    settings = make_settings(tmp_path)
    key = feedback_key(settings)
    path = settings.var_dir / "feedback.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(key) == 64
    assert feedback_key(settings) == key  # created once
    monkeypatch.setenv(KEY_ENV, "a deployment secret")
    assert feedback_key(settings) == b"a deployment secret"


# ------------------------------------------------------------------ bad files never stop the night


def _bomb(path: Path) -> None:
    """An .xlsx-shaped zip whose one member inflates 1000-fold (a real bomb nests this)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/workbook.xml", "<workbook/>")
        zf.writestr("xl/worksheets/sheet1.xml", b"\0" * (16 << 20))


def _damaged_sheet(good: Path, path: Path) -> None:
    """A real work list whose first sheet's XML is cut off: it opens, and fails while read."""
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data[: len(data) // 2] if info.filename == "xl/worksheets/sheet1.xml" else data)


def test_bad_feedback_files_are_moved_aside_and_the_night_completes(night, tmp_path):
    w, settings, ids, _, path = night
    folder = settings.feedback_dir
    folder.mkdir()
    good = fill_worklist(path, {ids["ss06"]: "属实"}, out=folder / f"{OWN}.xlsx")
    (folder / "truncated.xlsx").write_bytes(good.read_bytes()[:2000])
    _bomb(folder / "bomb.xlsx")
    _damaged_sheet(good, folder / "damaged.xlsx")
    (folder / "random.xlsx").write_bytes(os.urandom(4096))
    (folder / "notes.txt").write_text("随便写的", encoding="utf-8")
    (folder / "~$太平镇.xlsx").write_bytes(b"excel lock file")  # Excel's, left alone
    bad = ["bomb.xlsx", "damaged.xlsx", "notes.txt", "random.xlsx", "truncated.xlsx"]
    landing = tmp_path / "landing"
    landing.mkdir()
    result = run_night(landing, AS_OF, warehouse_url=w.url, out_dir=tmp_path / "night", settings=settings)
    assert result.compare is not None and (tmp_path / "night" / "mismatches.csv").exists()
    assert _stored(w) == {ids["ss06"]: "属实"}
    assert sorted(p.name for p in (folder / "rejected").iterdir()) == bad
    assert {p.name for p in folder.iterdir()} == {"rejected", f"{OWN}.xlsx", "~$太平镇.xlsx"}
    receipts = {json.loads(p.read_text(encoding="utf-8"))["file_name"]: json.loads(p.read_text(encoding="utf-8"))
                for p in (settings.outbox_dir / "feedback").glob("*.json")}
    assert sorted(receipts) == sorted([*bad, f"{OWN}.xlsx"])
    assert all(receipts[name]["status"] == "refused" and receipts[name]["reason"] for name in bad)
    assert "压缩" in receipts["bomb.xlsx"]["reason"] and ".xlsx" in receipts["notes.txt"]["reason"]
    assert receipts[f"{OWN}.xlsx"]["taken"] == 1
    # the next night reads the folder again without tripping over anything
    run_night(landing, AS_OF + timedelta(days=1), warehouse_url=w.url, out_dir=tmp_path / "night2", settings=settings)


def _cli(*args, env):
    return subprocess.run([sys.executable, "-m", "crosscheck.cli", "feedback", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=300)


def test_cli_answers_bad_input_with_one_line_and_exit_2(fresh_warehouse, tmp_path):
    env = {"CROSSCHECK_VAR": str(tmp_path / "var"), "CROSSCHECK_OUTBOX": str(tmp_path / "outbox")}
    random = tmp_path / "random.xlsx"
    random.write_bytes(os.urandom(10_000))
    bomb = tmp_path / "bomb.xlsx"
    _bomb(bomb)
    folder = tmp_path / "a-folder.xlsx"
    folder.mkdir()
    cases = {"missing": str(tmp_path / "nope.xlsx"), "number": "9" * 400, "folder": str(folder),
             "random": str(random), "bomb": str(bomb)}
    for name, arg in cases.items():
        result = _cli(arg, "--warehouse", fresh_warehouse.url, env=env)
        assert result.returncode == 2, (name, result.stderr[-2000:])
        err = result.stderr.strip()
        assert "\n" not in err and "Traceback" not in err and err.startswith("crosscheck: "), (name, err)
    assert len(list((tmp_path / "outbox" / "feedback").glob("*.json"))) == 2  # random and bomb got receipts
    shutil.rmtree(folder)


def test_cli_stores_a_good_list(night, tmp_path):
    w, settings, ids, _, path = night
    env = {"CROSSCHECK_VAR": str(settings.var_dir), "CROSSCHECK_OUTBOX": str(settings.outbox_dir)}
    result = _cli(str(fill_worklist(path, {ids["ss01"]: "属实"})), "--warehouse", w.url, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 verdicts taken" in result.stdout and _stored(w) == {ids["ss01"]: "属实"}


def test_receipt_holds_no_full_id_even_when_the_sheet_does(night):
    """A case worker typed a full ID into the ID column of a foreign row: the receipt masks it."""
    w, settings, ids, foreign, path = night
    book = load_workbook(path)
    sheet, _, headers = _table(book)
    row = dict.fromkeys(headers, "")
    row.update({HEADERS["finding_id"]: foreign[0], HEADERS["id_number"]: _id(100), HEADERS["verdict"]: "不属实"})
    sheet.append([row[h] for h in headers])
    row.update({HEADERS["finding_id"]: _id(101), HEADERS["verdict"]: "不属实"})  # an ID as 问题编号
    sheet.append([row[h] for h in headers])
    row.update({HEADERS["finding_id"]: foreign[1], HEADERS["verdict"]: _id(102)})  # an ID as 核查结论
    sheet.append([row[h] for h in headers])
    sheet.title = _id(103)  # and as the sheet's name
    book.save(path)
    result = apply_feedback(w, path, settings)
    data, html = _receipt(result)
    assert result.refused == 3
    for n in (100, 101, 102, 103):
        assert _id(n) not in html and _id(n) not in json.dumps(data), n


