"""Every comparison rule (rules.md) on a hand-built district: cases that must fire and near-misses.

One small district is loaded into a database of its own (rows inserted straight into core.* and
ingest.files / ingest.quarantine, as the loader leaves them), the night is compared once (without
GX), and each test checks one rule's findings by person. The district builder ``District`` is
also used by test_findings.py.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date

import pytest
from psycopg import sql
from stdnum.cn import ric

from crosscheck import warehouse as wh
from crosscheck.catalogue import RULES
from crosscheck.contracts import contracts
from crosscheck.pipeline import compare_night

D = date(2026, 11, 28)


def check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character (GB 11643-1999)."""
    return ric.calc_check_digit(first17 + "0")  # python-stdnum; it ignores the check place it is given


def make_id(birth: date, seq: int, sex: str = "男", region: str = "500151") -> str:
    """A valid 18-character ID number; the sequence's last digit is odd for men."""
    n = (seq % 500) * 2 + (1 if sex == "男" else 0)
    first17 = f"{region}{birth:%Y%m%d}{n:03d}"
    return first17 + check_char(first17)


def _stored_columns(extract: str) -> list[str]:
    cols = []
    for c in contracts()[extract].columns:
        cols.append(c.name)
        if c.type in ("id_number", "name"):
            cols.append(c.name + "_raw")
    return cols


