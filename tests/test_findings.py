"""Findings with a life (new → open → resolved), feedback, idempotent reruns, stale data, outputs, GX."""

from __future__ import annotations

import csv
from datetime import date

import pytest
from test_rules import District, drop, new_database

from crosscheck.compare import (
    KPI_COLUMNS,
    MISMATCH_COLUMNS,
    WORKLIST_COLUMNS,
    WORKLIST_SHEETS,
    apply_feedback,
    run_compare,
    write_kpis,
    write_mismatches,
)

N1, N2, N3 = date(2026, 11, 27), date(2026, 11, 28), date(2026, 11, 29)
DIED = date(2026, 8, 1)


@pytest.fixture
def db(warehouse_server):
    w = new_database(warehouse_server)
    yield w
    drop(w)


def statuses(w, as_of: date) -> dict[str, str]:
    """{id_number: status} of the SS07 findings reported on a night."""
    with w.connect() as conn:
        return dict(conn.execute(
            "SELECT m.id_number, n.status FROM mart.finding_nights n JOIN mart.findings m USING (finding_id) "
            "WHERE n.as_of = %s AND m.rule_code = 'SS07'", (as_of,)).fetchall())


def mart_contents(w) -> dict[str, list]:
    tables = {
        "findings": "SELECT * FROM mart.findings ORDER BY finding_id",
        "finding_nights": "SELECT * FROM mart.finding_nights ORDER BY as_of, finding_id",
        "indicators": "SELECT * FROM mart.indicators ORDER BY as_of, indicator, scope",
        "freshness": "SELECT * FROM mart.freshness ORDER BY as_of, extract",
        "rule_checks": "SELECT * FROM mart.rule_checks ORDER BY as_of, rule_code",
        "runs": "SELECT as_of, status FROM mart.runs ORDER BY as_of",
    }
    with w.connect() as conn:
        return {name: conn.execute(q).fetchall() for name, q in tables.items()}


def three_nights() -> tuple[District, dict[str, str]]:
    """SS07 (deceased, still 正常参保) over three nights: A stays, B and E go away on night 2 and come
    back on night 3 (E with another death date: its data changed), C appears on night 2."""
    d = District()
    people = {k: d.age(70, as_of=N1) for k in "ABE"}
    people["C"] = d.age(70, as_of=N2)
    d.copy_rows("residents", N1, N2)
    d.copy_rows("residents", N2, N3)
    stopped = dict(enrol_status="终止参保", benefit_status="终止发放")
    for night in (N1, N2, N3):
        for k, pid in people.items():
            if k == "C" and night == N1:
                continue
            d.death(pid, date(2026, 8, 2) if (k == "E" and night == N3) else DIED, as_of=night)
            d.enrol(pid, as_of=night, **(stopped if (k in "BE" and night == N2) else {}))
    return d, people


def test_new_open_resolved_and_back(db, tmp_path):
    d, p = three_nights()
    d.load(db)
    r1 = run_compare(db, N1, gx=False)
    r2 = run_compare(db, N2, gx=False)
    assert statuses(db, N1) == {p["A"]: "new", p["B"]: "new", p["E"]: "new"}
    assert statuses(db, N2) == {p["A"]: "open", p["B"]: "resolved", p["E"]: "resolved", p["C"]: "new"}
    assert (r1.new, r1.open, r1.resolved) == (3, 0, 0) and (r2.new, r2.open, r2.resolved) == (1, 1, 2)
    run_compare(db, N3, gx=False)
    # a resolved finding that comes back is new again (no verdict given)
    assert statuses(db, N3) == {p["A"]: "open", p["B"]: "new", p["E"]: "new", p["C"]: "open"}
    with db.connect() as conn:
        row = conn.execute("SELECT status, first_seen, last_seen, resolved_on FROM mart.findings "
                           "WHERE rule_code = 'SS07' AND id_number = %s", (p["A"],)).fetchone()
    assert row == ("open", N1, N3, None)

    assert write_mismatches(db, N2, tmp_path / "mismatches.csv") == 4
    rows = list(csv.DictReader(open(tmp_path / "mismatches.csv", encoding="utf-8-sig")))
    by_id = {r["id_number"]: r for r in rows}
    assert by_id[p["B"]]["status"] == "resolved"
    assert (by_id[p["B"]]["first_seen"], by_id[p["B"]]["last_seen"]) == ("2026-11-27", "2026-11-27")
    assert (by_id[p["A"]]["first_seen"], by_id[p["A"]]["last_seen"]) == ("2026-11-27", "2026-11-28")


