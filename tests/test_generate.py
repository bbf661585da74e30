"""The synthetic district generator: determinism, formats, mess, planted findings, and the oracle."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from datetime import date
from pathlib import Path

import openpyxl
import oracle  # tests/oracle.py, on sys.path via pytest's rootdir insertion
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from stdnum.cn import ric

from crosscheck.contracts import contracts
from crosscheck.generate import RULE_CODES, generate

AS_OF = date(2026, 11, 28)
PERSONS = 3000
SEED = 11


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("gen")
    generate(d, PERSONS, SEED, AS_OF)
    return d


@pytest.fixture(scope="module")
def truth_rows(out) -> list[dict]:
    with (out / "truth.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def loaded(out):
    return oracle.load(out / "landing", AS_OF)


def landing_files(out: Path) -> list[Path]:
    return sorted(p for p in (out / "landing").rglob("*") if p.is_file())


def valid_id(s: str) -> bool:
    """GB 11643 check character and birth date (stdnum); the region code is not checked: a code that does
    not fit the birth year is at most a warning (extracts.md), and stdnum's place table has date ranges."""
    try:
        return (
            len(s) == 18
            and s[:17].isdigit()
            and ric.calc_check_digit(s) == s[17]
            and ric.get_birth_date(s) is not None
        )
    except Exception:
        return False


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_deterministic(out, tmp_path):
    generate(tmp_path, PERSONS, SEED, AS_OF)
    a = {p.relative_to(out): sha(p) for p in [*landing_files(out), out / "truth.csv"]}
    b = {p.relative_to(tmp_path): sha(p) for p in [*landing_files(tmp_path), tmp_path / "truth.csv"]}
    assert a == b


def test_other_seed_differs(out, tmp_path):
    generate(tmp_path, PERSONS, SEED + 1, AS_OF)
    assert sha(out / "truth.csv") != sha(tmp_path / "truth.csv")


def test_summary(tmp_path):
    s = generate(tmp_path, 1000, 3, AS_OF)
    assert len(s.files) == 9
    assert all(f.rows > 0 for f in s.files)
    assert set(s.planted) == set(RULE_CODES)
    assert all(v >= 3 for v in s.planted.values())
    assert "truth.csv" in str(s)


def test_layout(out):
    for name, c in contracts().items():
        found = list((out / "landing" / c.department).glob(f"{name}_20261128.*"))
        data = [p for p in found if not p.name.endswith(".done")]
        assert len(data) == 1, (name, found)
        assert data[0].suffix in (".csv", ".xlsx", ".parquet")


def test_every_rule_planted_at_least_three_times(truth_rows):
    assert list(truth_rows[0]) == ["rule_code", "id_number", "period", "department", "extract", "detail"]
    persons = {}
    for r in truth_rows:
        persons.setdefault(r["rule_code"], set()).add(r["id_number"])
    for code in RULE_CODES:
        assert len(persons.get(code, ())) >= 3, code
    for r in truth_rows:
        assert bool(r["period"]) == (r["rule_code"] in ("SS06", "SS08", "EM02", "EM05")), r
        if r["period"]:
            assert re.fullmatch(r"\d{4}-\d{2}", r["period"])
        if r["rule_code"] not in ("ID01", "ID02"):
            assert valid_id(r["id_number"]), r


def test_ids_valid_except_planted(loaded, truth_rows):
    planted_bad = {(r["rule_code"], r["id_number"]) for r in truth_rows if r["rule_code"] in ("ID01", "ID02")}
    found_bad = set()
    for df in loaded.values():
        for col in [c for c in df.columns if c.endswith("__check")]:
            id_col = col[: -len("__check")]
            for status, value in zip(df[col], df[id_col], strict=True):
                if status in ("ID01", "ID02"):
                    found_bad.add((status, value))
                elif status == "ok":
                    assert valid_id(value), value
    assert found_bad == planted_bad