class District:
    """Rows for one as-of date per extract, inserted as the loader would leave them."""

    def __init__(self):
        self.rows: dict[tuple[str, date], list[dict]] = defaultdict(list)
        self.quarantine: dict[tuple[str, date], list[dict]] = defaultdict(list)
        self.seq = 0
        self.names: dict[str, str] = {}

    # ---- people
    def person(self, birth: date, sex: str = "男", name: str | None = None, town: str = "太平镇",
               village: str = "坪漆村", status: str = "正常", resident: bool = True, as_of: date = D) -> str:
        self.seq += 1
        pid = make_id(birth, self.seq, sex)
        self.names[pid] = name or f"测试{self.seq}"
        if resident:
            self.add("residents", as_of, id_number=pid, sex=sex, birth_date=birth, hukou_no=f"H{self.seq}",
                     relation="户主", town=town, village=village, status=status)
        return pid

    def age(self, years: int, days_before_birthday: int = 0, **kw) -> str:
        """A person aged ``years`` at D (born exactly ``years`` before D, or that many days later)."""
        birth = date(D.year - years, D.month, D.day)
        if days_before_birthday:
            birth = date.fromordinal(birth.toordinal() + days_before_birthday)
        return self.person(birth, **kw)

    def add(self, extract: str, as_of: date = D, **values) -> dict:
        row = {c: None for c in _stored_columns(extract)}
        pid = values.get("id_number")
        if "name" in row and "name" not in values:
            values["name"] = self.names.get(pid, "某人")
        row.update(values)
        for col in ("id_number", "name", "head_id_number"):
            if col in row and f"{col}_raw" in row and row[f"{col}_raw"] is None:
                row[f"{col}_raw"] = row[col]
        self.rows[(extract, as_of)].append(row)
        return row

    # ---- shortcuts with plausible defaults
    def poor(self, pid: str, as_of: date = D, **kw) -> dict:
        values = dict(household_no=kw.pop("household_no", f"P{pid[-6:]}"), head_id_number=pid, id_number=pid,
                      sex=kw.pop("sex", "男" if int(pid[16]) % 2 else "女"), relation="户主",
                      household_type="一般贫困户", poverty_status="未脱贫", is_student=False,
                      labour_ability="普通劳动力", town="太平镇", village="坪漆村")
        values.update(kw)
        return self.add("registry", as_of, **values)

    def enrol(self, pid: str, as_of: date = D, **kw) -> dict:
        values = dict(person_no=f"E{pid[-8:]}", id_number=pid, enrol_status="正常参保", subsidy_category="无",
                      subsidy_amount_year=0, benefit_status="未领取", town="太平镇", village="坪漆村")
        values.update(kw)
        return self.add("enrollment", as_of, **values)

    def pension(self, pid: str, month: date, amount: float = 120, serial: str | None = None,
                as_of: date = D) -> dict:
        self.seq += 1
        return self.add("pension_payments", as_of, serial_no=serial or f"PP{self.seq:06d}", id_number=pid,
                        month=month, amount=amount)

    def pay(self, pid: str, item: str, period: date, amount: float, paid: date | None = None,
            serial: str | None = None, as_of: date = D) -> dict:
        self.seq += 1
        return self.add("payments", as_of, serial_no=serial or f"F{self.seq:06d}", batch_no="B1", id_number=pid,
                        item=item, period=period, amount=amount, paid_date=paid or period.replace(day=10),
                        town="太平镇")

    def case(self, pid: str, category: str, start: date, end: date | None = None, as_of: date = D, **kw) -> dict:
        return self.add("assistance", as_of, id_number=pid, head_id_number=pid, category=category,
                        start_date=start, end_date=end, town="太平镇", village="坪漆村", **kw)

    def job(self, pid: str, job_type: str, start: date, end: date | None = None, as_of: date = D) -> dict:
        return self.add("jobs", as_of, id_number=pid, job_type=job_type, employer="坪漆村龙灯彩扎基地扶贫车间",
                        position="保洁员", start_date=start, end_date=end, monthly_pay=800, town="太平镇")

    def death(self, pid: str, died: date, as_of: date = D) -> dict:
        return self.add("deaths", as_of, id_number=pid, death_date=died, source="火化", registered_date=died)

    def train(self, pid: str, trade: str, completed: date, subsidy: float = 1500, travel: float = 0,
              qualified: bool = True, as_of: date = D) -> dict:
        return self.add("training", as_of, id_number=pid, trade=trade, institution="铜梁区职教中心",
                        completion_date=completed, qualified=qualified, training_subsidy=subsidy,
                        travel_subsidy=travel)

    def quarantined(self, extract: str, rule: str, raw_id: str, row_raw: dict, as_of: date = D,
                    reason: str = "身份证号有误") -> None:
        self.quarantine[(extract, as_of)].append(
            {"rule": rule, "value_raw": raw_id, "row_raw": {"id_number": raw_id, **row_raw}, "reason": reason})

    # ---- load
    def copy_rows(self, extract: str, source: date, target: date) -> None:
        """The same snapshot rows again for another as-of date (a registry that did not change)."""
        self.rows[(extract, target)] += [dict(r) for r in self.rows[(extract, source)]]

    def load(self, warehouse: wh.Warehouse, missing: tuple[str, ...] = ()) -> None:
        """Insert the rows and their loaded files. An extract with no rows at all gets an empty file
        for every as-of date used (it was sent, empty); extracts in ``missing`` get nothing."""
        import json

        keys = set(self.rows) | set(self.quarantine)
        dates = {as_of for _, as_of in keys} or {D}
        with_rows = {e for e, _ in keys}
        keys |= {(e, d) for e in contracts() for d in dates if e not in with_rows and e not in missing}
        with warehouse.transaction() as conn:
            for extract, as_of in sorted(keys):
                rows, bad = self.rows.get((extract, as_of), []), self.quarantine.get((extract, as_of), [])
                contract = contracts()[extract]
                file_id = conn.execute(
                    "INSERT INTO ingest.files (department, extract, as_of, file_name, status, rows_received, "
                    "rows_loaded, rows_quarantined) VALUES (%s, %s, %s, %s, 'loaded', %s, %s, %s) RETURNING file_id",
                    (contract.department, extract, as_of, f"{extract}_{as_of:%Y%m%d}.csv", len(rows) + len(bad),
                     len(rows), len(bad))).fetchone()[0]
                cols = ["as_of", "file_id", "row_number", *_stored_columns(extract)]
                with conn.cursor().copy(sql.SQL("COPY core.{} ({}) FROM STDIN").format(
                        sql.Identifier(extract), sql.SQL(", ").join(map(sql.Identifier, cols)))) as copy:
                    for i, row in enumerate(rows):
                        copy.write_row([as_of, file_id, i + 2, *(row[c] for c in cols[3:])])
                for i, q in enumerate(bad):
                    conn.execute(
                        "INSERT INTO ingest.quarantine (file_id, row_number, column_name, value_raw, rule, reason, "
                        "row_raw) VALUES (%s, %s, 'id_number', %s, %s, %s, %s)",
                        (file_id, len(rows) + i + 2, q["value_raw"], q["rule"], q["reason"],
                         json.dumps(q["row_raw"], ensure_ascii=False)))


def new_database(server_url: str) -> wh.Warehouse:
    name = f"crosscheck_test_{uuid.uuid4().hex[:10]}"
    return wh.open_warehouse(wh.with_database(server_url, name), create=True)


def drop(warehouse: wh.Warehouse) -> None:
    from urllib.parse import urlsplit

    warehouse.engine.dispose()
    wh.drop_database(wh.with_database(warehouse.url, "postgres"), urlsplit(warehouse.url).path.lstrip("/"))


