"""Planted findings: one function per phase, each plant recorded in the world's truth list.

Every planted person is chosen so that the plant causes exactly the finding it records and nothing
else (no collateral finding), and is marked ``used`` so that no other plant touches it.

Phases:
  A facts       before jobs/enrolment are derived (deaths, case ends)       -> plant_facts
  A2 jobs       after jobs were built (EM01)                                 -> plant_jobs
  B enrolment   after enrolment was derived, before payments (SS01-SS05, SS07) -> plant_enrollment
  C money       after payments were derived (SS06, SS08, SS09, EM02-EM05, ID07) -> plant_money
  D identity    on the output tables (ID01-ID06)                             -> write.plant_identity
"""

from __future__ import annotations

import numpy as np

from crosscheck.generate import geo, ledger
from crosscheck.generate.ledger import (
    BEN_ENDED,
    BEN_NONE,
    BEN_PAID,
    BEN_PAUSED,
    EN_ENDED,
    EN_NORMAL,
    IT_DIBAO,
    IT_PW,
    IT_TEKUN,
    IT_TRAIN,
    IT_TRAVEL,
    NAT_M,
)
from crosscheck.generate.people import (
    CAT_DIBAO,
    CAT_TEKUN,
    JOB_ENT,
    JOB_FP,
    JOB_LS,
    ST_DEAD,
    ST_MOVED,
    World,
    add_external_persons,
    add_years,
    has_case,
    months_of,
    pick,
    rand_dates,
)

DEPT = {
    "residents": "civil",
    "deaths": "civil",
    "assistance": "civil",
    "registry": "poverty",
    "payments": "finance",
    "enrollment": "hrss",
    "pension_payments": "hrss",
    "jobs": "hrss",
    "training": "hrss",
}


def plant_count(w: World) -> int:
    """Plants per rule: at least 3, about one per 20,000 persons."""
    return max(3, round(w.N / 20_000))


def mark(w: World, rule: str, person: int, extract: str, detail: str, period=None) -> None:
    pid = w.id18[person].decode()
    per = "" if period is None else str(np.datetime64(period, "M"))
    w.truth.append((rule, pid, per, DEPT[extract], extract, detail))
    w.used[person] = True


def _base(w: World) -> np.ndarray:
    N = len(w.birth)
    return w.in_res & (w.status != ST_MOVED) & ~w.used & ~w.protected & (np.arange(N) < w.N)


def _die(w: World, persons: np.ndarray, dates: np.ndarray, rng) -> None:
    w.death[persons] = dates
    w.status[persons] = ST_DEAD
    w.death_record[persons] = True
    reg = dates + rng.integers(0, 15, len(persons)).astype("timedelta64[D]")
    w.death_reg[persons] = np.minimum(reg, w.D)


def _month_date(m: np.datetime64, day: int) -> np.datetime64:
    return m.astype("datetime64[D]") + np.timedelta64(day - 1, "D")


# ====================================================================== phase A


