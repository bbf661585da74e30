"""A damaged file never replaces a department's good data (issue 14, class 4), against real PostgreSQL.

* held files: a file whose quarantine share or row count departs grossly from its extract's recent history
  is held, not loaded; the previous snapshot stays in use; `crosscheck release FILE_ID` loads it;
* two files of one extract and date in different formats: the newest (modification time) counts;
* implausible file dates are refused with a receipt.
"""

from __future__ import annotations

import csv
import io
import os
import time
import unicodedata
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import (
    HOLD_HISTORY_FILES,
    OLD,
    assert_reconciles,
    csv_bytes,
    file_row,
    ingest,
    landing_path,
    make_settings,
    night_state,
    only,
    put,
    quarantined,
    receipt,
    rows_of,
)

from crosscheck.pickup import scan
from crosscheck.settings import DEPARTMENTS

D = date(2026, 11, 28)


def excel_damaged(id_number: str) -> str:
    """What Excel shows of an 18-digit ID typed into a General cell: 5.10224E+17."""
    return f"{int(id_number[:17] + '0'):.5E}".replace("E+0", "E+")


def core_count(warehouse, extract: str, as_of: date) -> int:
    with warehouse.connect() as conn:
        # extract names come from the contracts
        return conn.execute(f"SELECT count(*) FROM core.{extract} WHERE as_of = %s", (as_of,)).fetchone()[0]  # noqa: S608


def rows_kept(warehouse, extract: str, file_id: int) -> int:
    """Rows of a held file still queryable: in its staging table or (unusable ones) in quarantine."""
    with warehouse.connect() as conn:
        return conn.execute(f"SELECT count(*) FROM (SELECT row_number FROM staging.{extract}_f{file_id} "  # noqa: S608
                            "UNION SELECT row_number FROM ingest.quarantine WHERE file_id = %s) kept",
                            (file_id,)).fetchone()[0]


# ------------------------------------------------------------------------- a whole district, two nights


@pytest.fixture(scope="module")
def district(tmp_path_factory):
    from crosscheck.generate import generate

    out = tmp_path_factory.mktemp("district")
    generate(out, 500, 5, D)
    return out / "landing"