def write_worklist(path, answers: dict[int, str]) -> None:
    """A returned work list in the agreed layout (finding_id hidden), verdicts filled in."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = WORKLIST_SHEETS["pension"]
    sheet.append([header for _, header in WORKLIST_COLUMNS])
    sheet.column_dimensions["A"].hidden = True
    keys = [k for k, _ in WORKLIST_COLUMNS]
    for finding_id, verdict in answers.items():
        row = dict.fromkeys(keys, "")
        row.update(finding_id=finding_id, rule_code="SS07", verdict=verdict, note="已核实，人员健在")
        sheet.append([row[k] for k in keys])
    book.create_sheet(WORKLIST_SHEETS["identity"]).append([header for _, header in WORKLIST_COLUMNS])
    book.save(path)


def test_feedback_not_true_suppresses_new_unless_data_changed(db, tmp_path):
    d, p = three_nights()
    d.load(db)
    run_compare(db, N1, gx=False)
    run_compare(db, N2, gx=False)
    run_compare(db, N3, gx=False)
    assert statuses(db, N3)[p["B"]] == "new"
    with db.connect() as conn:
        ids = dict(conn.execute("SELECT id_number, finding_id FROM mart.findings WHERE rule_code = 'SS07'"))
    xlsx = tmp_path / "太平镇.xlsx"
    write_worklist(xlsx, {ids[p["B"]]: "不属实", ids[p["E"]]: "不属实", ids[p["A"]]: "属实"})
    assert apply_feedback(db, xlsx) == 3
    assert apply_feedback(db, xlsx) == 3  # the same file again: stored once
    with db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM mart.feedback").fetchone()[0] == 3
    # Rerun night 3: B and E came back, and the 不属实 verdicts were given on the data they have now.
    run_compare(db, N3, gx=False)
    assert statuses(db, N3) == {p["A"]: "open", p["B"]: "open", p["E"]: "open", p["C"]: "open"}


def test_feedback_on_old_data_does_not_suppress_changed_finding(db, tmp_path):
    d, p = three_nights()
    d.load(db)
    run_compare(db, N1, gx=False)
    run_compare(db, N2, gx=False)
    with db.connect() as conn:
        ids = dict(conn.execute("SELECT id_number, finding_id FROM mart.findings WHERE rule_code = 'SS07'"))
    xlsx = tmp_path / "worklist.xlsx"
    write_worklist(xlsx, {ids[p["B"]]: "不属实", ids[p["E"]]: "不属实"})
    assert apply_feedback(db, xlsx) == 2
    run_compare(db, N3, gx=False)
    got = statuses(db, N3)
    assert got[p["B"]] == "open"  # back with the same data: not new again
    assert got[p["E"]] == "new"   # back with another death date: its data changed


def test_rerun_is_idempotent(db):
    d, _ = three_nights()
    d.load(db)
    run_compare(db, N1, gx=False)
    run_compare(db, N2, gx=False)
    once = mart_contents(db)
    for night in (N2, N2, N1):
        run_compare(db, night, gx=False)
    assert mart_contents(db) == once


def stale_district() -> tuple[District, dict[str, str]]:
    d = District()
    p = {"enrolled": d.age(30), "not_enrolled": d.age(30), "other_town": d.age(30, town="平滩镇", village="石梁村")}
    for pid in p.values():
        d.poor(pid)
    d.enrol(p["enrolled"], subsidy_amount_year=100)
    d.enrol(p["other_town"], subsidy_amount_year=100)
    d.pay(p["enrolled"], "城乡居民养老保险代缴", date(2026, 3, 1), 100, as_of=date(2026, 11, 20))
    d.pay(p["other_town"], "城乡居民养老保险代缴", date(2026, 3, 1), 100, as_of=date(2026, 11, 20))
    # a formula-looking ID and name in a quarantined row
    d.quarantined("enrollment", "ID01", "=HYPERLINK(\"x\")", {"name": "@张三"})
    return d, p


def test_stale_department_flagged_and_outputs(db, tmp_path):
    d, p = stale_district()
    d.load(db, missing=("training",))
    result = run_compare(db, N2, gx=True)
    # freshness: finance sent on 11-20 (8 days old), training never received
    with db.connect() as conn:
        fresh = {r[0]: r[1:] for r in conn.execute(
            "SELECT extract, data_as_of, age_days, stale FROM mart.freshness WHERE as_of = %s", (N2,))}
        checks = conn.execute("SELECT rule_code, found, gx_count, agrees FROM mart.rule_checks WHERE as_of = %s",
                              (N2,)).fetchall()
    assert fresh["payments"] == (date(2026, 11, 20), 8, True)
    assert fresh["training"] == (None, None, True)
    assert fresh["residents"] == (N2, 0, False)
    assert any(s.startswith("财政/payments") for s in result.stale)
    assert any(s.startswith("人社/training") for s in result.stale)
    # GX ran every rule's SQL and counted what the comparison materialised
    assert len(checks) == 21 and all(agrees for *_, agrees in checks), checks
    assert not result.warnings, result.warnings

    mismatches, kpis = tmp_path / "mismatches.csv", tmp_path / "kpis.csv"
    write_mismatches(db, N2, mismatches)
    write_kpis(db, N2, kpis)
    raw = mismatches.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    assert text.splitlines()[0] == ",".join(MISMATCH_COLUMNS)
    rows = list(csv.DictReader(text.splitlines()))
    id01 = next(r for r in rows if r["rule_code"] == "ID01")
    assert id01["id_number"] == "'=HYPERLINK(\"x\")" and id01["name"] == "'@张三"
    # every finding involving 人社 says its training data never arrived
    assert "【数据时效提示：人社：从未报送职业技能培训】" in id01["detail"]

    raw = kpis.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    lines = raw.decode("utf-8-sig").splitlines()
    assert lines[0] == ",".join(KPI_COLUMNS)
    k = {(r["indicator"], r["scope"]): r for r in csv.DictReader(lines)}
    assert (k[("参保率", "district")]["numerator"], k[("参保率", "district")]["denominator"],
            k[("参保率", "district")]["value"]) == ("2", "3", "0.6667")
    assert k[("参保率", "太平镇")]["value"] == "0.5000" and k[("参保率", "平滩镇")]["value"] == "1.0000"
    assert k[("待遇应享尽享率", "district")]["value"] == ""  # nobody aged 60+: no denominator
    assert k[("代缴率", "district")]["value"] == "1.0000"
    assert k[("数据时效_财政", "district")]["value"] == "8"
    assert k[("数据时效_人社", "district")]["value"] == ""
    assert k[("数据过期部门数", "district")]["value"] == "2"
