"""The next nights of the same district: the same people, a few changes a day.

``advance(w, tables, to)`` takes the world of the first night (built, planted and tabled as of
``w.as_of``) to the night of ``to``, one day at a time, so night k+1 is night k plus one day's
changes (same arguments, same bytes). Each day, seeded by the seed and the day:

- departments fix some findings (HR terminates a dead person's enrolment, starts or resumes a
  pension, finance pays a missing 代缴, HR clears a wrong 代缴类别): those findings go away;
- a few people die (HR is not told yet: a new SS07) and a poor person's enrolment is terminated
  by mistake (a new SS01);
- routine changes that break no rule: a few enrolments paused, a few people move out;
- birthdays: a person turning 60 resolves an under-age pension (SS09) or a 代缴 gap (SS02) and, if
  poor and enrolled, has no pension yet (a new SS05); a poor non-student turning 16 who is not
  enrolled is a new SS01.

- a new month: the month just ended is paid — pensions to everyone drawing one who was paid the
  month before (a pensioner who died and whom HR still has 正常领取 is paid after death: a new SS06
  month), 公益性岗位补贴 / 低保金 / 特困供养金 to everyone still in the job or case, and the payments
  that were already findings (no job, case ended) go on for one more month (new EM02 / EM05 months).

The truth list is updated with every change, so truth.csv of each night lists exactly the findings of
that night. The nights stay in the first night's year: a new year changes 代缴 eligibility and the
transaction window, which this module does not model.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from crosscheck.generate import ledger
from crosscheck.generate.ledger import (
    BEN_ENDED,
    BEN_NONE,
    BEN_PAID,
    EN_ENDED,
    EN_NORMAL,
    EN_PAUSED,
    IT_DIBAO,
    IT_PW,
    IT_TEKUN,
)
from crosscheck.generate.people import (
    CASE_CATS,
    CAT_DIBAO,
    CAT_TEKUN,
    JOB_FP,
    JOB_LS,
    JOB_TYPES,
    ST_DEAD,
    ST_MOVED,
    World,
    age_at,
    crc,
)
from crosscheck.generate.plant import DEPT, plant_count
from crosscheck.generate.tables import Cat, Table

P_FIX = 0.12  # chance a department fixes one of its open findings on a given day
FIXABLE = ("SS02", "SS03", "SS05", "SS07")


def check_dates(first: date, to: date) -> None:
    """A clear error for a night this module cannot write (the CLI prints it in one line)."""
    if to <= first:
        raise ValueError(f"--date {to} must come after --since {first} (the first night of the district)")
    if to.year != first.year:
        raise ValueError(f"--date {to} and --since {first} must be in the same year "
                         "(the nights of a new year are not generated)")


def advance(w: World, tables: dict[str, Table], to: date) -> None:
    check_dates(w.as_of, to)
    day = w.as_of
    while day < to:
        day += timedelta(days=1)
        _one_day(w, tables, day)


# ---------------------------------------------------------------- table helpers


def _append_rows(tab: Table, values: dict) -> None:
    """Rows with explicit values, column -> array (Cat columns as labels, new labels added): one
    concatenation per column, however many rows (a new month adds thousands at 100,000 persons)."""
    k = len(np.atleast_1d(values["id_number"]))
    for name, col in tab.cols.items():
        v = np.broadcast_to(np.asarray(values[name], dtype=object if isinstance(col, Cat) else col.dtype), (k,))
        if isinstance(col, Cat):
            labels = list(col.labels)
            new = sorted(set(v.tolist()) - set(labels))
            if new:
                col.labels = np.concatenate([col.labels, np.array(new, dtype=object)])
                labels += new
            index = {label: i for i, label in enumerate(labels)}
            col.codes = np.concatenate([col.codes, np.array([index[x] for x in v.tolist()], dtype=col.codes.dtype)])
        else:
            tab.cols[name] = np.concatenate([col, v])


def _append(tab: Table, values: dict) -> None:
    _append_rows(tab, {k: [v] for k, v in values.items()})


def _set(col: Cat, rows: np.ndarray, label: str) -> None:
    col.codes[rows] = list(col.labels).index(label)


def _per_person(tab: Table, mask: np.ndarray | None, P: int) -> np.ndarray:
    """Rows per person in a table (only rows where mask), as counts."""
    ids = tab.cols["id_number"]
    ok = ids >= 0 if mask is None else (ids >= 0) & mask
    return np.bincount(ids[ok], minlength=P)


def _label_is(col: Cat, label: str) -> np.ndarray:
    labels = list(col.labels)
    return col.codes == labels.index(label) if label in labels else np.zeros(len(col.codes), dtype=bool)


class _View:
    """What the departments' tables say about each person today (the facts the rules read)."""

    def __init__(self, w: World, t: dict[str, Table]):
        P = len(w.birth)
        e, reg, res = t["enrollment"], t["registry"], t["residents"]
        self.poor = _per_person(reg, None, P) > 0
        self.student = _per_person(reg, reg.cols["is_student"] == 1, P) > 0
        self.enrolled = _per_person(e, ~_label_is(e.cols["enrol_status"], ledger.ENROL_STATUS[EN_ENDED]), P) > 0
        self.drawing = _per_person(e, _label_is(e.cols["benefit_status"], ledger.BENEFIT[BEN_PAID]), P) > 0
        self.dead = (_per_person(t["deaths"], None, P) > 0) | (
            _per_person(res, _label_is(res.cols["status"], "死亡"), P) > 0)
        pen = t["pension_payments"]
        self.paid_lfm = _per_person(pen, pen.cols["month"] == w.LFM, P) > 0
        hr = np.zeros(P, dtype=np.int64)
        ids = e.cols["id_number"]
        np.add.at(hr, ids[ids >= 0], np.maximum(e.cols["subsidy_amount_year"][ids >= 0], 0))
        self.hr_sum = hr
        pay = t["payments"]
        this_year = pay.cols["period"].astype("datetime64[Y]") == np.datetime64(w.Y - 1970, "Y")
        self.daijiao = _per_person(pay, _label_is(pay.cols["item"], ledger.ITEMS[ledger.IT_DAIJIAO]) & this_year,
                                   P) > 0


