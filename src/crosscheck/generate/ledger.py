"""Derived records: 代缴 eligibility, pension enrolment, pension payments and finance payments.

They are computed from the world's facts (people.py) after the fact-changing plants ran, so that
the clean part of every extract agrees with every rule of rules.md.
"""

from __future__ import annotations

import numpy as np

from crosscheck.generate.people import (
    CAT_DIBAO,
    CAT_LINSHI,
    CAT_TEKUN,
    JOB_FP,
    JOB_LS,
    NAT,
    ST_MOVED,
    Records,
    World,
    add_years,
    age_at,
    months_of,
    rand_dates,
)

ENROL_STATUS = np.array(["正常参保", "暂停缴费", "终止参保"])
EN_NORMAL, EN_PAUSED, EN_ENDED = range(3)
SUBSIDY_CATS = np.array(["无", "建档立卡", "低保", "特困", "重度残疾"])
BENEFIT = np.array(["未领取", "正常领取", "暂停发放", "终止发放"])
BEN_NONE, BEN_PAID, BEN_PAUSED, BEN_ENDED = range(4)

ITEMS = np.array(
    ["城乡居民养老保险代缴", "公益性岗位补贴", "就业培训补贴", "交通食宿补贴", "低保金", "特困供养金"]
)
IT_DAIJIAO, IT_PW, IT_TRAIN, IT_TRAVEL, IT_DIBAO, IT_TEKUN = range(6)
ITEM_CODES = np.array(["YLDJ", "GYGW", "JYPX", "JTSS", "DBJ", "TKJ"])

M = np.dtype("datetime64[M]")
D = np.dtype("datetime64[D]")
NAT_M = np.datetime64("NaT", "M")

ENROL_DTYPES = dict(
    person=np.int64,
    person_no=np.int64,
    status=np.int8,
    enrol_date=D,
    level=np.int64,
    cat=np.int8,
    amount=np.int64,
    benefit=np.int8,
    start=M,
    pension=np.int64,
    dj1=np.int64,
    dj2=np.int64,
    dj_prev=np.int64,
    pay_until=M,
)
FIN_DTYPES = dict(person=np.int64, item=np.int8, period=M, amount=np.int64, paid=D)
PEN_DTYPES = dict(person=np.int64, month=M, amount=np.int64, person_no=np.int64)


def eligibility(w: World) -> None:
    """代缴-eligible this year (rules.md), and the 代缴类别 HR would record."""
    P = len(w.birth)
    c = w.cases
    covers_y = (c["cat"] != CAT_LINSHI) & (np.isnat(c["end"]) | (c["end"] >= w.Y0)) & (c["start"] <= w.D)
    dibao = np.zeros(P, dtype=bool)
    tekun = np.zeros(P, dtype=bool)
    severe = np.zeros(P, dtype=bool)
    dibao[c["person"][covers_y & (c["cat"] == CAT_DIBAO)]] = True
    tekun[c["person"][covers_y & (c["cat"] == CAT_TEKUN)]] = True
    severe[c["person"][np.isin(c["grade"], [1, 2])]] = True
    active = np.zeros(P, dtype=bool)
    pp = np.flatnonzero(w.phh_of >= 0)
    h = w.phh_of[pp]
    active[pp] = (w.p_status[h] == 0) | (w.p_exit[h] == w.Y)
    # a person listed in two poverty households (ID05 plant) is active if either household is
    for p, h2 in getattr(w, "extra_registry", []):
        active[p] |= (w.p_status[h2] == 0) | (w.p_exit[h2] == w.Y)
    w.elig = active | dibao | tekun | severe
    w.elig_cat = np.select([active, tekun, dibao, severe], [1, 3, 2, 4], 0).astype(np.int8)


