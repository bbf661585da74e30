"""An independent, deliberately plain implementation of every rule in rules.md.

It reads a generated drop folder itself (CSV in any allowed encoding, XLSX with or without a title
row, Parquet), normalises the value mess with simple code of its own, and computes the findings with
pandas. It shares nothing with the generator but the contracts (the header names and aliases), so
agreement between ``findings()`` and truth.csv shows the truth is the whole truth.

    findings(landing_dir, as_of) -> set of (rule_code, id_number, period)
"""

from __future__ import annotations

import io
import re
import unicodedata
from datetime import date, datetime, timedelta
from pathlib import Path

import openpyxl
import pandas as pd
import pyarrow.parquet as pq
from stdnum.cn import ric

from crosscheck.contracts import contracts

DOTS = "·•・.．∙"


# ---------------------------------------------------------------- value normalisation


def check(first17: str) -> str:
    return ric.calc_check_digit(first17 + "0")  # python-stdnum; it ignores the check place it is given


def birth_of(id18: str) -> date:
    return date(int(id18[6:10]), int(id18[10:12]), int(id18[12:14]))


def norm_id(raw) -> tuple[str, str]:
    """('ok', 18-digit) | ('ID01', raw) | ('ID02', raw) | ('', '') for empty."""
    text = cell_text(raw)
    s = unicodedata.normalize("NFKC", text)
    s = re.sub(r"\s+", "", s).upper()
    if not s:
        return "", ""
    if re.fullmatch(r"\d{15}", s):
        s = s[:6] + "19" + s[6:]
        s = s + check(s)
    if re.fullmatch(r"\d{17}[\dX]", s):
        try:
            birth_of(s)
            if check(s[:17]) == s[17]:
                return "ok", s
        except ValueError:
            pass
        if s.endswith("000"):
            return "ID02", text
        return "ID01", text
    if re.fullmatch(r"\d(\.\d+)?E\+?\d+", s):
        return "ID02", text
    return "ID01", text


def norm_name(raw) -> str:
    s = unicodedata.normalize("NFKC", cell_text(raw))
    s = re.sub(r"\s+", "", s)
    for d in DOTS:
        s = s.replace(d, "·")
    return s


def cell_text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def parse_date(v) -> date | None:
    if v is None or v == "":
        return None
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    if isinstance(v, int | float):
        return date(1899, 12, 30) + timedelta(days=int(v))
    s = unicodedata.normalize("NFKC", str(v)).strip()
    if not s:
        return None
    if re.fullmatch(r"\d{8}", s):
        return date(int(s[:4]), int(s[4:6]), int(s[6:]))
    if re.fullmatch(r"\d{1,5}", s):
        return date(1899, 12, 30) + timedelta(days=int(s))
    m = re.fullmatch(r"(\d{4})\D(\d{1,2})\D(\d{1,2})\D?", s)
    if not m:
        raise ValueError(f"bad date {v!r}")
    return date(int(m[1]), int(m[2]), int(m[3]))


def parse_month(v) -> str | None:
    if v is None or v == "":
        return None
    if isinstance(v, date | datetime):
        return f"{v.year:04d}-{v.month:02d}"
    s = unicodedata.normalize("NFKC", cell_text(v)).strip()
    if not s:
        return None
    m = re.fullmatch(r"(\d{4})\D?(\d{1,2})\D?", s)
    if not m:
        raise ValueError(f"bad month {v!r}")
    return f"{int(m[1]):04d}-{int(m[2]):02d}"


def parse_amount(v) -> float | None:
    if v is None or v == "":
        return None
    if isinstance(v, int | float):
        return float(v)
    s = unicodedata.normalize("NFKC", str(v)).replace(",", "").strip()
    return float(s) if s else None


def parse_yes(v) -> bool | None:
    s = cell_text(v).strip().upper()
    if s in ("是", "Y", "1", "合格", "TRUE"):
        return True
    if s in ("否", "N", "0", "不合格", "FALSE"):
        return False
    return None


# ---------------------------------------------------------------- reading files


def header_key(h) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", cell_text(h)))


def read_extract(landing: Path, extract: str, as_of: date) -> pd.DataFrame:
    c = contracts()[extract]
    stem = f"{extract}_{as_of:%Y%m%d}"
    folder = landing / c.department
    files = [p for p in folder.glob(stem + ".*") if p.suffix in (".csv", ".xlsx", ".parquet")]
    assert len(files) == 1, files
    path = files[0]
    keys = {}
    for col in c.columns:
        for h in col.headers:
            keys[header_key(h)] = col.name
    if path.suffix == ".csv":
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("gb18030")
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=True)
        rows = [list(r) for r in df.itertuples(index=False)]
        header = list(df.columns)
    elif path.suffix == ".parquet":
        df = pq.read_table(path).to_pandas()
        rows = [list(r) for r in df.itertuples(index=False)]
        header = list(df.columns)
    else:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        ws = wb[extract] if extract in wb.sheetnames else wb.worksheets[0]
        allrows = [list(r) for r in ws.iter_rows(values_only=True)]
        wb.close()
        hi = next(i for i, r in enumerate(allrows) if sum(header_key(v) in keys for v in r) >= 2)
        header = allrows[hi]
        rows = allrows[hi + 1 :]
    mapping = {i: keys[header_key(h)] for i, h in enumerate(header) if header_key(h) in keys}
    data = {name: [] for name in mapping.values()}
    for r in rows:
        if all(v is None or cell_text(v).strip() == "" for v in r):
            continue
        for i, name in mapping.items():
            data[name].append(r[i] if i < len(r) else None)
    df = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in data.items()})
    for col in c.columns:
        if col.name not in df:
            df[col.name] = None
    df["_extract"] = extract
    df["_dept"] = c.department
    return df