def _mark(w: World, rule: str, person: int, extract: str, detail: str, period=None) -> None:
    pid = w.id18[person].decode()
    per = "" if period is None else str(np.datetime64(period, "M"))
    if not any(r[0] == rule and r[1] == pid and r[2] == per for r in w.truth):
        w.truth.append((rule, pid, per, DEPT[extract], extract, detail))
    w.used[person] = True


def _unmark(w: World, rule: str, persons) -> None:
    gone = {w.id18[int(p)].decode() for p in persons}
    w.truth = [r for r in w.truth if not (r[0] == rule and r[1] in gone)]


# ---------------------------------------------------------------- one day


def _one_day(w: World, t: dict[str, Table], day: date) -> None:
    rng = np.random.default_rng([w.seed, crc("next-night"), day.toordinal()])
    w.as_of, w.D = day, np.datetime64(day, "D")
    if np.datetime64(day, "M") != w.M_D:
        w.M_D = np.datetime64(day, "M")
        w.LFM = w.M_D - np.timedelta64(1, "M")
        _new_month(w, t)
    _fixes(w, t, day, rng)
    _events(w, t, day, rng)
    _birthdays(w, t, day)


def _fixes(w: World, t: dict[str, Table], day: date, rng) -> None:
    person_of = {w.id18[p].decode(): p for p in np.flatnonzero(w.used)}
    open_ = sorted({(r[0], r[1]) for r in w.truth if r[0] in FIXABLE})
    chance = rng.random(len(open_))
    e, pen, pay = t["enrollment"], t["pension_payments"], t["payments"]
    view = _View(w, t)
    for (rule, pid), u in zip(open_, chance, strict=True):
        if u >= P_FIX:
            continue
        q = person_of[pid]
        rows = np.flatnonzero(e.cols["id_number"] == q)
        if rule == "SS07":  # HR learns of the death: enrolment terminated, pension ended
            _set(e.cols["enrol_status"], rows, ledger.ENROL_STATUS[EN_ENDED])
            paid = rows[_label_is(e.cols["benefit_status"], ledger.BENEFIT[BEN_PAID])[rows]]
            _set(e.cols["benefit_status"], paid, ledger.BENEFIT[BEN_ENDED])
        elif rule == "SS05":  # HR starts (or resumes) the pension and pays the last full month
            _set(e.cols["benefit_status"], rows, ledger.BENEFIT[BEN_PAID])
            start = e.cols["benefit_start_month"]
            start[rows] = np.where(np.isnat(start[rows]), w.LFM, start[rows])
            amount = e.cols["monthly_pension"]
            amount[rows] = np.where(amount[rows] > 0, amount[rows], 20000)
            if not view.paid_lfm[q]:
                _append(pen, dict(serial_no=int(pen.cols["serial_no"].max()) + 1,
                                  person_no=int(e.cols["person_no"][rows[0]]), id_number=q, name=q,
                                  month=w.LFM, amount=int(amount[rows[0]])))
        elif rule == "SS02":  # finance pays this year's 代缴 today; HR records the same amount
            e.cols["subsidy_amount_year"][rows] = 10000
            _add_daijiao(w, pay, q, day, 10000)
        elif rule == "SS03":  # HR clears a 代缴类别 recorded by mistake (only where finance paid nothing)
            if view.daijiao[q]:
                continue
            _set(e.cols["subsidy_category"], rows, ledger.SUBSIDY_CATS[0])
            e.cols["subsidy_amount_year"][rows] = 0
        _unmark(w, rule, [q])


