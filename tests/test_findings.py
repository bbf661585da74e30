"""Findings with a life (new → open → resolved), feedback, idempotent reruns, stale data, outputs, GX."""

from __future__ import annotations

import csv
from datetime import date

import pytest
from helpers import fill_worklist, make_settings
from test_rules import District, drop, new_database

from crosscheck.catalogue import RULES
from crosscheck.feedback import apply_feedback
from crosscheck.outputs import KPI_COLUMNS, MISMATCH_COLUMNS, write_kpis, write_mismatches
from crosscheck.pipeline import compare_night
from crosscheck.worklists import worklist_rows, write_worklists

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
    r1 = compare_night(db, N1, make_settings(tmp_path), gx=False)
    r2 = compare_night(db, N2, make_settings(tmp_path), gx=False)
    assert statuses(db, N1) == {p["A"]: "new", p["B"]: "new", p["E"]: "new"}
    assert statuses(db, N2) == {p["A"]: "open", p["B"]: "resolved", p["E"]: "resolved", p["C"]: "new"}
    assert (r1.new, r1.open, r1.resolved) == (3, 0, 0) and (r2.new, r2.open, r2.resolved) == (1, 1, 2)
    compare_night(db, N3, make_settings(tmp_path), gx=False)
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


def return_worklists(w, as_of: date, tmp_path, answers: dict[int, str]) -> list:
    """The night's work lists written and returned with these verdicts filled in; the results."""
    settings = make_settings(tmp_path)
    out = tmp_path / f"lists-{as_of}"
    write_worklists(w, as_of, out, settings)
    return [apply_feedback(w, fill_worklist(path, answers), settings)
            for path in sorted((out / "worklists").glob("*.xlsx"))]


def test_feedback_not_true_suppresses_new_unless_data_changed(db, tmp_path):
    d, p = three_nights()
    d.load(db)
    compare_night(db, N1, make_settings(tmp_path), gx=False)
    compare_night(db, N2, make_settings(tmp_path), gx=False)
    compare_night(db, N3, make_settings(tmp_path), gx=False)
    assert statuses(db, N3)[p["B"]] == "new"
    with db.connect() as conn:
        ids = dict(conn.execute("SELECT id_number, finding_id FROM mart.findings WHERE rule_code = 'SS07'"))
    answers = {ids[p["B"]]: "不属实", ids[p["E"]]: "不属实", ids[p["A"]]: "属实"}
    assert sum(r.stored for r in return_worklists(db, N3, tmp_path, answers)) == 3
    returned = sorted((tmp_path / f"lists-{N3}" / "worklists").glob("*.xlsx"))
    settings = make_settings(tmp_path)
    assert sum(apply_feedback(db, path, settings).taken for path in returned) == 3  # the same files again: stored once
    with db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM mart.feedback").fetchone()[0] == 3
    # Rerun night 3: B and E came back, and the 不属实 verdicts were given on the data they have now.
    compare_night(db, N3, make_settings(tmp_path), gx=False)
    assert statuses(db, N3) == {p["A"]: "open", p["B"]: "open", p["E"]: "open", p["C"]: "open"}


def test_feedback_on_old_data_does_not_suppress_changed_finding(db, tmp_path):
    d, p = three_nights()
    d.load(db)
    compare_night(db, N1, make_settings(tmp_path), gx=False)
    compare_night(db, N2, make_settings(tmp_path), gx=False)
    with db.connect() as conn:
        ids = dict(conn.execute("SELECT id_number, finding_id FROM mart.findings WHERE rule_code = 'SS07'"))
    # B and E are resolved on night 2: their verdicts come back on night 1's list
    assert sum(r.stored for r in return_worklists(db, N1, tmp_path, {ids[p["B"]]: "不属实", ids[p["E"]]: "不属实"})) == 2
    compare_night(db, N3, make_settings(tmp_path), gx=False)
    got = statuses(db, N3)
    assert got[p["B"]] == "open"  # back with the same data: not new again
    assert got[p["E"]] == "new"   # back with another death date: its data changed