def findings_of(warehouse: wh.Warehouse, rule: str, as_of: date = D) -> dict[str, list[dict]]:
    """{id_number: [finding, ...]} for one rule on night D."""
    with warehouse.connect() as conn:
        cur = conn.execute(
            "SELECT m.*, n.status AS night_status FROM mart.finding_nights n JOIN mart.findings m USING (finding_id) "
            "WHERE n.as_of = %s AND m.rule_code = %s AND n.status <> 'resolved' ORDER BY m.subject_key, m.period",
            (as_of, rule))
        names = [c.name for c in cur.description]
        out: dict[str, list[dict]] = defaultdict(list)
        for r in cur.fetchall():
            row = dict(zip(names, r, strict=True))
            out[row["id_number"]].append(row)
    return out


# ------------------------------------------------------------------------------------ the district

Y, LAST = D.year, date(2026, 10, 1)
M = {m: date(2026, m, 1) for m in range(1, 13)}
P: dict[str, str] = {}  # case name -> ID number


def build() -> District:
    d = District()

    def p(key, *args, **kw):
        P[key] = d.age(*args, **kw) if isinstance(args[0], int) else d.person(*args, **kw)
        return P[key]

    # ---------------- SS01 应参未参
    d.poor(p("ss01_16", 16))                                   # exactly 16 today: fires
    d.poor(p("ss01_15", 16, days_before_birthday=1))           # 16 tomorrow: 15 today
    d.poor(p("ss01_student", 20), is_student=True)
    d.poor(p("ss01_terminated", 40)); d.enrol(P["ss01_terminated"], enrol_status="终止参保")  # noqa: E702
    d.poor(p("ss01_paused", 40)); d.enrol(P["ss01_paused"], enrol_status="暂停缴费",  # noqa: E702
                                          subsidy_amount_year=200)
    d.pay(P["ss01_paused"], "城乡居民养老保险代缴", M[3], 200)
    d.poor(p("ss01_dead", 40)); d.death(P["ss01_dead"], date(2026, 5, 3))  # noqa: E702
    d.poor(p("ss01_status_dead", 40, status="死亡"))
    d.poor(p("ss01_left", 45), poverty_status="已脱贫", exit_year=2019)  # left poverty: still a poor person

    # ---------------- SS02 应代未代 / SS03 不在代缴范围 / SS04 代缴金额不一致
    d.poor(p("ss02_fire", 30)); d.enrol(P["ss02_fire"])  # noqa: E702
    d.poor(p("ss02_59", 59, days_before_birthday=1)); d.enrol(P["ss02_59"])  # noqa: E702
    d.poor(p("ss02_60", 60)); d.enrol(P["ss02_60"], benefit_status="正常领取")  # noqa: E702
    d.pension(P["ss02_60"], LAST)
    d.poor(p("ss02_paused", 30)); d.enrol(P["ss02_paused"], enrol_status="暂停缴费")  # noqa: E702
    d.poor(p("ss02_prev_year", 30)); d.enrol(P["ss02_prev_year"])  # noqa: E702
    d.pay(P["ss02_prev_year"], "城乡居民养老保险代缴", date(2025, 5, 1), 200)   # last year's 代缴 does not count
    d.poor(p("ss02_paid", 30)); d.enrol(P["ss02_paid"], subsidy_amount_year=100)  # noqa: E702
    d.pay(P["ss02_paid"], "城乡居民养老保险代缴", M[4], 100)
    d.poor(p("ss02_exit_this_year", 30), poverty_status="已脱贫", exit_year=Y)   # 未脱贫 during Y
    d.enrol(P["ss02_exit_this_year"])
    d.poor(p("ss02_exit_last_year", 30), poverty_status="已脱贫", exit_year=Y - 1)  # not eligible, nothing recorded
    d.enrol(P["ss02_exit_last_year"])
    p("ss02_dibao_partial", 35); d.enrol(P["ss02_dibao_partial"])  # noqa: E702
    d.case(P["ss02_dibao_partial"], "城乡低保", date(2024, 3, 1), date(2026, 1, 15))  # covers January of Y
    p("ss02_dibao_ended", 35); d.enrol(P["ss02_dibao_ended"])  # noqa: E702
    d.case(P["ss02_dibao_ended"], "城乡低保", date(2024, 3, 1), date(2025, 12, 31))  # ended before Y
    p("ss02_disabled", 35); d.enrol(P["ss02_disabled"])  # noqa: E702
    d.case(P["ss02_disabled"], "临时救助", date(2026, 2, 1), date(2026, 2, 28), disability_grade="二级")

    p("ss03_category", 35); d.enrol(P["ss03_category"], subsidy_category="低保")  # noqa: E702
    p("ss03_paid", 35); d.enrol(P["ss03_paid"], subsidy_amount_year=200)  # noqa: E702
    d.pay(P["ss03_paid"], "城乡居民养老保险代缴", M[6], 200)
    p("ss03_prev_year", 35); d.enrol(P["ss03_prev_year"])  # noqa: E702
    d.pay(P["ss03_prev_year"], "城乡居民养老保险代缴", date(2025, 6, 1), 200)

    d.poor(p("ss04_fire", 30)); d.enrol(P["ss04_fire"], subsidy_category="建档立卡", subsidy_amount_year=200)  # noqa: E702
    d.pay(P["ss04_fire"], "城乡居民养老保险代缴", M[3], 100)
    d.poor(p("ss04_two_payments", 30))
    d.enrol(P["ss04_two_payments"], subsidy_category="建档立卡", subsidy_amount_year=100)
    d.pay(P["ss04_two_payments"], "城乡居民养老保险代缴", M[3], 50)
    d.pay(P["ss04_two_payments"], "城乡居民养老保险代缴", M[5], 50)

    # ---------------- SS05 应发未发
    d.poor(p("ss05_no_october", 65)); d.enrol(P["ss05_no_october"], benefit_status="正常领取")  # noqa: E702
    d.pension(P["ss05_no_october"], M[9])
    d.poor(p("ss05_ok", 65)); d.enrol(P["ss05_ok"], benefit_status="正常领取")  # noqa: E702
    d.pension(P["ss05_ok"], LAST)
    d.poor(p("ss05_not_drawing", 65)); d.enrol(P["ss05_not_drawing"], benefit_status="未领取")  # noqa: E702
    d.pension(P["ss05_not_drawing"], LAST)
    d.poor(p("ss05_59", 60, days_before_birthday=1)); d.enrol(P["ss05_59"])  # noqa: E702

    # ---------------- SS06 死亡冒领 / SS07 死亡未停保 / EM03
    p("ss06", 70); d.enrol(P["ss06"], enrol_status="终止参保", benefit_status="终止发放")  # noqa: E702
    d.death(P["ss06"], date(2026, 9, 30))                        # last day of September
    for month in (M[9], M[10], M[11]):
        d.pension(P["ss06"], month, 150)
    d.pay(P["ss06"], "低保金", M[9], 300, paid=date(2026, 9, 30))  # paid on the day of death: not after
    d.pay(P["ss06"], "低保金", M[10], 300, paid=date(2026, 10, 10))
    d.pay(P["ss06"], "公益性岗位补贴", M[10], 500, paid=date(2026, 10, 12))
    d.case(P["ss06"], "城乡低保", date(2020, 1, 1))
    d.job(P["ss06"], "临时公益性岗位", date(2026, 1, 1))

    p("ss07_enrolled", 70); d.enrol(P["ss07_enrolled"], benefit_status="正常领取")  # noqa: E702
    d.death(P["ss07_enrolled"], date(2026, 8, 1))
    p("ss07_status", 50, status="死亡"); d.enrol(P["ss07_status"])  # noqa: E702
    p("ss07_stopped", 70); d.enrol(P["ss07_stopped"], enrol_status="终止参保", benefit_status="终止发放")  # noqa: E702
    d.death(P["ss07_stopped"], date(2026, 8, 1))
    p("ss07_paused", 50); d.enrol(P["ss07_paused"], enrol_status="暂停缴费")  # noqa: E702
    d.death(P["ss07_paused"], date(2026, 8, 1))

    # ---------------- SS08 重复领取
    p("ss08", 70); d.enrol(P["ss08"], benefit_status="正常领取")  # noqa: E702
    d.pension(P["ss08"], LAST, 120); d.pension(P["ss08"], LAST, 130)  # noqa: E702
    d.pension(P["ss08"], M[9], 120)
    p("ss08_same_row", 70); d.enrol(P["ss08_same_row"], benefit_status="正常领取")  # noqa: E702
    d.pension(P["ss08_same_row"], LAST, 120, serial="DUP1"); d.pension(P["ss08_same_row"], LAST, 120, serial="DUP1")  # noqa: E702

    # ---------------- SS09 未到龄领取
    p("ss09_59", 60, days_before_birthday=1); d.enrol(P["ss09_59"], benefit_status="正常领取")  # noqa: E702
    p("ss09_60", 60); d.enrol(P["ss09_60"], benefit_status="正常领取")  # noqa: E702
    d.pension(P["ss09_60"], LAST)
    p("ss09_paid", 50); d.enrol(P["ss09_paid"])  # noqa: E702
    d.pension(P["ss09_paid"], M[5], 110)

    # ---------------- EM01 公益性岗位人员不符
    p("em01_fire", 40); d.job(P["em01_fire"], "扶贫公益性岗位", date(2026, 1, 1))  # noqa: E702
    d.poor(p("em01_poor", 40)); d.enrol(P["em01_poor"], subsidy_amount_year=100)  # noqa: E702
    d.pay(P["em01_poor"], "城乡居民养老保险代缴", M[2], 100)
    d.job(P["em01_poor"], "扶贫公益性岗位", date(2026, 1, 1))
    p("em01_dibao", 40); d.job(P["em01_dibao"], "扶贫公益性岗位", date(2026, 1, 1))  # noqa: E702
    d.case(P["em01_dibao"], "城乡低保", date(2025, 1, 1), D)   # open at D (ends on D)
    p("em01_dibao_ended", 40); d.job(P["em01_dibao_ended"], "扶贫公益性岗位", date(2026, 1, 1))  # noqa: E702
    d.case(P["em01_dibao_ended"], "城乡低保", date(2025, 1, 1), date(2026, 11, 27))
    p("em01_temp", 40); d.job(P["em01_temp"], "临时公益性岗位", date(2026, 1, 1))  # noqa: E702

    # ---------------- EM02 无岗位发放公益性岗位补贴
    p("em02", 40); d.job(P["em02"], "临时公益性岗位", date(2026, 3, 15), date(2026, 6, 10))  # noqa: E702
    for m in (2, 3, 6, 7):
        d.pay(P["em02"], "公益性岗位补贴", M[m], 500)

    # ---------------- EM04 培训重复补贴
    p("em04", 30); d.train(P["em04"], "焊工", date(2025, 6, 30)); d.train(P["em04"], "焊工", date(2026, 3, 15))  # noqa: E702
    p("em04_two_trades", 30); d.train(P["em04_two_trades"], "焊工", date(2026, 3, 15))  # noqa: E702
    d.train(P["em04_two_trades"], "厨师", date(2026, 6, 15))
    p("em04_same_row", 30); d.train(P["em04_same_row"], "车工", date(2026, 3, 15))  # noqa: E702
    d.train(P["em04_same_row"], "车工", date(2026, 3, 15))
    p("em04_unpaid", 30); d.train(P["em04_unpaid"], "车工", date(2025, 3, 15))  # noqa: E702
    d.train(P["em04_unpaid"], "车工", date(2026, 3, 15), subsidy=0)

    # ---------------- EM05 无救助记录发放低保金
    p("em05", 40); d.case(P["em05"], "城乡低保", date(2026, 1, 1), date(2026, 4, 30))  # noqa: E702
    d.pay(P["em05"], "低保金", M[4], 300); d.pay(P["em05"], "低保金", M[5], 300)  # noqa: E702
    d.pay(P["em05"], "特困供养金", M[3], 600)                       # a 低保 case does not cover 特困供养金
    p("em05_tekun", 80); d.case(P["em05_tekun"], "特困供养", date(2025, 5, 20))  # noqa: E702
    d.pay(P["em05_tekun"], "特困供养金", M[5], 600)

    # ---------------- ID01 / ID02 (quarantined rows of tonight's files; suggest the likely owner)
    p("id01_owner", date(1990, 1, 1), name="王小明", village="坪漆村")
    bad = P["id01_owner"][:17] + ("0" if P["id01_owner"][17] != "0" else "1")
    P["id01_raw"] = bad
    d.quarantined("enrollment", "ID01", bad, {"name": "王小明", "town": "太平镇", "village": "坪漆村"})
    P["id02_raw"] = "5.00151E+17"
    d.quarantined("payments", "ID02", "5.00151E+17", {"name": "李 四", "town": "太平镇"})
    d.quarantined("payments", "ID01", "OLDFILE1", {"name": "旧文件"}, as_of=date(2026, 11, 1))  # not tonight's

    # ---------------- ID03 姓名不一致 / ID04 / ID05 / ID06 / ID07
    p("id03", 40, name="张三"); d.enrol(P["id03"], name="张叁", subsidy_amount_year=0)  # noqa: E702
    p("id03_dots", 40, name="阿依·古丽")
    d.add("jobs", id_number=P["id03_dots"], name="阿依·古丽", name_raw="阿依.古丽", job_type="企业就业",
          start_date=date(2026, 1, 1), town="太平镇")

    p("id04_sex", date(1980, 5, 5), sex="男")
    d.rows[("residents", D)][-1]["sex"] = "女"
    p("id04_birth", date(1980, 5, 5))
    d.rows[("residents", D)][-1]["birth_date"] = date(1980, 5, 6)
    d.poor(p("id04_registry", 40, sex="女"), sex="男")
    d.enrol(P["id04_registry"], subsidy_amount_year=100)
    d.pay(P["id04_registry"], "城乡居民养老保险代缴", M[2], 100)

    d.poor(p("id05_two_households", 40), household_no="HH-A")
    d.add("registry", **{**d.rows[("registry", D)][-1], "household_no": "HH-B"})
    d.enrol(P["id05_two_households"], subsidy_amount_year=100)
    d.pay(P["id05_two_households"], "城乡居民养老保险代缴", M[2], 100)
    p("id05_resident_twice", 40)
    d.add("residents", **d.rows[("residents", D)][-1])

    head = p("id06_head", 50)
    d.poor(p("id06_member", 20), household_no="HH-6", head_id_number=head, relation="子")
    d.enrol(P["id06_member"], subsidy_amount_year=100)
    d.pay(P["id06_member"], "城乡居民养老保险代缴", M[2], 100)

    p("id07", 40, resident=False); d.enrol(P["id07"])  # noqa: E702
    return d