def build_enrollment(w: World) -> None:
    rng = w.rng("enrollment")
    N = w.N
    age = w.age()[:N]
    alive = w.alive[:N]
    death = w.death[:N]
    bday16 = add_years(w.birth[:N], 16)
    can = w.in_res[:N] & (w.status[:N] != ST_MOVED) & (bday16 <= w.D) & (np.isnat(death) | (bday16 < death))
    p = np.where(age < 30, 0.35, np.where(age < 60, 0.55, 0.8))
    p = np.where(w.poor[:N], np.where(w.student[:N], 0.4, 1.0), p)
    enrolled = can & ((rng.random(N) < p) | w.force_enrol[:N]) & ~w.no_enrol[:N]
    persons = np.flatnonzero(enrolled)
    k = len(persons)
    age = age[persons]
    alive = alive[persons]
    death = death[persons]
    poor = w.poor[persons]
    elig = w.elig[persons]
    lo = np.maximum(np.datetime64("2010-01-01"), bday16[persons])
    hi = np.maximum(lo, w.D - np.timedelta64(90, "D"))
    hi = np.where(alive, hi, np.minimum(hi, death - np.timedelta64(1, "D")))
    lo = np.minimum(lo, hi)
    enrol = rand_dates(rng, lo, hi)
    status = np.where(
        ~alive, EN_ENDED, np.where(~poor & ~elig & (rng.random(k) < 0.03), EN_PAUSED, EN_NORMAL)
    )
    level = rng.choice([100, 200, 300, 500, 1000, 2000], k, p=[0.45, 0.2, 0.15, 0.1, 0.07, 0.03]) * 100
    start = np.maximum(months_of(add_years(w.birth[persons], 60)), months_of(enrol)) + np.timedelta64(1, "M")
    benefit = np.full(k, BEN_NONE, dtype=np.int8)
    drawing = alive & (age >= 60) & (start <= w.M_D)
    benefit[drawing] = BEN_PAID
    paused = drawing & ~poor & (rng.random(k) < 0.02)
    benefit[paused] = BEN_PAUSED
    drew = ~alive & (start <= months_of(np.where(np.isnat(death), w.D, death)))
    benefit[drew] = BEN_ENDED
    start = np.where(benefit == BEN_NONE, NAT_M, start)
    pay_until = np.full(k, NAT_M)
    pay_until[paused] = w.LFM - rng.integers(1, 7, int(paused.sum())).astype("timedelta64[M]")
    pension = np.where(benefit != BEN_NONE, rng.integers(175, 451, k) * 100 + (rng.random(k) < 0.4) * 50, -1)
    cat = np.where(elig, w.elig_cat[persons], 0).astype(np.int8)
    amount = np.where(
        alive & elig & (age >= 16) & (age <= 59), np.where(rng.random(k) < 0.1, 20000, 10000), 0
    )
    split = (amount == 20000) & (rng.random(k) < 0.5)
    dj1 = np.where(split, 10000, amount)
    dj2 = np.where(split, 10000, 0)
    prev_ok = (
        (amount > 0)
        & (enrol < np.datetime64(f"{w.Y - 1}-12-01"))
        & (age_at(w.birth[persons], np.datetime64(f"{w.Y - 1}-12-31")) >= 16)
        & (rng.random(k) < 0.9)
    )
    dj_prev = np.where(prev_ok, 10000, 0)
    w.enrol = dict(
        person=persons,
        person_no=5001510_0000000 + np.arange(1, k + 1),
        status=status.astype(np.int8),
        enrol_date=enrol,
        level=level,
        cat=cat,
        amount=amount,
        benefit=benefit,
        start=start,
        pension=pension,
        dj1=dj1,
        dj2=dj2,
        dj_prev=dj_prev,
        pay_until=pay_until,
    )


