"""The nine extracts as column tables of raw values (before formatting and mess).

Raw value per contract column type:
  id_number  int64 person index (-1: empty); rendered as the person's 18-digit ID
  name       int64 person index; rendered as the person's name (or the table's alternative, ID03)
  text/enum  a Cat (codes + labels), an int64 array (rendered as digits) or an object array of str
  date       datetime64[D] (NaT: empty)       month  datetime64[M] (NaT: empty)
  amount     int64 cents (-1: empty)          year   int64 (0: empty)      yesno  int8 1/0 (-1: empty)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from crosscheck.contracts import contracts
from crosscheck.generate import geo, ledger
from crosscheck.generate.people import (
    CASE_CATS,
    DEATH_SOURCES,
    ETHNICITIES,
    GRADES,
    HH_TYPES,
    JOB_TYPES,
    LABOUR,
    RELATIONS,
    STATUS,
    World,
    months_of,
)


@dataclass
class Cat:
    codes: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.codes)

    def take(self, rows: np.ndarray) -> Cat:
        return Cat(self.codes[rows], self.labels)


@dataclass
class Table:
    extract: str
    cols: dict[str, object]
    overrides: dict[str, dict[int, str]] = field(default_factory=dict)  # column -> row -> text as written
    name_alt: dict[int, str] = field(default_factory=dict)  # person -> name written in this table (ID03)

    @property
    def n(self) -> int:
        return len(next(iter(self.cols.values())))

    @property
    def contract(self):
        return contracts()[self.extract]

    def append_copies(self, rows, changes: dict[str, list] | None = None) -> np.ndarray:
        """Append copies of `rows` (with column changes); returns the new row numbers."""
        rows = np.asarray(rows, dtype=np.int64)
        start = self.n
        for name, col in self.cols.items():
            if isinstance(col, Cat):
                extra = col.codes[rows].copy()
                if changes and name in changes:
                    labels = list(col.labels)
                    extra = np.array([labels.index(v) for v in changes[name]], dtype=col.codes.dtype)
                col.codes = np.concatenate([col.codes, extra])
            else:
                extra = col[rows].copy()
                if changes and name in changes:
                    extra = np.array(changes[name], dtype=col.dtype)
                self.cols[name] = np.concatenate([col, extra])
        return np.arange(start, start + len(rows))


def cat(values: np.ndarray, labels) -> Cat:
    return Cat(np.asarray(values, dtype=np.int32), np.asarray(labels, dtype=object))


def cat_of_strings(values: np.ndarray) -> Cat:
    labels, codes = np.unique(np.asarray(values, dtype=str), return_inverse=True)
    return Cat(codes.astype(np.int32), labels.astype(object))


def build_tables(w: World) -> dict[str, Table]:
    vill = w.vill
    town_labels = np.array([v.town for v in vill], dtype=object)
    village_labels = np.array([v.name for v in vill], dtype=object)
    sex_labels = np.array(["女", "男"], dtype=object)
    out: dict[str, Table] = {}

    # ---------------------------------------------------------------- civil
    res = np.flatnonzero(w.in_res)
    hh_head = w.hh_start[w.hh[res]]
    town3 = np.array([int(v.town_code[-3:]) for v in vill], dtype=np.int64)
    out["residents"] = Table(
        "residents",
        dict(
            id_number=res,
            name=res.copy(),
            sex=cat(w.sex[res], sex_labels),
            birth_date=w.birth[res].copy(),
            ethnicity=cat(w.ethnic[res], ETHNICITIES),
            hukou_no=(500151000 + town3[w.village[res]]) * 10**7 + w.hh[res] + 1,
            relation=cat(w.relation[res], RELATIONS),
            town=cat(w.village[res], town_labels),
            village=cat(w.village[res], village_labels),
            status=cat(w.status[res], STATUS),
        ),
    )
    del hh_head
    d = np.flatnonzero(w.death_record & ~np.isnat(w.death))
    out["deaths"] = Table(
        "deaths",
        dict(
            id_number=d,
            name=d.copy(),
            death_date=w.death[d],
            source=cat(w.death_source[d], DEATH_SOURCES),
            registered_date=w.death_reg[d],
        ),
    )
    c = w.cases
    cp = c["person"]
    order = np.lexsort((c["start"], cp))
    cp = cp[order]
    out["assistance"] = Table(
        "assistance",
        dict(
            id_number=cp,
            name=cp.copy(),
            head_id_number=w.hh_start[w.hh[cp]].astype(np.int64),
            category=cat(c["cat"][order], CASE_CATS),
            disability_grade=cat(c["grade"][order], GRADES),
            start_date=c["start"][order],
            end_date=c["end"][order],
            town=cat(w.village[cp], town_labels),
            village=cat(w.village[cp], village_labels),
        ),
    )

    # ---------------------------------------------------------------- poverty
    rp = np.flatnonzero(w.phh_of >= 0)
    h = w.phh_of[rp]
    out["registry"] = Table(
        "registry",
        dict(
            household_no=w.p_no[h].astype(np.int64),
            head_id_number=w.hh_start[w.p_hh[h]].astype(np.int64),
            id_number=rp,
            name=rp.copy(),
            sex=cat(w.sex[rp], sex_labels),
            relation=cat(w.relation[rp], RELATIONS),
            household_type=cat(w.p_type[h], HH_TYPES),
            poverty_status=cat(w.p_status[h], ["未脱贫", "已脱贫"]),
            exit_year=w.p_exit[h].copy(),
            registered_year=w.p_reg[h].copy(),
            is_student=w.student[rp].astype(np.int8),
            labour_ability=cat(w.labour[rp], LABOUR),
            town=cat(w.village[rp], town_labels),
            village=cat(w.village[rp], village_labels),
        ),
    )

    # ---------------------------------------------------------------- finance
    f = w.fin.done() if hasattr(w.fin, "done") else w.fin
    order = np.lexsort((f["person"], f["item"], f["paid"]))
    f = {k: v[order] for k, v in f.items()}
    nf = len(order)
    banks = np.array(["6217", "6228", "6230", "6215"], dtype=object)
    fp = f["person"]
    out["payments"] = Table(
        "payments",
        dict(
            serial_no=np.arange(1, nf + 1, dtype=np.int64) + (w.Y - 1) * 10**10,
            batch_no=_batch(f["item"], f["period"]),
            id_number=fp,
            name=fp.copy(),
            item=cat(f["item"], ledger.ITEMS),
            period=f["period"],
            amount=f["amount"],
            paid_date=f["paid"],
            bank_account=_bank(fp, banks),
            town=cat(w.village[fp], town_labels),
        ),
    )

    # ---------------------------------------------------------------- hrss
    e = w.enrol
    order = np.argsort(e["person_no"], kind="stable")
    e = {k: v[order] for k, v in e.items()}
    ep = e["person"]
    out["enrollment"] = Table(
        "enrollment",
        dict(
            person_no=e["person_no"],
            id_number=ep,
            name=ep.copy(),
            enrol_status=cat(e["status"], ledger.ENROL_STATUS),
            enrol_date=e["enrol_date"],
            contribution_level=e["level"],
            subsidy_category=cat(e["cat"], ledger.SUBSIDY_CATS),
            subsidy_amount_year=e["amount"],
            benefit_status=cat(e["benefit"], ledger.BENEFIT),
            benefit_start_month=e["start"],
            monthly_pension=e["pension"],
            town=cat(w.village[ep], town_labels),
            village=cat(w.village[ep], village_labels),
        ),
    )
    pm = w.pen.done() if hasattr(w.pen, "done") else w.pen
    order = np.lexsort((pm["person"], pm["month"]))
    pm = {k: v[order] for k, v in pm.items()}
    npm = len(order)
    out["pension_payments"] = Table(
        "pension_payments",
        dict(
            serial_no=np.arange(1, npm + 1, dtype=np.int64) + 5001510 * 10**9,
            person_no=pm["person_no"],
            id_number=pm["person"],
            name=pm["person"].copy(),
            month=pm["month"],
            amount=pm["amount"],
        ),
    )
    j = w.jobs
    order = np.lexsort((j["start"], j["person"]))
    j = {k: v[order] for k, v in j.items()}
    out["jobs"] = Table(
        "jobs",
        dict(
            id_number=j["person"],
            name=j["person"].copy(),
            job_type=cat(j["type"], JOB_TYPES),
            employer=cat_of_strings(j["employer"]),
            position=cat_of_strings(j["position"]),
            start_date=j["start"],
            end_date=j["end"],
            monthly_pay=j["pay"] * 100,
            town=cat_of_strings(j["town"]),
        ),
    )
    t = w.training
    order = np.lexsort((t["done"], t["person"]))
    t = {k: v[order] for k, v in t.items()}
    out["training"] = Table(
        "training",
        dict(
            id_number=t["person"],
            name=t["person"].copy(),
            trade=cat(t["trade"], geo.TRADES),
            institution=cat(t["institution"], geo.SYNTHETIC_INSTITUTIONS),
            completion_date=t["done"],
            qualified=t["qualified"].astype(np.int8),
            training_subsidy=t["subsidy"] * 100,
            travel_subsidy=t["travel"] * 100,
        ),
    )
    return out


def _batch(item: np.ndarray, period: np.ndarray) -> Cat:
    ym = months_of(period).astype(np.int64)
    key = item.astype(np.int64) * 100000 + ym
    uniq, inv = np.unique(key, return_inverse=True)
    labels = np.array(
        [
            f"{ledger.ITEM_CODES[k // 100000]}{np.datetime64(int(k % 100000), 'M').astype(str).replace('-', '')}"
            for k in uniq.tolist()
        ],
        dtype=object,
    )
    return Cat(inv.astype(np.int32), labels)


def _bank(persons: np.ndarray, banks: np.ndarray) -> Cat:
    key = (persons * 7919 + 13) % 40000
    uniq, inv = np.unique(key, return_inverse=True)
    labels = np.array([f"{banks[k // 10000]}****{k % 10000:04d}" for k in uniq.tolist()], dtype=object)
    return Cat(inv.astype(np.int32), labels)