@pytest.fixture(scope="module")
def night(warehouse_server, tmp_path_factory):
    from helpers import make_settings

    w = new_database(warehouse_server)
    P.clear()
    build().load(w)
    result = compare_night(w, D, make_settings(tmp_path_factory.mktemp("night")), gx=False)
    yield w, result
    drop(w)


def ids(*keys: str) -> set[str]:
    return {P[k] for k in keys}


def fired(night, rule: str) -> set[str]:
    return set(findings_of(night[0], rule))


def test_night_runs_every_rule(night):
    w, result = night
    with w.connect() as conn:
        assert conn.execute("SELECT status FROM mart.runs WHERE as_of = %s", (D,)).fetchone()[0] == "done"
        params = conn.execute("SELECT year, last_full_month, enrol_min_age, pension_min_age FROM night.params"
                              ).fetchone()
    assert params == (2026, date(2026, 10, 1), 16, 60)
    assert result.total == result.new and result.open == result.resolved == 0
    assert not [r for r, n in result.counts.items() if n == 0], result.counts


def test_SS01_not_enrolled(night):
    assert fired(night, "SS01") == ids("ss01_16", "ss01_terminated", "ss01_left")


def test_SS02_subsidy_missing(night):
    assert fired(night, "SS02") == ids("ss02_fire", "ss02_59", "ss02_paused", "ss02_prev_year",
                                       "ss02_exit_this_year", "ss02_dibao_partial", "ss02_disabled", "ss05_59")