def _damage_ids(data: bytes) -> bytes:
    """The enrollment CSV with its whole ID column turned into Excel's scientific notation."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    rows = list(csv.reader(io.StringIO(text)))
    column = rows[0].index("身份证号")
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(rows[0])
    for row in rows[1:]:
        digits = "".join(ch for ch in unicodedata.normalize("NFKC", row[column]) if ch.isdigit())
        row[column] = excel_damaged((digits or "5") .ljust(18, "0"))  # every spelling, 15-digit ones too
        writer.writerow(row)
    return out.getvalue().encode("utf-8")


def test_excel_damaged_enrollment_is_held_and_night_one_stays_in_use(fresh_warehouse, district, tmp_path):
    """Night 1 loads the district; on night 2 the enrollment file arrives with every ID as 5.10224E+17. It is
    held: night 2 uses night 1's enrollment, 参保率 is unchanged, no finding is new or resolved, the report,
    the freshness table and the receipt say so, and every row of the held file stays queryable."""
    from crosscheck.pipeline import compare_night
    from crosscheck.reference import deployment_districts
    from crosscheck.report import gather, render

    settings = make_settings(tmp_path, hold_history_files=HOLD_HISTORY_FILES)
    later = D + timedelta(days=1)
    for path in district.rglob("*_20261128.*"):
        if path.name.endswith(".done"):
            continue
        put(settings.landing_dir / path.parent.name / path.name, path.read_bytes())
        data = path.read_bytes()
        if path.name.startswith("enrollment_"):
            data = _damage_ids(data)
        put(settings.landing_dir / path.parent.name / path.name.replace("20261128", f"{later:%Y%m%d}"), data,
            age=OLD / 2)
    outcomes = [o for department in DEPARTMENTS for o in ingest(fresh_warehouse, settings, department)]
    [held] = [o for o in outcomes if o.status == "held"]
    assert (held.extract, held.as_of) == ("enrollment", later)
    assert {o.status for o in outcomes if o is not held} == {"loaded"}
    f = file_row(fresh_warehouse, held.file_id)
    assert f["rows_received"] > 200 and f["rows_quarantined"] == f["rows_received"] and f["rows_loaded"] is None
    assert core_count(fresh_warehouse, "enrollment", later) == 0
    assert core_count(fresh_warehouse, "enrollment", D) > 200
    # nothing lost: every row of the held file is in quarantine with its reason
    assert rows_kept(fresh_warehouse, "enrollment", held.file_id) == f["rows_received"]
    assert len({q["row_number"] for q in quarantined(fresh_warehouse, held.file_id)}) == f["rows_received"]

    js, html = receipt(settings, "hrss", held.file_id)
    assert js["status"] == "held" and "暂扣" in js["status_zh"]
    assert f"全部 {f['rows_received']} 行均无法使用" in js["reason"] and "继续使用该数据项此前的数据" in js["reason"]
    assert js["hold"]["history_as_of"] == [D.isoformat()] and js["hold"]["median_rows_loaded"] > 200
    assert "暂扣依据" in html and D.isoformat() in html

    compare_night(fresh_warehouse, D, settings, gx=False)
    second = compare_night(fresh_warehouse, later, settings, gx=False)
    assert second.counts["SS01"] > 0 and second.resolved == 0, second.describe()
    with fresh_warehouse.connect() as conn:
        fresh = conn.execute("SELECT data_as_of, age_days, held_file_id, held_as_of FROM mart.freshness "
                             "WHERE as_of = %s AND extract = 'enrollment'", (later,)).fetchone()
    assert fresh == (D, 1, held.file_id, later)
    page = render(gather(fresh_warehouse, later), later, {}, deployment_districts(settings.districts))
    assert f"{later} 的文件（编号 {held.file_id}）已暂扣未入库，仍使用 {D} 的数据" in page
    held_night = night_state(fresh_warehouse, later)

    # The night the held file left is the night a good file would have given: the department re-sends the
    # undamaged export (the same rows as night 1) and the night is run again.
    good = district / "hrss" / "enrollment_20261128.csv"
    put(settings.landing_dir / "hrss" / f"enrollment_{later:%Y%m%d}.csv", good.read_bytes(), age=OLD / 4)
    assert only(ingest(fresh_warehouse, settings, "hrss")).status == "loaded"
    compare_night(fresh_warehouse, later, settings, gx=False)
    good_night = night_state(fresh_warehouse, later)
    with fresh_warehouse.connect() as conn:  # the good file made the held one moot: no longer shown held
        assert conn.execute("SELECT data_as_of, held_file_id FROM mart.freshness WHERE as_of = %s "
                            "AND extract = 'enrollment'", (later,)).fetchone() == (later, None)
    assert held_night["findings"] == good_night["findings"] and held_night["statuses"] == good_night["statuses"]

    def business(indicators):  # the data-age indicators differ by design (1 day old vs fresh)
        return [i for i in indicators if not i[0].startswith(("数据时效", "数据过期"))]

    assert business(held_night["indicators"]) == business(good_night["indicators"])
    assert [i[4] for i in held_night["indicators"] if i[0] == "参保率"][0] > 0.5


# --------------------------------------------------------------------------------- single extracts


def enrollment_file(settings, as_of: date, rows: list[dict], age: float = OLD):
    return put(landing_path(settings, "hrss", "enrollment", as_of), csv_bytes("enrollment", rows), age=age)


def test_truncated_extract_is_held_and_release_loads_it(fresh_warehouse, tmp_path, monkeypatch, capsys):
    from crosscheck import cli
    from crosscheck.settings import get_settings

    settings = make_settings(tmp_path, hold_history_files=HOLD_HISTORY_FILES)
    d1, d2 = date(2026, 11, 27), date(2026, 11, 28)
    full = rows_of("enrollment", *({} for _ in range(60)))
    enrollment_file(settings, d1, full)
    assert only(ingest(fresh_warehouse, settings)).status == "loaded"
    enrollment_file(settings, d2, full[:20])  # an export cut after 20 rows
    held = only(ingest(fresh_warehouse, settings))
    assert held.status == "held" and held.rows_quarantined == 0
    assert core_count(fresh_warehouse, "enrollment", d2) == 0 and core_count(fresh_warehouse, "enrollment", d1) == 60
    assert rows_kept(fresh_warehouse, "enrollment", held.file_id) == 20  # in its staging table, for release
    js, _ = receipt(settings, "hrss", held.file_id)
    assert "可入库 20 行，不足近 1 次入库行数中位数 60 行的 50%" in js["reason"]
    assert ingest(fresh_warehouse, settings) == []  # a rerun leaves it held, and does not stage it again

    monkeypatch.setenv("CROSSCHECK_OUTBOX", str(settings.outbox_dir))
    get_settings.cache_clear()
    try:
        for bad, says in (("abc", "FILE_ID must be a positive integer"), ("99999999", "no file 99999999"),
                          ("-1", "FILE_ID must be a positive integer")):
            assert cli.main(["release", bad, "--warehouse", fresh_warehouse.url]) == 2
            err = capsys.readouterr().err
            assert says in err and len(err.strip().splitlines()) == 1, err
        assert cli.main(["release", str(held.file_id), "--warehouse", fresh_warehouse.url]) == 0
        assert f"released hrss/enrollment_{d2:%Y%m%d}.csv" in capsys.readouterr().out
        assert cli.main(["release", str(held.file_id), "--warehouse", fresh_warehouse.url]) == 2
        assert "is not held (status loaded)" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
    f = assert_reconciles(fresh_warehouse, held.file_id)
    assert f["rows_loaded"] == 20 and f["released_at"] is not None
    assert core_count(fresh_warehouse, "enrollment", d2) == 20
    js, html = receipt(settings, "hrss", held.file_id)
    assert js["status"] == "loaded" and js["released_at"] and "由区数据管理员确认放行" in js["reason"]
    assert "已放行" in html and "可入库 20 行" in html


@pytest.mark.parametrize("bad", [25, 15])
def test_first_ever_file_mostly_unusable_is_held_by_the_absolute_rule(fresh_warehouse, tmp_path, bad):
    """No history: 25 of 25 (nothing loadable) or 15 of 25 (60 % > 50 %) rows quarantined → held."""
    settings = make_settings(tmp_path, hold_history_files=HOLD_HISTORY_FILES)
    rows = rows_of("enrollment", *({} for _ in range(25)))
    for row in rows[:bad]:
        row["id_number"] = excel_damaged(row["id_number"])
    enrollment_file(settings, D, rows)
    out = only(ingest(fresh_warehouse, settings))
    assert (out.status, out.rows_received, out.rows_quarantined) == ("held", 25, bad), out
    assert core_count(fresh_warehouse, "enrollment", D) == 0
    assert len(quarantined(fresh_warehouse, out.file_id)) == bad
    js, html = receipt(settings, "hrss", out.file_id)
    assert js["hold"]["history_files"] == [] and "此前没有入库记录" in html
    assert ("全部 25 行均无法使用" if bad == 25 else "退回 15 行，占 60.0%，超过上限 50%") in js["reason"]


def test_quarantine_share_far_above_the_recent_median_is_held(fresh_warehouse, tmp_path):
    """1 bad row in 40, as usual, loads; then 30 % quarantined — under the absolute ceiling, far above the
    extract's usual share — is held."""
    settings = make_settings(tmp_path, hold_history_files=HOLD_HISTORY_FILES)
    for day in (D - timedelta(days=2), D - timedelta(days=1)):
        rows = rows_of("enrollment", *({} for _ in range(40)))
        rows[0]["id_number"] = excel_damaged(rows[0]["id_number"])
        enrollment_file(settings, day, rows)
        assert only(ingest(fresh_warehouse, settings)).status == "loaded"
    rows = rows_of("enrollment", *({} for _ in range(40)))
    for row in rows[:12]:
        row["id_number"] = excel_damaged(row["id_number"])
    enrollment_file(settings, D, rows)
    out = only(ingest(fresh_warehouse, settings))
    assert out.status == "held", out
    assert "退回比例 30.0%，明显高于近 2 次入库的中位数 2.5%" in out.reason