def load(landing: Path, as_of: date) -> dict[str, pd.DataFrame]:
    out = {}
    for extract, c in contracts().items():
        df = read_extract(landing, extract, as_of)
        for col in c.columns:
            v = df[col.name]
            if col.type == "id_number":
                parsed = [norm_id(x) for x in v]
                df[col.name + "__check"] = [p[0] for p in parsed]
                df[col.name] = [p[1] for p in parsed]
            elif col.type == "name":
                df[col.name] = [norm_name(x) for x in v]
            elif col.type == "date":
                df[col.name] = [parse_date(x) for x in v]
            elif col.type == "month":
                df[col.name] = [parse_month(x) for x in v]
            elif col.type == "amount":
                df[col.name] = [parse_amount(x) for x in v]
            elif col.type == "yesno":
                df[col.name] = [parse_yes(x) for x in v]
            elif col.type == "year":
                df[col.name] = [int(cell_text(x)) if cell_text(x).strip() else None for x in v]
            else:
                df[col.name] = [unicodedata.normalize("NFKC", cell_text(x)).strip() for x in v]
        out[extract] = df
    return out


# ---------------------------------------------------------------- rules


def age(id18: str, on: date) -> int:
    b = birth_of(id18)
    return on.year - b.year - ((on.month, on.day) < (b.month, b.day))


def month_of(d: date | None) -> str | None:
    return None if d is None else f"{d.year:04d}-{d.month:02d}"


def covers(start: date | None, end: date | None, month: str) -> bool:
    return start is not None and month_of(start) <= month and (end is None or month <= month_of(end))