def _covers(start: np.ndarray, end: np.ndarray, month: np.datetime64) -> np.ndarray:
    return (start.astype("datetime64[M]") <= month) & (np.isnat(end) | (month <= end.astype("datetime64[M]")))


def _new_month(w: World, t: dict[str, Table]) -> None:
    """The month just ended (w.LFM) is paid, as the month before it was (see the module's doc)."""
    view = _View(w, t)
    prev, m = w.LFM - np.timedelta64(1, "M"), w.LFM
    P = len(w.birth)
    finding_months = {(r[0], r[1]) for r in w.truth if r[2] == str(prev)}

    # pensions: one payment to each person drawing who was paid last month, at last month's amount
    pen = t["pension_payments"]
    ids, rows = np.unique(pen.cols["id_number"][pen.cols["month"] == prev], return_index=True)
    rows = np.flatnonzero(pen.cols["month"] == prev)[rows]
    go = view.drawing[ids]
    ids, rows = ids[go], rows[go]
    _append_rows(pen, dict(serial_no=int(pen.cols["serial_no"].max()) + 1 + np.arange(len(ids)),
                           person_no=pen.cols["person_no"][rows], id_number=ids, name=ids, month=m,
                           amount=pen.cols["amount"][rows]))
    after_death = view.dead[ids] & (w.death[ids].astype("datetime64[M]") < m)
    for q, amount in zip(ids[after_death].tolist(), pen.cols["amount"][rows[after_death]].tolist(), strict=True):
        _mark(w, "SS06", q, "pension_payments", f"死亡后发放养老金{amount / 100:.2f}元", period=m)

    # monthly finance payments: to whoever the job or case still covers; a payment that was already a
    # finding (no job, case ended) goes on
    pay = t["payments"]
    jobs, cases = t["jobs"], t["assistance"]
    pw_job = np.isin(np.asarray(jobs.cols["job_type"].labels)[jobs.cols["job_type"].codes],
                     JOB_TYPES[[JOB_FP, JOB_LS]])
    job_covers = np.zeros(P, dtype=bool)
    job_covers[jobs.cols["id_number"][pw_job & _covers(jobs.cols["start_date"], jobs.cols["end_date"], m)
                                      & (jobs.cols["id_number"] >= 0)]] = True
    for item, cat, day, rule, why in ((IT_PW, None, 25, "EM02", "岗位终止后仍发放公益性岗位补贴"),
                                      (IT_DIBAO, CAT_DIBAO, 10, "EM05", "低保终止后仍发放低保金"),
                                      (IT_TEKUN, CAT_TEKUN, 10, "EM05", "无特困供养记录却发放特困供养金")):
        if cat is None:
            covered = job_covers
        else:
            is_cat = _label_is(cases.cols["category"], CASE_CATS[cat])
            covered = np.zeros(P, dtype=bool)
            covered[cases.cols["id_number"][is_cat & _covers(cases.cols["start_date"], cases.cols["end_date"], m)
                                            & (cases.cols["id_number"] >= 0)]] = True
        sel = np.flatnonzero(_label_is(pay.cols["item"], ledger.ITEMS[item]) & (pay.cols["period"] == prev)
                             & (pay.cols["id_number"] >= 0))
        ids, first = np.unique(pay.cols["id_number"][sel], return_index=True)
        rows = sel[first]
        was_finding = np.array([(rule, w.id18[q].decode()) in finding_months for q in ids.tolist()], dtype=bool)
        go = ~view.dead[ids] & (covered[ids] | was_finding)
        _add_payments(w, pay, ids[go], item, m, pay.cols["amount"][rows[go]],
                      m.astype("datetime64[D]") + np.timedelta64(day - 1, "D"))
        for q in ids[go & ~covered[ids]].tolist():
            _mark(w, rule, q, "payments", why, period=m)