def test_SS03_not_eligible(night):
    assert fired(night, "SS03") == ids("ss03_category", "ss03_paid")
    assert findings_of(night[0], "SS03")[P["ss03_paid"]][0]["amount"] == 200


def test_SS04_amount_mismatch(night):
    found = findings_of(night[0], "SS04")
    assert set(found) == ids("ss04_fire")  # 50 + 50 = 100 (ss04_two_payments) agrees
    assert found[P["ss04_fire"]][0]["amount"] == 100
    assert "200.00" in found[P["ss04_fire"]][0]["detail"]


def test_SS05_pension_missing(night):
    found = findings_of(night[0], "SS05")
    assert set(found) == ids("ss05_no_october", "ss05_not_drawing")
    assert "2026-10" in found[P["ss05_no_october"]][0]["detail"]


def test_SS06_pension_after_death(night):
    found = findings_of(night[0], "SS06")
    assert set(found) == ids("ss06")
    rows = found[P["ss06"]]
    assert [(r["period"], r["amount"]) for r in rows] == [("2026-10", 150), ("2026-11", 150)]
    assert rows[0]["severity"] == "critical" and "2026-09-30" in rows[0]["detail"]


def test_SS07_dead_still_enrolled(night):
    assert fired(night, "SS07") == ids("ss07_enrolled", "ss07_status")