# --------------------------------------------------------------------- two formats for one date


def _parquet(settings, as_of: date, rows: list[dict]):
    from helpers import header_of

    table = pa.table({header: [r[name] or None for r in rows] for name, header in header_of("enrollment")})
    path = landing_path(settings, "hrss", "enrollment", as_of, "parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize("case", ["newer csv", "same time"])
def test_two_formats_for_one_date_newest_counts(warehouse, settings, as_of, case):
    """A newer CSV and an older Parquet of the same date: the CSV counts (it was read first by name and
    replaced by the Parquet before). Same modification time: the Parquet counts, as stated."""
    csv_rows, parquet_rows = rows_of("enrollment", {}, {}), rows_of("enrollment", {})
    csv_path = enrollment_file(settings, as_of, csv_rows)
    parquet_path = _parquet(settings, as_of, parquet_rows)
    csv_ns = time.time_ns() - 1800 * 10**9
    os.utime(csv_path, ns=(csv_ns, csv_ns))
    parquet_ns = csv_ns - 600 * 10**9 if case == "newer csv" else csv_ns
    os.utime(parquet_path, ns=(parquet_ns, parquet_ns))
    winner, loser = (csv_path, parquet_path) if case == "newer csv" else (parquet_path, csv_path)
    kept = csv_rows if case == "newer csv" else parquet_rows
    outcomes = {o.file_name: o for o in ingest(warehouse, settings)}
    assert outcomes[winner.name].status == "loaded" and outcomes[loser.name].status == "rejected"
    with warehouse.connect() as conn:
        ids = {r[0] for r in conn.execute("SELECT id_number FROM core.enrollment WHERE as_of = %s", (as_of,))}
    assert ids == {r["id_number"] for r in kept}
    won, _ = receipt(settings, "hrss", outcomes[winner.name].file_id)
    lost, lost_html = receipt(settings, "hrss", outcomes[loser.name].file_id)
    assert loser.name in won["reason"] and "该日期以本文件为准" in won["reason"]
    assert winner.name in lost["reason"] and "本文件未入库" in lost["reason"] and "以修改时间最新的文件为准" in lost_html
    assert not won["superseded_by"] and not lost["superseded_by"]  # nobody claims a correction happened
    # a rerun decides the same and reports nothing new
    assert ingest(warehouse, settings) == []


# -------------------------------------------------------------------------------- date window


def test_implausible_file_dates_are_refused_with_a_receipt(warehouse, tmp_path):
    settings = make_settings(tmp_path, as_of_max_future_days=1, as_of_max_age_days=400,
                             hold_history_files=HOLD_HISTORY_FILES)
    today = date.today()
    names = {}
    for label, day in (("far future", date(9999, 12, 31)), ("year one", date(1, 1, 1)),
                       ("two days ahead", today + timedelta(days=2)), ("too old", today - timedelta(days=401)),
                       ("tomorrow", today + timedelta(days=1))):
        names[label] = f"training_{day.year:04d}{day.month:02d}{day.day:02d}.csv"
        put(settings.landing_dir / "hrss" / names[label], csv_bytes("training", rows_of("training", {})))
    outcomes = {o.file_name: o for o in ingest(warehouse, settings)}
    assert outcomes[names["tomorrow"]].status == "loaded"  # a night's file may carry tomorrow's date (time zones)
    for label in ("far future", "year one", "two days ahead", "too old"):
        out = outcomes[names[label]]
        assert out.status == "rejected", (label, out)
        js, html = receipt(settings, "hrss", out.file_id)
        assert "不在合理范围内" in js["reason"] and "日期写错" in html
    # a file loaded once keeps its receipt when it later falls outside the window (landing keeps every file)
    narrower = make_settings(tmp_path, as_of_max_future_days=0, as_of_max_age_days=400)
    assert ingest(warehouse, narrower) == []
    assert file_row(warehouse, outcomes[names["tomorrow"]].file_id)["status"] == "loaded"
    # replaying an older night: the window reaches back from that night, not from today
    night = today - timedelta(days=1000)
    old = settings.landing_dir / "civil" / f"residents_{night - timedelta(days=10):%Y%m%d}.csv"
    put(old, csv_bytes("residents", rows_of("residents", {})))
    assert {d.state for d in scan(settings.landing_dir, settings, ["civil"])} == {"rejected"}
    assert {d.state for d in scan(settings.landing_dir, settings, ["civil"], night=night)} == {"ready"}


def test_a_held_file_is_superseded_when_a_later_file_of_its_date_loads(fresh_warehouse, tmp_path, capsys):
    """The department sends the whole file again after a truncated one was held: the new one loads, the held one
    becomes superseded (it can no longer be released) and the staging table kept for its release is dropped."""
    from crosscheck import cli

    settings = make_settings(tmp_path, hold_history_files=HOLD_HISTORY_FILES)
    d1, d2 = date(2026, 11, 27), date(2026, 11, 28)
    full = rows_of("enrollment", *({} for _ in range(60)))
    enrollment_file(settings, d1, full)
    assert only(ingest(fresh_warehouse, settings)).status == "loaded"
    enrollment_file(settings, d2, full[:20])
    held = only(ingest(fresh_warehouse, settings))
    assert held.status == "held" and rows_kept(fresh_warehouse, "enrollment", held.file_id) == 20
    enrollment_file(settings, d2, full)  # the same name, sent again whole
    again = only(ingest(fresh_warehouse, settings))
    assert again.status == "loaded" and core_count(fresh_warehouse, "enrollment", d2) == 60
    assert file_row(fresh_warehouse, held.file_id)["status"] == "superseded"
    with fresh_warehouse.connect() as conn:
        assert conn.execute("SELECT to_regclass(%s)", (f"staging.enrollment_f{held.file_id}",)).fetchone()[0] is None
    assert cli.main(["release", str(held.file_id), "--warehouse", fresh_warehouse.url]) == 2
    assert "is not held (status superseded)" in capsys.readouterr().err