def _in_force(code: str) -> tuple[int | None, int | None]:
    """The years a region code was in force, from python-stdnum's cn/loc.dat ('[1983-1997]铜梁县')."""
    from stdnum import numdb

    county = dict(p for _, p in numdb.get("cn/loc").info(code) for p in p.items())["county"]
    assert "铜梁" in county, (code, county)
    start, end = county[1:].split("]")[0].split("-")
    return (int(start) if start else None), (int(end) if end else None)


def test_person_ids_unique_and_consistent(loaded):
    res = loaded["residents"]
    ok = res[res["id_number__check"] == "ok"]
    dup = ok["id_number"].value_counts()
    assert (dup > 1).sum() <= 10  # only the planted ID05 duplicates
    sex_ok = [
        ("男" if int(i[16]) % 2 else "女") == s for i, s in zip(ok["id_number"], ok["sex"], strict=True)
    ]
    assert len(sex_ok) - sum(sex_ok) <= 10  # only the planted ID04s
    regions = {i[:6] for i in ok["id_number"]}
    assert {"512124", "510228", "500224", "500151"} <= regions
    by_region = {}
    for i in ok["id_number"]:
        by_region.setdefault(i[:6], set()).add(int(i[6:10]))
    # Tongliang's codes only for births while each was in force (python-stdnum's code table)
    for code in ("512124", "510228", "500224", "500151"):
        start, end = _in_force(code)
        years = by_region[code]
        assert (start or 0) <= min(years) and max(years) < (end or 9999), (code, min(years), max(years))
    assert len(regions) > 5  # people from elsewhere


def test_formats(out):
    files = {p.name: p for p in landing_files(out)}
    csvs = [p for p in files.values() if p.suffix == ".csv"]
    kinds = set()
    for p in csvs:
        raw = p.read_bytes()
        if raw.startswith(b"\xef\xbb\xbf"):
            kind = "utf-8-sig"
        else:
            try:
                raw.decode("utf-8")
                kind = "utf-8"
            except UnicodeDecodeError:
                raw.decode("gb18030")
                kind = "gb18030"
        kinds.add(kind)
        enc = "gb18030" if kind == "gb18030" else "utf8"
        t = pacsv.read_csv(p, read_options=pacsv.ReadOptions(encoding=enc))
        assert t.num_rows > 0
    assert kinds == {"utf-8", "utf-8-sig", "gb18030"}
    assert any(p.read_bytes().endswith(b"\n\n") for p in csvs)  # blank trailing lines
    assert any(
        b'""\n' in p.read_bytes()[:2000] or b",\n" in p.read_bytes()[:2000] for p in csvs
    )  # trailing columns
    assert any(b'"' in p.read_bytes()[:500] for p in csvs)  # quoted fields
    xlsx = [p for p in files.values() if p.suffix == ".xlsx"]
    assert xlsx
    titles = 0
    for p in xlsx:
        wb = openpyxl.load_workbook(p, read_only=True)
        first = next(wb.worksheets[0].iter_rows(values_only=True))
        if first[0] and str(first[0]).startswith("铜梁区2026年11月"):
            titles += 1
        wb.close()
    assert titles >= 1
    pqs = [p for p in files.values() if p.suffix == ".parquet"]
    assert pqs
    for p in pqs:
        t = pq.read_table(p)
        assert all(f.type == pa.string() for f in t.schema)
    assert any(name.endswith(".done") for name in files)
    assert any(
        not (p.parent / (p.name + ".done")).exists() for p in files.values() if not p.name.endswith(".done")
    )


def test_header_aliases_used(out, loaded):
    aliases = set()
    for c in contracts().values():
        for col in c.columns:
            aliases.update(col.aliases)
    seen = set()
    for p in landing_files(out):
        if p.suffix == ".csv":
            head = p.read_bytes().split(b"\n")[0]
            try:
                line = head.decode("utf-8-sig")
            except UnicodeDecodeError:
                line = head.decode("gb18030")
            seen.update(h.strip('" ') for h in line.split(","))
        elif p.suffix == ".parquet":
            seen.update(pq.read_schema(p).names)
    assert seen & aliases