def test_SS08_paid_twice(night):
    found = findings_of(night[0], "SS08")
    assert set(found) == ids("ss08")
    assert [(r["period"], r["amount"]) for r in found[P["ss08"]]] == [("2026-10", 120)]


def test_SS09_under_age(night):
    found = fired(night, "SS09")
    assert found == ids("ss09_59", "ss09_paid")
    assert not found & ids("ss09_60", "ss02_60", "ss05_ok")


def test_EM01_welfare_job_not_poor(night):
    assert fired(night, "EM01") == ids("em01_fire", "em01_dibao_ended")


def test_EM02_subsidy_without_job(night):
    found = findings_of(night[0], "EM02")
    assert set(found) == ids("em02")  # ss06's 临时公益性岗位 covers October
    assert [r["period"] for r in found[P["em02"]]] == ["2026-02", "2026-07"]


def test_EM03_paid_after_death(night):
    found = findings_of(night[0], "EM03")
    assert set(found) == ids("ss06")
    row = found[P["ss06"]][0]
    assert row["period"] == "" and row["amount"] == 800
    assert "低保金" in row["detail"] and "公益性岗位补贴" in row["detail"]


def test_EM04_training_twice(night):
    found = findings_of(night[0], "EM04")
    assert set(found) == ids("em04")
    assert found[P["em04"]][0]["amount"] == 1500


