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

The truth list is updated with every change, so truth.csv of each night lists exactly the findings of
that night. The nights stay in the first night's month: a new month would bring a month of new
payments, which this module does not write yet.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from crosscheck.generate import ledger
from crosscheck.generate.ledger import BEN_ENDED, BEN_NONE, BEN_PAID, EN_ENDED, EN_NORMAL, EN_PAUSED
from crosscheck.generate.people import ST_DEAD, ST_MOVED, World, age_at, crc
from crosscheck.generate.plant import DEPT, plant_count
from crosscheck.generate.tables import Cat, Table

P_FIX = 0.12  # chance a department fixes one of its open findings on a given day
FIXABLE = ("SS02", "SS03", "SS05", "SS07")


def check_dates(first: date, to: date) -> None:
    """A clear error for a night this module cannot write (the CLI prints it in one line)."""
    if to <= first:
        raise ValueError(f"--date {to} must come after --since {first} (the first night of the district)")
    if (to.year, to.month) != (first.year, first.month):
        raise ValueError(f"--date {to} and --since {first} must be in the same month "
                         "(the nights of a new month are not generated yet)")


def advance(w: World, tables: dict[str, Table], to: date) -> None:
    check_dates(w.as_of, to)
    day = w.as_of
    while day < to:
        day += timedelta(days=1)
        _one_day(w, tables, day)


# ---------------------------------------------------------------- table helpers


def _append(tab: Table, values: dict) -> None:
    """One row with explicit values (Cat values as labels, new labels added)."""
    for name, col in tab.cols.items():
        v = values[name]
        if isinstance(col, Cat):
            labels = list(col.labels)
            if v not in labels:
                col.labels = np.append(col.labels, np.array([v], dtype=object))
                labels.append(v)
            col.codes = np.append(col.codes, np.array([labels.index(v)], dtype=col.codes.dtype))
        else:
            tab.cols[name] = np.append(col, np.array([v], dtype=col.dtype))


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


def _mark(w: World, rule: str, person: int, extract: str, detail: str) -> None:
    pid = w.id18[person].decode()
    if not any(r[0] == rule and r[1] == pid for r in w.truth):
        w.truth.append((rule, pid, "", DEPT[extract], extract, detail))
    w.used[person] = True


def _unmark(w: World, rule: str, persons) -> None:
    gone = {w.id18[int(p)].decode() for p in persons}
    w.truth = [r for r in w.truth if not (r[0] == rule and r[1] in gone)]


# ---------------------------------------------------------------- one day


def _one_day(w: World, t: dict[str, Table], day: date) -> None:
    rng = np.random.default_rng([w.seed, crc("next-night"), day.toordinal()])
    w.as_of, w.D = day, np.datetime64(day, "D")
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


def _add_daijiao(w: World, pay: Table, q: int, day: date, cents: int) -> None:
    month = np.datetime64(day, "M")
    key = (q * 7919 + 13) % 40000  # the bank account label of tables._bank
    bank = f"{['6217', '6228', '6230', '6215'][key // 10000]}****{key % 10000:04d}"
    _append(pay, dict(
        serial_no=int(pay.cols["serial_no"].max()) + 1,
        batch_no=f"{ledger.ITEM_CODES[ledger.IT_DAIJIAO]}{str(month).replace('-', '')}",
        id_number=q, name=q, item=ledger.ITEMS[ledger.IT_DAIJIAO], period=month, amount=cents,
        paid_date=np.datetime64(day, "D"), bank_account=bank, town=w.vill[w.village[q]].town))


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