def _all_raw_values(out: Path) -> list[str]:
    values = []
    for p in landing_files(out):
        if p.suffix == ".csv":
            raw = p.read_bytes()
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                text = raw.decode("gb18030")
            for row in csv.reader(io.StringIO(text)):
                values.extend(row)
        elif p.suffix == ".parquet":
            for col in pq.read_table(p).columns:
                values.extend(v for v in col.to_pylist() if v is not None)
        elif p.suffix == ".xlsx":
            wb = openpyxl.load_workbook(p, read_only=True)
            for row in wb.worksheets[0].iter_rows(values_only=True):
                values.extend(row)
            wb.close()
    return values


def test_value_mess_present(out):
    values = _all_raw_values(out)
    strs = [v for v in values if isinstance(v, str)]
    assert any(re.fullmatch(r"[０-９]{17}[０-９Ｘ]", s) for s in strs), "full-width IDs"
    assert any(re.fullmatch(r"\d{17}x", s) for s in strs), "lower-case x"
    assert any(
        re.fullmatch(r"\d{6} \d{8} \d{3}[\dX]", s) or re.fullmatch(r" \d{17}[\dX] ", s) for s in strs
    ), "spaces"
    assert any(re.fullmatch(r"\d{15}", s) for s in strs), "15-digit IDs"
    dotted = {
        d
        for s in strs
        for d in "·•・.．∙"
        if re.fullmatch(rf"[\u4e00-\u9fff]+{re.escape(d)}[\u4e00-\u9fff]+", s)
    }
    assert len(dotted) >= 3, dotted
    assert any(re.fullmatch(r"[\u4e00-\u9fff][ \u3000][\u4e00-\u9fff]+", s) for s in strs), "spaces in names"
    for pattern in (
        r"\d{4}-\d{2}-\d{2}",
        r"\d{4}/\d{2}/\d{2}",
        r"(19|20)\d{6}",
        r"\d{4}年\d{2}月\d{2}日",
        r"20\d{4}",
        r"\d{4}-\d{2}",
        r"\d{4}年\d{2}月",
        r"\d{1,3}(,\d{3})+\.\d{2}",
    ):
        assert any(re.fullmatch(pattern, s) for s in strs), pattern
    assert any(isinstance(v, date) for v in values), "xlsx date cells"
    assert any(isinstance(v, int) and 20000 < v < 60000 for v in values), "xlsx serial dates"
    for yes, no in (("是", "否"), ("Y", "N"), ("1", "0"), ("合格", "不合格")):
        assert yes in strs and no in strs, (yes, no)


def test_realistic_world(loaded):
    res = loaded["residents"]
    ok = res[res["id_number__check"] == "ok"]
    ages = [oracle.age(i, AS_OF) for i in ok["id_number"]]
    old = sum(a >= 60 for a in ages) / len(ages)
    assert 0.15 < old < 0.32
    assert 0.45 < (ok["sex"] == "男").mean() < 0.55
    assert ok["town"].nunique() == 28
    assert {"坪漆村", "文曲村", "大滩村"} <= set(ok["village"])
    assert set(ok["relation"]) >= {"户主", "配偶", "子", "女", "父母", "孙子女"}
    assert set(ok["status"]) == {"正常", "死亡", "迁出"}
    poor = loaded["registry"]
    assert 0.03 <= poor["id_number"].nunique() / len(ok) <= 0.08
    # near misses: people exactly 16 and exactly 60 today
    assert 16 in ages and 60 in ages
    jobs = loaded["jobs"]
    assert set(jobs["job_type"]) == {"扶贫公益性岗位", "临时公益性岗位", "扶贫车间", "企业就业", "灵活就业"}
    assert jobs.loc[jobs["job_type"] == "扶贫车间", "employer"].str.endswith("扶贫车间").all()
    items = set(loaded["payments"]["item"])
    assert items == set(contracts()["payments"].column("item").values)
    assert set(loaded["deaths"]["source"]) == {"火化", "医学死亡证明", "户籍注销"}
    assert {"城乡低保", "特困供养", "临时救助"} <= set(loaded["assistance"]["category"])