def test_EM05_assistance_without_case(night):
    found = findings_of(night[0], "EM05")
    assert set(found) == ids("em05")
    assert [r["period"] for r in found[P["em05"]]] == ["2026-03", "2026-05"]


def test_ID01_ID02_quarantined_ids(night):
    id01, id02 = findings_of(night[0], "ID01"), findings_of(night[0], "ID02")
    assert set(id01) == {P["id01_raw"]} and set(id02) == {P["id02_raw"]}
    row = id01[P["id01_raw"]][0]
    assert row["subject_key"] == P["id01_raw"]  # (rule, ID as written): not by extract, file or row
    assert "人社" in row["detail"] and "enrollment_20261128.csv" in row["detail"] and "第" in row["detail"]
    assert P["id01_owner"] in row["detail"]  # the likely owner: same name and birth date in residents
    assert id02[P["id02_raw"]][0]["name"] == "李四" and id02[P["id02_raw"]][0]["departments"] == "财政"


def test_ID03_name_mismatch(night):
    found = findings_of(night[0], "ID03")
    assert set(found) == ids("id03")  # 阿依.古丽 / 阿依·古丽 is one name
    assert "张叁" in found[P["id03"]][0]["detail"] and found[P["id03"]][0]["departments"] == "民政,人社"


def test_ID04_sex_birth(night):
    assert fired(night, "ID04") == ids("id04_sex", "id04_birth", "id04_registry")


def test_ID05_duplicates(night):
    assert fired(night, "ID05") == ids("id05_two_households", "id05_resident_twice")


def test_ID06_head_not_member(night):
    found = findings_of(night[0], "ID06")
    assert set(found) == ids("id06_head")
    assert found[P["id06_head"]][0]["subject_key"] == "HH-6:" + P["id06_head"]


def test_ID07_unknown_to_civil(night):
    assert fired(night, "ID07") == ids("id07")


def test_rule_checks_recorded(night):
    w, result = night
    with w.connect() as conn:
        rows = dict(conn.execute("SELECT rule_code, found FROM mart.rule_checks WHERE as_of = %s", (D,)).fetchall())
        # counted again from the findings the mart reports that night, not from the same result
        reported = dict(conn.execute(
            "SELECT f.rule_code, count(*) FROM mart.finding_nights n JOIN mart.findings f USING (finding_id) "
            "WHERE n.as_of = %s AND n.status <> 'resolved' GROUP BY 1", (D,)).fetchall())
    assert set(rows) == set(RULES)
    assert rows == {code: reported.get(code, 0) for code in RULES}
    assert all(rows.values()), rows  # the district fires every rule


IDENTITY = ("ID03", "ID04", "ID05", "ID06", "ID07")


def test_gx_cross_verifies_identity_rules(night, tmp_path):
    """GX checks ID03-ID07 on the person view night.identity, not on the findings: its count of failing
    persons equals each rule's findings, and stays when the findings are lost."""
    from helpers import make_settings

    from crosscheck.findings import run_rule_suites

    w, result = night
    settings = make_settings(tmp_path)
    checks = run_rule_suites(w, D, settings)
    for code in IDENTITY:
        assert checks[code] == {"success": False, "count": result.counts[code]}, code
        assert result.counts[code] > 0, code
    with w.transaction() as conn:
        conn.execute("CREATE TABLE night.kept AS SELECT * FROM night.findings WHERE rule_code = ANY(%s)",
                     (list(IDENTITY),))
        conn.execute("DELETE FROM night.findings WHERE rule_code = ANY(%s)", (list(IDENTITY),))
    try:
        again = run_rule_suites(w, D, settings)
    finally:
        with w.transaction() as conn:
            conn.execute("INSERT INTO night.findings SELECT * FROM night.kept")
            conn.execute("DROP TABLE night.kept")
    assert {code: again[code]["count"] for code in IDENTITY} == {code: result.counts[code] for code in IDENTITY}
    assert again["ID01"]["count"] == result.counts["ID01"]  # still the wiring check of what was materialised
    assert (settings.reports_dir / "data_docs" / f"rules-{D}-identity_people.html").is_file()