def _add_daijiao(w: World, pay: Table, q: int, day: date, cents: int) -> None:
    _add_payment(w, pay, q, ledger.IT_DAIJIAO, np.datetime64(day, "M"), cents, np.datetime64(day, "D"))


def _add_payment(w: World, pay: Table, q: int, item: int, month, cents: int, paid) -> None:
    _add_payments(w, pay, np.array([q]), item, month, np.array([cents]), paid)


def _add_payments(w: World, pay: Table, persons: np.ndarray, item: int, month, cents: np.ndarray, paid) -> None:
    key = (persons * 7919 + 13) % 40000  # the bank account label of tables._bank
    banks = np.array(["6217", "6228", "6230", "6215"], dtype=object)
    bank = [f"{banks[k // 10000]}****{k % 10000:04d}" for k in key.tolist()]
    towns = np.array([v.town for v in w.vill], dtype=object)
    _append_rows(pay, dict(
        serial_no=int(pay.cols["serial_no"].max()) + 1 + np.arange(len(persons)),
        batch_no=f"{ledger.ITEM_CODES[item]}{str(month).replace('-', '')}",
        id_number=persons, name=persons, item=ledger.ITEMS[item], period=month, amount=cents,
        paid_date=paid, bank_account=bank, town=towns[w.village[persons]]))


def _clean(w: World, view: _View) -> np.ndarray:
    """Persons no plant or earlier change touched, alive and living here."""
    P = len(w.birth)
    return ((np.arange(P) < w.N) & w.in_res & (w.status == 0) & ~w.used & ~w.protected & ~view.dead)