def test_names_normalise_to_one_form(loaded):
    # dot variants and spaces disappear after normalisation: no name keeps a raw variant
    for df in loaded.values():
        for n in df["name"]:
            assert " " not in n and not any(d in n for d in "•・.．∙"), n
            assert unicodedata.normalize("NFKC", n) == n


def test_oracle_finds_exactly_the_truth(out):
    truth = oracle.truth(out / "truth.csv")
    found = oracle.findings(out / "landing", AS_OF)
    assert found - truth == set(), "findings the generator did not plant"
    assert truth - found == set(), "planted findings the oracle does not see"


@pytest.mark.parametrize(
    ("persons", "seed", "as_of"), [(1000, 5, date(2026, 1, 15)), (2000, 7, date(2028, 2, 29))]
)
def test_oracle_other_dates(tmp_path, persons, seed, as_of):
    generate(tmp_path, persons, seed, as_of)
    assert oracle.findings(tmp_path / "landing", as_of) == oracle.truth(tmp_path / "truth.csv")


# ---------------------------------------------------------------- the next nights of the same district


@pytest.mark.parametrize(
    ("persons", "seed", "first", "later"),
    [(3000, 11, date(2026, 11, 20), date(2026, 11, 23)), (1000, 5, date(2028, 2, 1), date(2028, 2, 29)),
     (2000, 7, date(2026, 10, 25), date(2026, 12, 2))],  # two new months: their payments, findings going on
)
def test_later_night_same_people_oracle_finds_its_truth(tmp_path, persons, seed, first, later):
    """A later night (--since): the same people (the first night's findings mostly still there), a few
    findings gone and a few new, and the oracle finds exactly that night's truth."""
    generate(tmp_path, persons, seed, first)
    summary = generate(tmp_path, persons, seed, later, since=first)
    assert summary.truth_path == tmp_path / f"truth_{later:%Y%m%d}.csv"
    t1, t2 = oracle.truth(tmp_path / "truth.csv"), oracle.truth(summary.truth_path)
    assert oracle.findings(tmp_path / "landing", later) == t2
    assert len(t1 & t2) > len(t1 ^ t2), "mostly the same findings, even five weeks later"
    assert t2 - t1 and t1 - t2, "some new, some gone"
    # the same people: every ID of the first night's residents is in the later night's
    ids = {oracle.norm_id(v)[1] for v in oracle.read_extract(tmp_path / "landing", "residents", first)["id_number"]}
    later_ids = {oracle.norm_id(v)[1] for v in oracle.read_extract(tmp_path / "landing", "residents", later)["id_number"]}
    assert ids == later_ids


def test_later_night_leaves_earlier_files_alone_and_is_deterministic(tmp_path):
    first, later = date(2026, 11, 20), date(2026, 11, 21)
    generate(tmp_path / "a", 1000, 3, first)
    before = {p: (sha(p), p.stat().st_mtime_ns) for p in landing_files(tmp_path / "a")}
    truth1 = sha(tmp_path / "a" / "truth.csv")
    generate(tmp_path / "a", 1000, 3, later, since=first)
    assert {p: (sha(p), p.stat().st_mtime_ns) for p in before} == before
    assert sha(tmp_path / "a" / "truth.csv") == truth1
    new = set(landing_files(tmp_path / "a")) - set(before)
    assert new and all(f"_{later:%Y%m%d}." in p.name for p in new)
    generate(tmp_path / "b", 1000, 3, later, since=first)
    assert {p.name: sha(p) for p in new} == {p.name: sha(p) for p in landing_files(tmp_path / "b")}


def test_later_night_refuses_dates_it_cannot_write(tmp_path):
    with pytest.raises(ValueError, match="must come after"):
        generate(tmp_path, 1000, 3, date(2026, 11, 20), since=date(2026, 11, 20))
    with pytest.raises(ValueError, match="same year"):
        generate(tmp_path, 1000, 3, date(2027, 1, 1), since=date(2026, 12, 31))
    assert not list(tmp_path.iterdir()), "nothing written"