def findings(landing: Path, as_of: date) -> set[tuple[str, str, str]]:
    x = load(Path(landing), as_of)
    out: set[tuple[str, str, str]] = set()
    Y = as_of.year
    lfm = month_of(date(as_of.year, as_of.month, 1) - timedelta(days=1))

    # ID01 / ID02, then keep only usable rows
    good = {}
    for name, df in x.items():
        for status in ("ID01", "ID02"):
            for raw in df.loc[df["id_number__check"] == status, "id_number"]:
                out.add((status, raw, ""))
        good[name] = df[df["id_number__check"] == "ok"].copy()
    res, deaths, asst, reg = good["residents"], good["deaths"], good["assistance"], good["registry"]
    fin, enr, pen, jobs, trn = (
        good["payments"],
        good["enrollment"],
        good["pension_payments"],
        good["jobs"],
        good["training"],
    )

    # ID03: same ID, different names between departments
    names: dict[str, dict[str, set[str]]] = {}
    for df in good.values():
        for i, n, d in zip(df["id_number"], df["name"], df["_dept"], strict=True):
            names.setdefault(i, {}).setdefault(d, set()).add(n)
    for i, by_dept in names.items():
        depts = list(by_dept)
        if any(by_dept[a] != by_dept[b] for a in depts for b in depts if a < b):
            out.add(("ID03", i, ""))

    # ID04: sex / birth date columns vs the ID
    def sex_of(i: str) -> str:
        return "男" if int(i[16]) % 2 else "女"

    for i, s, b in zip(res["id_number"], res["sex"], res["birth_date"], strict=True):
        if s != sex_of(i) or b != birth_of(i):
            out.add(("ID04", i, ""))
    for i, s in zip(reg["id_number"], reg["sex"], strict=True):
        if s and s != sex_of(i):
            out.add(("ID04", i, ""))

    # ID05: two poverty households, or the same key twice in a snapshot
    for df in (res, reg, enr):
        for i, n in df["id_number"].value_counts().items():
            if n > 1:
                out.add(("ID05", i, ""))
    for i, n in reg.groupby("id_number")["household_no"].nunique().items():
        if n > 1:
            out.add(("ID05", i, ""))

    # ID06: household head not a member
    for _, g in reg.groupby("household_no"):
        members = set(g["id_number"])
        for h in set(g["head_id_number"]):
            if h and h not in members:
                out.add(("ID06", h, ""))

    # ID07: in another extract but not in residents
    known = set(res["id_number"])
    for name, df in good.items():
        if name != "residents":
            for i in set(df["id_number"]) - known:
                out.add(("ID07", i, ""))

    # persons
    death_date = dict(zip(deaths["id_number"], deaths["death_date"], strict=True))
    dead = set(death_date) | set(res.loc[res["status"] == "死亡", "id_number"])
    poor = set(reg["id_number"])
    student = set(reg.loc[reg["is_student"] == True, "id_number"])  # noqa: E712
    enrolled = set(enr.loc[enr["enrol_status"] != "终止参保", "id_number"])
    eligible = set(reg.loc[(reg["poverty_status"] == "未脱贫") | (reg["exit_year"] == Y), "id_number"])
    for i, cat, s, e, g in zip(
        asst["id_number"],
        asst["category"],
        asst["start_date"],
        asst["end_date"],
        asst["disability_grade"],
        strict=True,
    ):
        if cat in ("城乡低保", "特困供养") and s is not None and s.year <= Y and (e is None or e.year >= Y):
            eligible.add(i)
        if g in ("一级", "二级"):
            eligible.add(i)
    open_case = {
        i
        for i, cat, s, e in zip(
            asst["id_number"], asst["category"], asst["start_date"], asst["end_date"], strict=True
        )
        if cat in ("城乡低保", "特困供养") and s <= as_of and (e is None or e >= as_of)
    }
    daijiao = fin[(fin["item"] == "城乡居民养老保险代缴") & (fin["period"].str[:4] == str(Y))]
    dj_sum = daijiao.groupby("id_number")["amount"].sum().to_dict()
    hr_sum = enr.groupby("id_number")["subsidy_amount_year"].apply(lambda s: sum(v or 0 for v in s)).to_dict()

    def alive(i):
        return i not in dead

    # SS01
    for i in poor:
        if alive(i) and age(i, as_of) >= 16 and i not in student and i not in enrolled:
            out.add(("SS01", i, ""))
    # SS02
    for i in enrolled & eligible:
        if 16 <= age(i, as_of) <= 59 and hr_sum.get(i, 0) == 0 and i not in dj_sum:
            out.add(("SS02", i, ""))
    # SS03
    recorded = set(enr.loc[~enr["subsidy_category"].isin(["", "无"]), "id_number"]) | set(dj_sum)
    for i in recorded - eligible:
        out.add(("SS03", i, ""))
    # SS04
    for i in set(hr_sum) | set(dj_sum):
        if abs(hr_sum.get(i, 0) - dj_sum.get(i, 0)) > 0.005:
            out.add(("SS04", i, ""))
    # SS05
    drawing = set(enr.loc[enr["benefit_status"] == "正常领取", "id_number"])
    paid_lfm = set(pen.loc[pen["month"] == lfm, "id_number"])
    for i in poor & enrolled:
        if alive(i) and age(i, as_of) >= 60 and (i not in drawing or i not in paid_lfm):
            out.add(("SS05", i, ""))
    # SS06
    for i, m in zip(pen["id_number"], pen["month"], strict=True):
        if i in death_date and m > month_of(death_date[i]):
            out.add(("SS06", i, m))
    # SS07
    still = set(
        enr.loc[(enr["enrol_status"] == "正常参保") | (enr["benefit_status"] == "正常领取"), "id_number"]
    )
    for i in still & dead:
        out.add(("SS07", i, ""))
    # SS08
    for (i, m), n in pen.groupby(["id_number", "month"]).size().items():
        if n > 1:
            out.add(("SS08", i, m))
    # SS09
    for i in drawing | set(pen["id_number"]):
        if age(i, as_of) < 60:
            out.add(("SS09", i, ""))

    # EM01
    for i in set(jobs.loc[jobs["job_type"] == "扶贫公益性岗位", "id_number"]):
        if i not in poor and i not in open_case:
            out.add(("EM01", i, ""))
    # EM02
    pw = jobs[jobs["job_type"].isin(["扶贫公益性岗位", "临时公益性岗位"])]
    spans: dict[str, list] = {}
    for i, s, e in zip(pw["id_number"], pw["start_date"], pw["end_date"], strict=True):
        spans.setdefault(i, []).append((s, e))
    sub = fin[fin["item"] == "公益性岗位补贴"]
    for i, m in zip(sub["id_number"], sub["period"], strict=True):
        if not any(covers(s, e, m) for s, e in spans.get(i, [])):
            out.add(("EM02", i, m))
    # EM03
    for i, d in zip(fin["id_number"], fin["paid_date"], strict=True):
        if i in death_date and d > death_date[i]:
            out.add(("EM03", i, ""))
    # EM04
    subsidised = trn[trn["training_subsidy"].fillna(0) > 0]
    for (i, _t), n in subsidised.groupby(["id_number", "trade"]).size().items():
        if n > 1:
            out.add(("EM04", i, ""))
    # EM05
    cases: dict[tuple[str, str], list] = {}
    for i, cat, s, e in zip(
        asst["id_number"], asst["category"], asst["start_date"], asst["end_date"], strict=True
    ):
        cases.setdefault((i, cat), []).append((s, e))
    for item, cat in (("低保金", "城乡低保"), ("特困供养金", "特困供养")):
        sub = fin[fin["item"] == item]
        for i, m in zip(sub["id_number"], sub["period"], strict=True):
            if not any(covers(s, e, m) for s, e in cases.get((i, cat), [])):
                out.add(("EM05", i, m))
    return out


def truth(path: Path) -> set[tuple[str, str, str]]:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    return set(zip(df["rule_code"], df["id_number"], df["period"], strict=True))