def test_third_night_resolved_findings_come_back(db, tmp_path):
    """rules.md, "Findings and their life": SS07 for G, H, K on night 1, gone on night 2, back with the
    same data on night 3. G was judged 不属实 (it returns open, with its verdict and its old first
    seen); H had no verdict and K was judged 属实 (both are new again, first seen night 3). M, judged
    不属实, comes back from another town: its detail and amount are unchanged, so it is open too.
    While resolved, each keeps night 1 as last seen."""
    d = District()
    people = {k: d.age(70, as_of=N1) for k in "GHKM"}
    d.copy_rows("residents", N1, N2)
    d.copy_rows("residents", N2, N3)
    for row in d.rows[("residents", N3)]:
        if row["id_number"] == people["M"]:
            row["town"] = "侣俸镇"
    for night in (N1, N2, N3):
        for pid in people.values():
            d.death(pid, DIED, as_of=night)
            d.enrol(pid, as_of=night, **({"enrol_status": "终止参保", "benefit_status": "终止发放"}
                                         if night == N2 else {}))
    d.load(db)
    compare_night(db, N1, make_settings(tmp_path), gx=False)
    with db.connect() as conn:
        ids = dict(conn.execute("SELECT id_number, finding_id FROM mart.findings WHERE rule_code = 'SS07'"))
    g, h, k, m = (people[x] for x in "GHKM")
    answers = {ids[g]: "不属实", ids[k]: "属实", ids[m]: "不属实"}
    assert sum(r.stored for r in return_worklists(db, N1, tmp_path, answers)) == 3
    compare_night(db, N2, make_settings(tmp_path), gx=False)
    compare_night(db, N3, make_settings(tmp_path), gx=False)
    assert statuses(db, N2) == dict.fromkeys(people.values(), "resolved")
    assert statuses(db, N3) == {g: "open", h: "new", k: "new", m: "open"}

    def seen(as_of):
        write_mismatches(db, as_of, tmp_path / f"m-{as_of}.csv")
        rows = csv.DictReader(open(tmp_path / f"m-{as_of}.csv", encoding="utf-8-sig"))
        return {r["id_number"]: (r["status"], r["first_seen"], r["last_seen"]) for r in rows if r["rule_code"] == "SS07"}

    n1, n3 = N1.isoformat(), N3.isoformat()
    assert seen(N2) == dict.fromkeys(people.values(), ("resolved", n1, n1))
    assert seen(N3) == {g: ("open", n1, n3), h: ("new", n3, n3), k: ("new", n3, n3), m: ("open", n1, n3)}
    with db.connect() as conn:
        life = {i: r for i, *r in conn.execute(
            "SELECT id_number, status, first_seen, last_seen FROM mart.findings WHERE rule_code = 'SS07'")}
    assert life == {g: ["open", N1, N3], h: ["new", N3, N3], k: ["new", N3, N3], m: ["open", N1, N3]}
    # G's verdict is still the one its work list shows
    rows = {r["id_number"]: r for r in worklist_rows(db, N3)}
    assert rows[g]["verdict"] == "不属实" and rows[g]["first_seen"] == N1 and rows[h]["verdict"] is None


def test_unusable_id_is_one_finding_whatever_file_or_row(db, tmp_path):
    """ID01/ID02 are identified by (rule, ID as written): one raw ID in two extracts is one finding,
    and the same raw ID in another file and row the next night is the same finding (open)."""
    d = District()
    d.copy_rows("residents", N1, N2)
    raw = "50015119900101123"  # 17 characters
    d.quarantined("enrollment", "ID01", raw, {"name": "王小明", "town": "太平镇"}, as_of=N1)
    d.quarantined("payments", "ID01", raw, {"name": "王小明", "town": "太平镇"}, as_of=N1)
    d.quarantined("payments", "ID01", "X1", {"name": "赵六"}, as_of=N2)  # moves the raw ID to another row
    d.quarantined("payments", "ID01", raw, {"name": "王小明", "town": "太平镇"}, as_of=N2)
    d.load(db)
    compare_night(db, N1, make_settings(tmp_path), gx=False)
    compare_night(db, N2, make_settings(tmp_path), gx=False)
    with db.connect() as conn:
        rows = conn.execute("SELECT m.subject_key, m.departments, n.as_of, n.status FROM mart.finding_nights n "
                            "JOIN mart.findings m USING (finding_id) WHERE m.rule_code = 'ID01' AND m.subject_key = %s "
                            "ORDER BY n.as_of", (raw,)).fetchall()
    assert [(key, as_of, status) for key, _, as_of, status in rows] == [(raw, N1, "new"), (raw, N2, "open")]
    with db.connect() as conn:
        night2 = conn.execute("SELECT detail FROM night.findings WHERE subject_key = %s", (raw,)).fetchone()[0]
    assert "第3行" in night2  # found on another row than on night 1, still the same finding


def test_rerun_is_idempotent(db, tmp_path):
    d, _ = three_nights()
    d.load(db)
    compare_night(db, N1, make_settings(tmp_path), gx=False)
    compare_night(db, N2, make_settings(tmp_path), gx=False)
    once = mart_contents(db)
    for night in (N2, N2, N1):
        compare_night(db, night, make_settings(tmp_path), gx=False)
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
    result = compare_night(db, N2, make_settings(tmp_path), gx=True)
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
    assert {c[0] for c in checks} == set(RULES) and all(agrees for *_, agrees in checks), checks
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