def plant_facts(w: World) -> None:
    rng = w.rng("plant-facts")
    n = plant_count(w)
    P = len(w.birth)
    w.force_enrol = np.zeros(P, dtype=bool)
    w.no_enrol = np.zeros(P, dtype=bool)
    age = w.age()
    alive = w.alive
    nocase = ~has_case(w)
    base = _base(w)

    # SS06: pensioners who die; payments continue for 1-3 months after the month of death (phase C)
    w.p_ss06 = []
    for p in pick(rng, base & alive & ~w.poor & nocase & (age >= 66) & (age <= 90), n):
        k = int(rng.integers(1, 4))
        dm = w.LFM - np.timedelta64(k + int(rng.integers(0, 6)), "M")
        dm = max(dm, w.W0)
        k = min(k, int((w.LFM - dm).astype(np.int64)))
        _die(w, np.array([p]), np.array([_month_date(dm, int(rng.integers(1, 29)))]), rng)
        w.force_enrol[p] = True
        w.used[p] = True
        w.p_ss06.append((int(p), dm, k))
    # SS07: deceased, enrolment never terminated (phase B)
    w.p_ss07 = pick(rng, base & alive & ~w.poor & nocase & (age >= 30) & (age <= 88), n)
    if len(w.p_ss07):
        _die(
            w,
            w.p_ss07,
            rand_dates(
                rng, np.full(len(w.p_ss07), w.WD0), np.full(len(w.p_ss07), w.D - np.timedelta64(5, "D"))
            ),
            rng,
        )
        w.force_enrol[w.p_ss07] = True
        w.used[w.p_ss07] = True
    # EM03 (a): a 低保/特困 recipient dies, the case is never closed, money keeps going (phase C)
    c = w.cases
    open_case = (np.isin(c["cat"], [CAT_DIBAO, CAT_TEKUN])) & np.isnat(c["end"]) & (c["grade"] == 0)
    holders = np.zeros(P, dtype=bool)
    holders[c["person"][open_case]] = True
    w.p_em03a = []
    for p in pick(rng, base & alive & holders & (age >= 20), max(1, n // 2)):
        dm = w.LFM - np.timedelta64(int(rng.integers(1, 5)), "M")
        dm = max(dm, w.W0)
        if dm >= w.LFM:
            continue
        day = int(rng.integers(12, 29))
        _die(w, np.array([p]), np.array([_month_date(dm, day)]), rng)
        w.used[p] = True
        w.p_em03a.append(int(p))
    # EM05 (a): a case ends, the monthly money does not stop (phase C)
    holders[:] = False
    holders[c["person"][open_case & (c["cat"] == CAT_DIBAO)]] = True
    w.p_em05a = []
    for p in pick(rng, base & w.alive & holders, max(1, n // 2)):
        k = int(rng.integers(1, 4))
        em = w.LFM - np.timedelta64(k, "M")
        row = np.flatnonzero((c["person"] == p) & (c["cat"] == CAT_DIBAO))[0]
        end = _month_date(em, int(rng.integers(1, 28)))
        if end <= c["start"][row]:
            continue
        c["end"][row] = end
        w.used[p] = True
        w.p_em05a.append((int(p), em, k))


# ====================================================================== phase A2


def plant_jobs(w: World) -> None:
    """EM01: a 扶贫公益性岗位 for someone neither poor nor in a 低保/特困 case open at D."""
    from crosscheck.generate.people import case_open_at_D

    rng = w.rng("plant-jobs")
    n = plant_count(w)
    age = w.age()
    c = w.cases
    ended = np.zeros(len(w.birth), dtype=bool)
    ended[c["person"][(c["cat"] == CAT_DIBAO) & ~np.isnat(c["end"])]] = True
    cand = _base(w) & w.alive & ~w.poor & ~case_open_at_D(w) & (age >= 25) & (age <= 55)
    chosen = np.concatenate([pick(rng, cand & ended, n // 2), pick(rng, cand & ~ended, n)])[:n]
    k = len(chosen)
    start = rand_dates(rng, np.full(k, w.WD0), np.full(k, w.D - np.timedelta64(60, "D")))
    towns = np.array([v.town for v in w.vill], dtype=object)[w.village[chosen]]
    _add_jobs(
        w,
        chosen,
        JOB_FP,
        start,
        np.full(k, np.datetime64("NaT", "D")),
        rng.integers(60, 101, k) * 10,
        towns,
        rng,
    )
    for p in chosen:
        why = "低保已终止" if ended[p] else "非建档立卡且无低保特困"
        mark(w, "EM01", int(p), "jobs", f"扶贫公益性岗位人员{why}")


def _add_jobs(w, persons, jtype, start, end, pay, towns, rng) -> None:
    j = w.jobs
    k = len(persons)
    add = dict(
        person=np.asarray(persons, dtype=np.int64),
        type=np.full(k, jtype, dtype=np.int8),
        employer=np.full(k, "镇人民政府", dtype=object),
        position=np.array(geo.PUBLIC_WELFARE_POSITIONS, dtype=object)[rng.integers(0, 7, k)],
        start=np.asarray(start, dtype="datetime64[D]"),
        end=np.asarray(end, dtype="datetime64[D]"),
        pay=np.asarray(pay, dtype=np.int64),
        town=np.asarray(towns, dtype=object),
    )
    for key in j:
        j[key] = np.concatenate([j[key], add[key]])


# ====================================================================== phase B


def plant_enrollment(w: World) -> None:
    rng = w.rng("plant-enrollment")
    n = plant_count(w)
    e = w.enrol
    p = e["person"].copy()
    age = w.age(p)
    alive = w.alive[p]
    free = ~w.used[p] & ~w.protected[p] & w.in_res[p]
    poor = w.poor[p]
    elig = w.elig[p]
    normal = e["status"] == EN_NORMAL

    def rows(mask, k):
        return pick(rng, mask & free & ~w.used[p], k)

    # SS01: poor, alive, 16+, not a student, not enrolled
    for i, r in enumerate(rows(poor & alive & ~w.student[p] & (age >= 16) & (age <= 59) & normal, n)):
        if i % 2 == 0:
            e["status"][r] = EN_ENDED
            e["cat"][r] = 0
            e["amount"][r] = e["dj1"][r] = e["dj2"][r] = e["dj_prev"][r] = 0
            mark(w, "SS01", int(p[r]), "enrollment", "建档立卡人员参保状态为终止参保")
        else:
            e["person"][r] = -1  # dropped below
            mark(w, "SS01", int(p[r]), "enrollment", "建档立卡人员无参保记录")
    # SS02: eligible, enrolled, 16-59, nothing paid this year
    for r in rows(alive & elig & (age >= 16) & (age <= 59) & normal & (e["amount"] > 0), n):
        e["amount"][r] = e["dj1"][r] = e["dj2"][r] = 0
        mark(
            w,
            "SS02",
            int(p[r]),
            "enrollment",
            f"代缴类别{ledger.SUBSIDY_CATS[e['cat'][r]]}，本年代缴金额为0且无财政代缴",
        )
    # SS03: 代缴 for someone not eligible
    former_poor = poor & ~elig
    cand = alive & ~elig & (age >= 16) & (age <= 59) & normal & (e["amount"] == 0) & (e["cat"] == 0)
    chosen = np.concatenate([rows(cand & former_poor, n // 2), rows(cand & ~former_poor, n)])[:n]
    for i, r in enumerate(chosen):
        e["cat"][r] = 1 if former_poor[r] else 2
        if i % 3 == 1:
            e["amount"][r] = e["dj1"][r] = 10000
        elif i % 3 == 2:
            e["cat"][r] = 0
            e["amount"][r] = e["dj1"][r] = 10000
        w.used[p[r]] = True
        mark(
            w,
            "SS03",
            int(p[r]),
            "enrollment",
            f"非代缴对象记录代缴（代缴类别{ledger.SUBSIDY_CATS[e['cat'][r]]}）",
        )
    # SS04: HR's amount differs from finance's payments
    for i, r in enumerate(
        rows(alive & elig & (age >= 16) & (age <= 59) & normal & (e["amount"] == 10000) & (e["dj2"] == 0), n)
    ):
        v = i % 4
        if v == 0:
            e["amount"][r] = 20000
        elif v == 1:
            e["dj2"][r] = 10000
        elif v == 2:
            e["dj1"][r] = 0
        else:
            e["amount"][r] = 0
        fin = (e["dj1"][r] + e["dj2"][r]) / 100
        mark(
            w,
            "SS04",
            int(p[r]),
            "enrollment",
            f"人社本年代缴{e['amount'][r] / 100:.2f}元，财政代缴{fin:.2f}元",
        )
    # SS05: poor pensioner not paid
    cand = (
        poor
        & alive
        & (age >= 60)
        & (e["benefit"] == BEN_PAID)
        & (e["start"] <= w.LFM - np.timedelta64(3, "M"))
    )
    for i, r in enumerate(rows(cand, n)):
        v = i % 3
        if v == 0:
            e["benefit"][r] = BEN_PAUSED
            e["pay_until"][r] = w.LFM - np.timedelta64(int(rng.integers(1, 4)), "M")
            why = "待遇状态暂停发放"
        elif v == 1:
            e["pay_until"][r] = w.LFM - np.timedelta64(1, "M")
            why = f"{w.LFM}无养老金发放记录"
        else:
            e["benefit"][r] = BEN_NONE
            e["start"][r] = NAT_M
            e["pension"][r] = -1
            why = "年满60周岁未领取待遇"
        mark(w, "SS05", int(p[r]), "enrollment", why)
    # SS06 persons: make sure they were drawing a pension (their payments continue in phase C)
    for q, _dm, _k in w.p_ss06:
        r = np.flatnonzero(p == q)[0]
        if e["benefit"][r] != BEN_ENDED:
            e["enrol_date"][r] = np.datetime64("2011-03-15")
            e["start"][r] = max(
                months_of(add_years(w.birth[q : q + 1], 60))[0], np.datetime64("2011-04", "M")
            ) + np.timedelta64(1, "M")
            e["benefit"][r] = BEN_ENDED
            e["pension"][r] = int(rng.integers(175, 451)) * 100
    # SS07: deceased, still 正常参保 or 正常领取
    for i, q in enumerate(w.p_ss07):
        r = np.flatnonzero(p == q)[0]
        if e["benefit"][r] == BEN_ENDED and i % 2 == 0:
            e["benefit"][r] = BEN_PAID
            why = "死亡人员待遇状态仍为正常领取"
            if i % 4 == 0:
                e["status"][r] = EN_NORMAL
                why = "死亡人员仍正常参保、正常领取"
        else:
            e["status"][r] = EN_NORMAL
            why = "死亡人员参保状态仍为正常参保"
        mark(w, "SS07", int(q), "enrollment", why)
    keep = e["person"] >= 0
    for key in e:
        e[key] = e[key][keep]


# ====================================================================== phase C


def plant_money(w: World) -> None:
    rng = w.rng("plant-money")
    n = plant_count(w)
    pen = w.pen
    fin = w.fin
    e = w.enrol
    age = w.age()
    row_of = {int(q): i for i, q in enumerate(e["person"])}

    # SS06: pension paid for months after the month of death
    for q, dm, k in w.p_ss06:
        r = row_of[q]
        for j in range(1, k + 1):
            m = dm + np.timedelta64(j, "M")
            pen.add(person=[q], month=[m], amount=[e["pension"][r]], person_no=[e["person_no"][r]])
            mark(w, "SS06", q, "pension_payments", f"死亡后发放养老金{e['pension'][r] / 100:.2f}元", period=m)
    # SS08: the same month paid twice
    pp = np.concatenate(pen.parts["person"])
    pm = np.concatenate(pen.parts["month"])
    pa_ = np.concatenate(pen.parts["amount"])
    pno = np.concatenate(pen.parts["person_no"])
    counts = np.bincount(pp, minlength=len(w.birth))
    cand = _base(w) & w.alive & (counts >= 3)
    for i, q in enumerate(pick(rng, cand, n)):
        rows = np.flatnonzero(pp == q)
        for r in rng.choice(rows, 1 + (i % 2), replace=False):
            pen.add(person=[q], month=[pm[r]], amount=[pa_[r]], person_no=[pno[r]])
            mark(w, "SS08", int(q), "pension_payments", f"同月重复发放{pa_[r] / 100:.2f}元", period=pm[r])
    # SS09: pension status or payment before 60
    ep = e["person"]
    cand = (
        ~w.used[ep]
        & ~w.protected[ep]
        & w.alive[ep]
        & ~w.poor[ep]
        & ~w.elig[ep]
        & (age[ep] >= 50)
        & (age[ep] <= 59)
        & (e["status"] == EN_NORMAL)
        & (e["benefit"] == BEN_NONE)
        & w.in_res[ep]
    )
    for i, r in enumerate(pick(rng, cand, n)):
        q = int(ep[r])
        v = i % 3
        amt = int(rng.integers(175, 451)) * 100
        if v in (0, 2):
            e["benefit"][r] = BEN_PAID
            e["pension"][r] = amt
            e["start"][r] = w.LFM - np.timedelta64(2, "M") if v == 0 else w.M_D
        months = [w.LFM - np.timedelta64(j, "M") for j in range(3)] if v == 0 else ([w.LFM] if v == 1 else [])
        for m in months:
            pen.add(person=[q], month=[m], amount=[amt], person_no=[e["person_no"][r]])
        mark(w, "SS09", q, "enrollment", "未满60周岁" + ("领取养老金" if v != 2 else "待遇状态为正常领取"))

    base = _base(w)
    job_pw = np.zeros(len(w.birth), dtype=bool)
    j = w.jobs
    job_pw[j["person"][np.isin(j["type"], [JOB_FP, JOB_LS])]] = True
    anyjob = np.zeros(len(w.birth), dtype=bool)
    anyjob[j["person"]] = True
    towns = np.array([v.town for v in w.vill], dtype=object)

    # EM02: 公益性岗位补贴 for months no public-welfare job covers
    cand = base & w.alive & ~anyjob & (age >= 25) & (age <= 58)
    for i, q in enumerate(pick(rng, cand, n)):
        k = 1 + i % 3
        pay = int(rng.integers(50, 91)) * 10
        if i % 2 == 0:
            end_m = w.LFM - np.timedelta64(k, "M")
            start_m = max(end_m - np.timedelta64(int(rng.integers(2, 8)), "M"), w.W0)
            _add_jobs(
                w,
                [q],
                JOB_LS,
                [_month_date(start_m, 3)],
                [_month_date(end_m, 20)],
                [pay],
                towns[w.village[[q]]],
                rng,
            )
            m = start_m
            while m <= end_m:
                fin.add(person=[q], item=IT_PW, period=[m], amount=[pay * 100], paid=[_month_date(m, 25)])
                m = m + np.timedelta64(1, "M")
            extra = [end_m + np.timedelta64(x, "M") for x in range(1, k + 1)]
            why = "岗位终止后仍发放公益性岗位补贴"
        else:
            extra = [w.LFM - np.timedelta64(x, "M") for x in range(k)]
            why = "无公益性岗位记录却发放公益性岗位补贴"
        for m in extra:
            fin.add(person=[q], item=IT_PW, period=[m], amount=[pay * 100], paid=[_month_date(m, 25)])
            mark(w, "EM02", int(q), "payments", why, period=m)

    # EM03: finance payments dated after death
    for q in w.p_em03a:
        c = w.cases
        r = np.flatnonzero(
            (c["person"] == q) & np.isnat(c["end"]) & np.isin(c["cat"], [CAT_DIBAO, CAT_TEKUN])
        )[0]
        item = IT_DIBAO if c["cat"][r] == CAT_DIBAO else IT_TEKUN
        dm = months_of(w.death[q : q + 1])[0]
        total = 0
        m = dm
        k = 0
        while m <= w.LFM and k < 3:
            paid = _month_date(m, 10)
            if paid > w.death[q]:
                fin.add(person=[q], item=item, period=[m], amount=[c["amount"][r] * 100], paid=[paid])
                total += c["amount"][r]
                k += 1
            m = m + np.timedelta64(1, "M")
        mark(w, "EM03", q, "payments", f"死亡后仍发放{ledger.ITEMS[item]}{total:.2f}元")
    dead_ok = (
        base
        & ~w.alive
        & w.death_record
        & (w.death >= w.WD0 + np.timedelta64(60, "D"))
        & (w.death <= w.D - np.timedelta64(40, "D"))
    )
    k_rest = max(2, n - len(w.p_em03a))
    has_train = np.zeros(len(w.birth), dtype=bool)
    has_train[w.training["person"]] = True
    age_death = (w.death - w.birth).astype(np.int64) // 366
    # (c) 公益性岗位补贴 for the month of death paid after the death date
    day_ok = (w.death - w.death.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) < 20
    done_em03 = len(w.p_em03a)
    for q in pick(
        rng,
        dead_ok
        & w.poor
        & ~anyjob
        & day_ok
        & (months_of(w.death) <= w.LFM)
        & (age_death >= 20)
        & (age_death <= 60),
        k_rest // 2,
    ):
        dm = months_of(w.death[q : q + 1])[0]
        start_m = max(dm - np.timedelta64(int(rng.integers(2, 9)), "M"), w.W0)
        pay = int(rng.integers(60, 101)) * 10
        _add_jobs(w, [q], JOB_FP, [_month_date(start_m, 2)], [w.death[q]], [pay], towns[w.village[[q]]], rng)
        m = start_m
        while m <= dm:
            fin.add(person=[q], item=IT_PW, period=[m], amount=[pay * 100], paid=[_month_date(m, 25)])
            m = m + np.timedelta64(1, "M")
        mark(w, "EM03", int(q), "payments", f"死亡后仍发放公益性岗位补贴{pay:.2f}元")
        done_em03 += 1
    # (b) training subsidy paid after death: a person with no other record dies after a course
    isolated = base & w.alive & ~w.poor & ~has_train & ~anyjob & ~has_case(w) & (age >= 22) & (age <= 58)
    for part in (w.enrol["person"], np.concatenate(fin.parts["person"]), np.concatenate(pen.parts["person"])):
        isolated[part[part >= 0]] = False
    k_b = max(0, n - done_em03)
    chosen = pick(rng, isolated, k_b)
    if len(chosen):
        _die(
            w,
            chosen,
            rand_dates(
                rng,
                np.full(len(chosen), w.WD0 + np.timedelta64(90, "D")),
                np.full(len(chosen), w.D - np.timedelta64(40, "D")),
            ),
            rng,
        )
    for q in chosen:
        done = w.death[q] - np.timedelta64(int(rng.integers(10, 60)), "D")
        trade = int(rng.integers(0, len(geo.TRADES)))
        sub = int(rng.integers(8, 25)) * 100
        _add_training(w, q, trade, done, 1, sub, 0)
        paid = w.death[q] + np.timedelta64(int(rng.integers(3, 30)), "D")
        fin.add(
            person=[q],
            item=IT_TRAIN,
            period=[months_of(np.array([done]))[0]],
            amount=[sub * 100],
            paid=[paid],
        )
        mark(w, "EM03", int(q), "payments", f"死亡后仍发放就业培训补贴{sub:.2f}元")

    # EM04: the same training subsidised twice
    for q in pick(rng, base & w.alive & ~has_train & (age >= 22) & (age <= 55), n):
        trade = int(rng.integers(0, len(geo.TRADES)))
        d1 = w.D - np.timedelta64(int(rng.integers(300, 700)), "D")
        d2 = d1 + np.timedelta64(int(rng.integers(150, 250)), "D")
        for d in (d1, d2):
            sub = int(rng.integers(8, 25)) * 100
            _add_training(w, q, trade, d, 1, sub, 0)
            paid = d + np.timedelta64(int(rng.integers(15, 46)), "D")
            if w.WD0 <= paid <= w.D:
                fin.add(
                    person=[q],
                    item=IT_TRAIN,
                    period=[months_of(np.array([d]))[0]],
                    amount=[sub * 100],
                    paid=[paid],
                )
        mark(w, "EM04", int(q), "training", f"{geo.TRADES[trade]}培训重复享受补贴")

    # EM05: 低保金/特困供养金 for months no case covers
    for q, em, k in w.p_em05a:
        c = w.cases
        r = np.flatnonzero((c["person"] == q) & (c["cat"] == CAT_DIBAO))[0]
        for x in range(1, k + 1):
            m = em + np.timedelta64(x, "M")
            fin.add(
                person=[q],
                item=IT_DIBAO,
                period=[m],
                amount=[c["amount"][r] * 100],
                paid=[_month_date(m, 10)],
            )
            mark(w, "EM05", q, "payments", "低保终止后仍发放低保金", period=m)
    c = w.cases
    dibao_open = np.zeros(len(w.birth), dtype=bool)
    dibao_open[c["person"][(c["cat"] == CAT_DIBAO) & np.isnat(c["end"])]] = True
    tekun = has_case(w, (CAT_TEKUN,))
    rest = max(2, n - len(w.p_em05a))
    for q in pick(rng, _base(w) & w.alive & dibao_open & ~tekun, (rest + 1) // 2):
        k = 1 + int(rng.integers(0, 2))
        for x in range(k):
            m = w.LFM - np.timedelta64(x, "M")
            fin.add(person=[q], item=IT_TEKUN, period=[m], amount=[90000], paid=[_month_date(m, 10)])
            mark(w, "EM05", int(q), "payments", "无特困供养记录却发放特困供养金", period=m)
    for q in pick(rng, _base(w) & w.alive & ~has_case(w) & (age >= 18), rest // 2):
        m = w.LFM
        fin.add(person=[q], item=IT_DIBAO, period=[m], amount=[55000], paid=[_month_date(m, 10)])
        mark(w, "EM05", int(q), "payments", "无低保记录却发放低保金", period=m)

    # ID07: people unknown to civil affairs, each in one extract
    ext = add_external_persons(w, n, rng)
    for i, q in enumerate(ext):
        v = i % 4
        if v == 0:
            _add_jobs(
                w,
                [q],
                JOB_ENT,
                [w.D - np.timedelta64(200, "D")],
                [np.datetime64("NaT", "D")],
                [3500],
                [towns[w.village[q]]],
                rng,
            )
            w.jobs["employer"][-1] = geo.SYNTHETIC_EMPLOYERS[i % len(geo.SYNTHETIC_EMPLOYERS)]
            w.jobs["position"][-1] = "普工"
            ex = "jobs"
        elif v == 1:
            _add_training(
                w, q, int(rng.integers(0, len(geo.TRADES))), w.D - np.timedelta64(400, "D"), 1, 1200, 0
            )
            ex = "training"
        elif v == 2:
            fin.add(person=[q], item=IT_TRAVEL, period=[w.LFM], amount=[80000], paid=[_month_date(w.LFM, 15)])
            ex = "payments"
        else:
            for key, val in dict(
                person=q,
                person_no=e["person_no"].max() + 1,
                status=EN_NORMAL,
                enrol_date=w.D - np.timedelta64(500, "D"),
                level=20000,
                cat=0,
                amount=0,
                benefit=BEN_NONE,
                start=NAT_M,
                pension=-1,
                dj1=0,
                dj2=0,
                dj_prev=0,
                pay_until=NAT_M,
            ).items():
                e[key] = np.concatenate([e[key], np.array([val], dtype=e[key].dtype)])
            ex = "enrollment"
        mark(w, "ID07", int(q), ex, "人员不在户籍人口库中")


def _add_training(w, q, trade, done, qualified, subsidy, travel) -> None:
    t = w.training
    add = dict(
        person=q,
        trade=trade,
        institution=int(q) % len(geo.SYNTHETIC_INSTITUTIONS),
        done=done,
        qualified=qualified,
        subsidy=subsidy,
        travel=travel,
    )
    for key in t:
        t[key] = np.concatenate([t[key], np.array([add[key]], dtype=t[key].dtype)])


__all__ = [
    "plant_facts",
    "plant_jobs",
    "plant_enrollment",
    "plant_money",
    "mark",
    "plant_count",
    "IT_TRAVEL",
    "CAT_TEKUN",
    "JOB_ENT",
    "BEN_PAID",
]


# ====================================================================== phase D (identity)

ID_DEPTS = {
    "civil": ("residents", "deaths", "assistance"),
    "poverty": ("registry",),
    "finance": ("payments",),
    "hrss": ("enrollment", "pension_payments", "jobs", "training"),
}


def _truth_raw(w: World, rule: str, written: str, extract: str, detail: str) -> None:
    w.truth.append((rule, written, "", DEPT[extract], extract, detail))


def _damage_id01(s: str, kind: int) -> str:
    from crosscheck.generate.ids import check_char

    if kind == 0:
        return s[:10] + s[11:]  # 17 characters
    if kind == 1:
        return s[:12] + "O" + s[13:]  # a letter where a digit belongs
    if kind == 2:
        first = s[:10] + "13" + s[12:17]  # month 13
        return first + check_char(first)
    if kind == 3:
        good = s[17]
        for c in "0123456789X":
            if c != good and not (s[15:17] == "00" and c == "0"):
                return s[:17] + c
    return s[:9] + s[9] + s[9:]  # 19 characters


def _damage_id02(s: str, kind: int, k: int) -> str | None:
    from crosscheck.generate.ids import check_char

    if kind == 1:
        if check_char(s[:15] + "00") == "0":
            return None
        return s[:15] + "000"
    mant = s[1:k].rstrip("0")
    return f"{s[0]}.{mant}E+17" if mant else f"{s[0]}E+17"


def plant_identity(w: World, tables: dict) -> None:
    from crosscheck.generate.people import FEMALE_CHARS, MALE_CHARS, REL_HEAD

    rng = w.rng("plant-identity")
    n = plant_count(w)
    P = len(w.birth)
    present = {dept: np.zeros(P, dtype=bool) for dept in ID_DEPTS}
    rows_in = {}
    for dept, exs in ID_DEPTS.items():
        for ex in exs:
            ids_ = tables[ex].cols["id_number"]
            present[dept][ids_[ids_ >= 0]] = True
            rows_in[ex] = np.bincount(ids_[ids_ >= 0], minlength=P)
    base = _base(w) & w.alive
    written_ids: set[str] = set()

    # ID01 / ID02: unusable IDs on rows whose loss changes nothing else
    def targets(k):
        tr = tables["training"].cols["id_number"]
        pay = tables["payments"]
        jb = tables["jobs"]
        pools = [
            ("training", np.flatnonzero(base[tr] & (rows_in["training"][tr] == 1))),
            ("payments", np.flatnonzero(base[pay.cols["id_number"]] & (pay.cols["item"].codes == IT_TRAVEL))),
            (
                "jobs",
                np.flatnonzero(
                    base[jb.cols["id_number"]]
                    & np.isin(jb.cols["job_type"].codes, [3, 4])
                    & (rows_in["jobs"][jb.cols["id_number"]] == 1)
                ),
            ),
        ]
        only_res = base & present["civil"] & ~present["poverty"] & ~present["finance"] & ~present["hrss"]
        only_res &= (rows_in["deaths"] == 0) & (rows_in["assistance"] == 0) & (rows_in["residents"] == 1)
        pools.append(("residents", np.flatnonzero(only_res[tables["residents"].cols["id_number"]])))
        out = []
        for i in range(k):
            ex, pool = pools[i % len(pools)]
            pool = pool[~w.used[tables[ex].cols["id_number"][pool]]] if len(pool) else pool
            if len(pool) == 0:
                ex, pool = pools[-1]
                pool = pool[~w.used[tables[ex].cols["id_number"][pool]]]
            r = int(rng.choice(pool))
            w.used[tables[ex].cols["id_number"][r]] = True
            out.append((ex, r))
        return out

    for i, (ex, r) in enumerate(targets(n)):
        s = w.id18[tables[ex].cols["id_number"][r]].decode()
        kind = i % 5
        bad = _damage_id01(s, kind)
        while bad in written_ids:
            kind = (kind + 1) % 5
            bad = _damage_id01(s, kind)
        written_ids.add(bad)
        tables[ex].overrides.setdefault("id_number", {})[r] = bad
        reason = ["位数错误", "含非法字符", "出生日期无效", "校验位错误", "位数错误"][kind]
        _truth_raw(w, "ID01", bad, ex, f"身份证号{reason}")
    for i, (ex, r) in enumerate(targets(n)):
        s = w.id18[tables[ex].cols["id_number"][r]].decode()
        bad = _damage_id02(s, i % 2, 7)
        k = 6
        while bad is None or bad in written_ids:
            bad = _damage_id02(s, 0, k)
            k += 1
        written_ids.add(bad)
        tables[ex].overrides.setdefault("id_number", {})[r] = bad
        _truth_raw(w, "ID02", bad, ex, "身份证号被Excel损坏（科学计数法或末三位000），请以文本格式重新导出")

    def alt_name(p: int) -> str:
        name = str(w.name[p])
        pool = MALE_CHARS if w.sex[p] == 1 else FEMALE_CHARS
        c = pool[int(rng.integers(0, len(pool)))]
        while c == name[-1]:
            c = pool[int(rng.integers(0, len(pool)))]
        return name[:-1] + c

    plain = np.char.find(w.name.astype(str), "·") < 0
    # ID03: same ID, different name in two departments
    only_hrss = base & plain & present["hrss"] & ~present["poverty"] & ~present["finance"]
    only_hrss &= rows_in["enrollment"] > 0
    for i in range(n):
        v = i % 3
        if v == 0:
            pool = only_hrss & ~w.used
        elif v == 1:
            pool = base & plain & present["poverty"] & ~w.used
        else:
            pool = base & plain & present["finance"] & ~w.used
        got = pick(rng, pool, 1)
        if len(got) == 0:
            got = pick(rng, only_hrss & ~w.used, 1)
            v = 0
        q = int(got[0])
        alt = alt_name(q)
        exs = ID_DEPTS["hrss"] if v == 0 else (("registry",) if v == 1 else ("payments",))
        for ex in exs:
            tables[ex].name_alt[q] = alt
        mark(
            w,
            "ID03",
            q,
            exs[0],
            f"户籍姓名{w.name[q]}，{'人社' if v == 0 else ('扶贫' if v == 1 else '财政')}姓名{alt}",
        )

    # ID04: sex / birth date column disagrees with the ID
    res = tables["residents"]
    reg = tables["registry"]
    for i in range(n):
        v = i % 3
        if v < 2:
            q = int(pick(rng, base & (rows_in["residents"] == 1) & ~w.used, 1)[0])
            r = int(np.flatnonzero(res.cols["id_number"] == q)[0])
            if v == 0:
                res.cols["sex"].codes[r] = 1 - res.cols["sex"].codes[r]
                why = "性别与身份证号不符"
            else:
                res.cols["birth_date"][r] = res.cols["birth_date"][r] + np.timedelta64(
                    int(rng.integers(1, 40)), "D"
                )
                why = "出生日期与身份证号不符"
            mark(w, "ID04", q, "residents", why)
        else:
            q = int(pick(rng, base & (rows_in["registry"] == 1) & ~w.used, 1)[0])
            r = int(np.flatnonzero(reg.cols["id_number"] == q)[0])
            reg.cols["sex"].codes[r] = 1 - reg.cols["sex"].codes[r]
            mark(w, "ID04", q, "registry", "扶贫库性别与身份证号不符")

    # ID05: one person in two poverty households, or the same key twice in one snapshot
    used_hh: set[int] = set()
    hh_no = reg.cols["household_no"]
    e = tables["enrollment"]
    ep = e.cols["id_number"]
    en_ok = np.flatnonzero(
        (e.cols["enrol_status"].codes == EN_NORMAL)
        & (e.cols["benefit_status"].codes == BEN_NONE)
        & (e.cols["subsidy_amount_year"] == 0)
        & (e.cols["subsidy_category"].codes == 0)
    )
    for i in range(n):
        v = i % 4
        if v == 0:
            q = int(pick(rng, base & (rows_in["residents"] == 1) & ~w.used, 1)[0])
            r = int(np.flatnonzero(res.cols["id_number"] == q)[0])
            res.append_copies([r])
            mark(w, "ID05", q, "residents", "户籍人口库同一身份证号重复")
        elif v in (1, 2):
            cand = base & (rows_in["registry"] == 1) & ~w.used & (w.relation != REL_HEAD)
            q = int(pick(rng, cand, 1)[0])
            r = int(np.flatnonzero(reg.cols["id_number"] == q)[0])
            used_hh.add(int(hh_no[r]))
            if v == 1:
                others = np.flatnonzero(hh_no != hh_no[r])
                o = int(rng.choice(others))
                used_hh.add(int(hh_no[o]))
                reg.append_copies(
                    [r], {"household_no": [hh_no[o]], "head_id_number": [reg.cols["head_id_number"][o]]}
                )
                mark(w, "ID05", q, "registry", f"同一人员属于两个贫困户（{hh_no[r]}、{hh_no[o]}）")
            else:
                reg.append_copies([r])
                mark(w, "ID05", q, "registry", "扶贫库同一身份证号重复")
        else:
            pool = en_ok[
                base[ep[en_ok]]
                & ~w.used[ep[en_ok]]
                & ~w.elig[ep[en_ok]]
                & (rows_in["enrollment"][ep[en_ok]] == 1)
            ]
            r = int(rng.choice(pool))
            q = int(ep[r])
            e.append_copies([r], {"person_no": [int(e.cols["person_no"].max()) + 1]})
            mark(w, "ID05", q, "enrollment", "参保库同一身份证号重复")

    # ID06: a poverty household whose 户主身份证号 is not one of its members
    hh_no = reg.cols["household_no"]
    members_used = w.used[reg.cols["id_number"]]
    hh_list = np.unique(hh_no)
    bad_hh = set(np.unique(hh_no[members_used]).tolist()) | used_hh
    sizes = dict(zip(*np.unique(hh_no, return_counts=True), strict=True))
    cand_hh = [h for h in hh_list.tolist() if h not in bad_hh and sizes[h] >= 2]
    chosen = rng.permutation(np.array(cand_hh))[:n]
    outsiders = pick(rng, base & ~w.poor & (w.age() >= 30), len(chosen))
    for h, q in zip(sorted(chosen.tolist()), outsiders.tolist(), strict=False):
        rows = np.flatnonzero(hh_no == h)
        reg.cols["head_id_number"][rows] = q
        mark(w, "ID06", int(q), "registry", f"贫困户{h}的户主身份证号不是该户成员")