def _events(w: World, t: dict[str, Table], day: date, rng) -> None:
    view = _View(w, t)
    clean = _clean(w, view)
    age = age_at(w.birth, w.D)
    e, res = t["enrollment"], t["residents"]
    normal = _per_person(e, _label_is(e.cols["enrol_status"], ledger.ENROL_STATUS[EN_NORMAL]), len(w.birth)) > 0
    rows_e = np.bincount(np.maximum(e.cols["id_number"], 0), minlength=len(w.birth))
    one_row = rows_e == 1
    # new findings at the pace of the plants (plant_count: 3 per rule up to 60,000 persons), so that a few
    # nights show some and a month of nights does not drown the first night's; clean changes by size
    n = plant_count(w)
    deaths = rng.poisson(n / 5)
    pauses, moves = rng.poisson(w.N / np.array([2000, 4000]))

    # deaths: civil affairs records them, HR still has the person 正常参保 (a new SS07)
    cand = np.flatnonzero(clean & one_row & (normal | view.drawing) & (age >= 50))
    weight = np.exp(0.09 * (age[cand] - 30.0))
    dying = np.sort(rng.choice(cand, min(deaths, len(cand)), replace=False, p=weight / weight.sum())) \
        if len(cand) else cand
    died = w.D - np.timedelta64(1, "D")
    for q in dying.tolist():
        _append(t["deaths"], dict(id_number=q, name=q, death_date=died, source="医学死亡证明", registered_date=w.D))
        _set(res.cols["status"], np.flatnonzero(res.cols["id_number"] == q), "死亡")
        w.status[q], w.death[q], w.death_record[q] = ST_DEAD, died, True
        still = "参保状态仍为正常参保" if normal[q] else "待遇状态仍为正常领取"
        _mark(w, "SS07", q, "enrollment", f"死亡人员{still}")

    # an enrolment terminated by mistake: a poor person of working age is no longer insured (a new SS01)
    benefit_none = _label_is(e.cols["benefit_status"], ledger.BENEFIT[BEN_NONE])
    none = _per_person(e, benefit_none, len(w.birth)) > 0
    cand = np.flatnonzero(clean & one_row & view.poor & ~view.student & normal & none & (age >= 16) & (age <= 59))
    cand = cand[~np.isin(cand, dying)]
    if len(cand) and rng.random() < n / 15:
        q = int(rng.choice(cand))
        _set(e.cols["enrol_status"], np.flatnonzero(e.cols["id_number"] == q), ledger.ENROL_STATUS[EN_ENDED])
        _mark(w, "SS01", q, "enrollment", "建档立卡人员参保状态为终止参保")

    # routine changes that break no rule: enrolments paused, people moving out
    clean = _clean(w, _View(w, t))
    nothing = ~w.poor & ~w.elig & (view.hr_sum == 0) & ~view.daijiao & ~view.drawing
    cand = np.flatnonzero(clean & one_row & normal & nothing & none)
    for q in np.sort(rng.choice(cand, min(pauses, len(cand)), replace=False)).tolist() if len(cand) else []:
        _set(e.cols["enrol_status"], np.flatnonzero(e.cols["id_number"] == q), ledger.ENROL_STATUS[EN_PAUSED])
        w.used[q] = True  # left alone from now on
    cand = np.flatnonzero(clean & ~w.poor & (rows_e == 0) & (np.bincount(res.cols["id_number"][
        res.cols["id_number"] >= 0], minlength=len(w.birth)) == 1))
    for q in np.sort(rng.choice(cand, min(moves, len(cand)), replace=False)).tolist() if len(cand) else []:
        _set(res.cols["status"], np.flatnonzero(res.cols["id_number"] == q), "迁出")
        w.status[q] = ST_MOVED


def _birthdays(w: World, t: dict[str, Table], day: date) -> None:
    """What the rules' age limits (16 and 60, rules.md) make of today's birthdays."""
    age = age_at(w.birth, w.D)
    before = age_at(w.birth, w.D - np.timedelta64(1, "D"))
    view = _View(w, t)
    alive = ~view.dead
    sixty = np.flatnonzero((age == 60) & (before == 59))
    _unmark(w, "SS09", sixty)  # an under-age pension is no longer under age
    _unmark(w, "SS02", sixty)  # 代缴 is due from 16 to 59
    for q in sixty[view.poor[sixty] & alive[sixty] & view.enrolled[sixty]].tolist():
        if not (view.drawing[q] and view.paid_lfm[q]):
            _mark(w, "SS05", q, "enrollment", "年满60周岁未领取待遇")
    sixteen = np.flatnonzero((age == 16) & (before == 15))
    for q in sixteen[view.poor[sixteen] & alive[sixteen] & ~view.student[sixteen]
                     & ~view.enrolled[sixteen]].tolist():
        _mark(w, "SS01", q, "enrollment", "建档立卡人员年满16周岁未参保")
    for q in sixteen[view.enrolled[sixteen] & w.elig[sixteen] & (view.hr_sum[sixteen] == 0)
                     & ~view.daijiao[sixteen]].tolist():
        _mark(w, "SS02", q, "enrollment", "年满16周岁，本年代缴金额为0且无财政代缴")


__all__ = ["advance", "check_dates"]