def _expand(first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row index, month) for every month in [first, last] of every row (empty when last < first)."""
    f = first.astype(np.int64)
    n = np.maximum(last.astype(np.int64) - f + 1, 0)
    n = np.where(np.isnat(first) | np.isnat(last), 0, n)
    rows = np.repeat(np.arange(len(first)), n)
    starts = np.concatenate([[0], np.cumsum(n)[:-1]])
    off = np.arange(int(n.sum())) - np.repeat(starts, n)
    return rows, (f[rows] + off).astype("datetime64[M]")


def build_pension_payments(w: World) -> None:
    e = w.enrol
    death_m = months_of(w.death[e["person"]])
    last = np.full(len(e["person"]), w.LFM)
    last = np.where(np.isnat(death_m), last, np.minimum(last, death_m))
    last = np.where(np.isnat(e["pay_until"]), last, np.minimum(last, e["pay_until"]))
    first = np.maximum(e["start"], w.W0)
    first = np.where(np.isnat(e["start"]), NAT_M, first)
    rows, month = _expand(first, last)
    rec = Records(**PEN_DTYPES)
    rec.add(person=e["person"][rows], month=month, amount=e["pension"][rows], person_no=e["person_no"][rows])
    w.pen = rec


def build_finance_payments(w: World) -> None:
    rng = w.rng("finance")
    rec = Records(**FIN_DTYPES)
    # 城乡居民养老保险代缴: this year's payments and last year's
    e = w.enrol
    for col in ("dj1", "dj2"):
        m = e[col] > 0
        persons = e["person"][m]
        lo = np.maximum(w.Y0, e["enrol_date"][m])
        paid = rand_dates(rng, lo, np.full(len(persons), w.D))
        rec.add(person=persons, item=IT_DAIJIAO, period=months_of(paid), amount=e[col][m], paid=paid)
    m = e["dj_prev"] > 0
    lo = np.maximum(w.WD0, e["enrol_date"][m])
    paid = rand_dates(rng, lo, np.full(int(m.sum()), np.datetime64(f"{w.Y - 1}-12-31")))
    rec.add(person=e["person"][m], item=IT_DAIJIAO, period=months_of(paid), amount=e["dj_prev"][m], paid=paid)
    # 公益性岗位补贴: monthly for every month a public-welfare job covers
    j = w.jobs
    pw = np.isin(j["type"], [JOB_FP, JOB_LS])
    first = np.maximum(months_of(j["start"]), w.W0)
    last = np.where(np.isnat(j["end"]), w.LFM, np.minimum(months_of(j["end"]), w.LFM))
    rows, month = _expand(np.where(pw, first, NAT_M), last)
    _monthly(w, rec, j["person"][rows], IT_PW, month, j["pay"][rows] * 100, 25)
    # 低保金 / 特困供养金: monthly for every month a case covers
    c = w.cases
    for cat, item in ((CAT_DIBAO, IT_DIBAO), (CAT_TEKUN, IT_TEKUN)):
        sel = c["cat"] == cat
        first = np.where(sel, np.maximum(months_of(c["start"]), w.W0), NAT_M)
        last = np.where(np.isnat(c["end"]), w.LFM, np.minimum(months_of(c["end"]), w.LFM))
        rows, month = _expand(first, last)
        _monthly(w, rec, c["person"][rows], item, month, c["amount"][rows] * 100, 10)
    # training and travel subsidies, paid some weeks after the course
    t = w.training
    paid = t["done"] + rng.integers(15, 46, len(t["done"])).astype("timedelta64[D]")
    death = w.death[t["person"]]
    ok = (paid >= w.WD0) & (paid <= w.D) & (np.isnat(death) | (paid <= death))
    for col, item in (("subsidy", IT_TRAIN), ("travel", IT_TRAVEL)):
        m = ok & (t[col] > 0)
        rec.add(
            person=t["person"][m],
            item=item,
            period=months_of(t["done"][m]),
            amount=t[col][m] * 100,
            paid=paid[m],
        )
    w.fin = rec


def _monthly(w: World, rec: Records, persons, item, month, amount, day: int) -> None:
    paid = month.astype("datetime64[D]") + np.timedelta64(day - 1, "D")
    death = w.death[persons]
    ok = np.isnat(death) | (paid <= death)
    rec.add(person=persons[ok], item=item, period=month[ok], amount=amount[ok], paid=paid[ok])


__all__ = ["NAT", "eligibility", "build_enrollment", "build_pension_payments", "build_finance_payments"]