def test_persons_unknown_to_the_register_take_the_first_row_of_the_first_extract(warehouse_server, tmp_path):
    """night.people names and places a person the residents register does not know from the other
    extracts in their order (registry, assistance, enrollment, jobs, payments, …), each extract's first
    row that gives one; night.identity counts their registry and enrollment rows. Both read the extracts
    through night.sightings, which reduces the extracts whose rows are not counted: these are the
    answers of the extracts read row by row."""
    from helpers import make_settings

    d = District()
    d.person(date(1970, 1, 1))  # the register is not empty
    paid = d.person(date(1980, 2, 2), resident=False)
    d.pay(paid, "低保金", M[3], 300)["name"] = "钱二"
    d.rows[("payments", D)][-1]["town"] = "二坪镇"
    d.pay(paid, "低保金", M[4], 300)["name"] = "钱一"      # its town is the first row's
    d.pay(paid, "低保金", M[5], 300)["name"] = "钱二"
    d.pension(paid, M[5])["name"] = "钱三"                # pension payments come after payments
    d.pension(paid, M[6])["name"] = "钱三"
    enrolled = d.person(date(1981, 3, 3), resident=False)
    d.job(enrolled, "企业就业", date(2026, 1, 1))["name"] = "孙四"  # jobs come after enrollment
    d.enrol(enrolled, name="孙五", town="少云镇", village="大石村")
    d.enrol(enrolled, name="孙六", town="太平镇", village="坪漆村")
    head = d.person(date(1960, 4, 4), resident=False)
    d.poor(head, household_no="HH-9", name="李七")
    d.poor(head, household_no="HH-9", name="李七")
    w = new_database(warehouse_server)
    try:
        d.load(w)
        compare_night(w, D, make_settings(tmp_path), gx=False)
        with w.connect() as conn:
            people = {r[0]: r[1:] for r in conn.execute(
                "SELECT id_number, name, town, village, in_residents FROM night.people").fetchall()}
            identity = {r[0]: tuple(set(v) if isinstance(v, list) else v for v in r[1:]) for r in conn.execute(
                "SELECT id_number, names, extracts, registry_rows, enrollment_rows, households, headed_households "
                "FROM night.identity").fetchall()}
    finally:
        drop(w)
    assert people[paid] == ("钱二", "二坪镇", None, False)
    assert people[enrolled] == ("孙五", "少云镇", "大石村", False)
    assert people[head] == ("李七", "太平镇", "坪漆村", False)
    assert identity[paid] == ({"钱一", "钱二", "钱三"}, {"payments", "pension_payments"}, 0, 0, None, None)
    assert identity[enrolled] == ({"孙四", "孙五", "孙六"}, {"enrollment", "jobs"}, 0, 2, None, None)
    assert identity[head] == ({"李七"}, {"registry"}, 2, 0, {"HH-9"}, {"HH-9"})


def test_configuration_changes_the_rules(warehouse_server):
    """代缴 categories and age limits are settings, not code."""
    import dataclasses

    from crosscheck.settings import get_settings

    w = new_database(warehouse_server)
    try:
        build().load(w)  # the same IDs as the module's district: make_id is deterministic
        settings = dataclasses.replace(get_settings(), subsidy_categories=("poverty_active",), pension_min_age=55)
        compare_night(w, D, settings, gx=False)
        assert not fired((w,), "SS02") & ids("ss02_dibao_partial", "ss02_disabled")  # 低保/残疾 not configured
        assert P["ss02_fire"] in fired((w,), "SS02")
        assert P["ss09_59"] not in fired((w,), "SS09")  # 59 is old enough when the limit is 55
    finally:
        drop(w)


def test_night_without_any_data(warehouse_server, tmp_path):
    """No extract ever received: the night completes, nothing is found, every extract is stale."""
    from helpers import make_settings

    w = new_database(warehouse_server)
    try:
        result = compare_night(w, D, make_settings(tmp_path), gx=False)
        assert result.total == 0 and len(result.stale) == len(contracts())
        with w.connect() as conn:
            assert conn.execute("SELECT status FROM mart.runs").fetchone()[0] == "done"
            assert conn.execute("SELECT count(*) FROM mart.freshness WHERE stale AND data_as_of IS NULL"
                                ).fetchone()[0] == len(contracts())
    finally:
        drop(w)
