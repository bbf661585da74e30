"""One test per value mess the departments send (synthetic IDs only)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from stdnum.cn import ric

from crosscheck.contracts import Column
from crosscheck.normalise import (
    check_char,
    normalise_column,
    normalise_enum,
    normalise_id,
    normalise_name,
    normalise_text,
    parse_amount,
    parse_date,
    parse_month,
    parse_year,
    parse_yesno,
)


def make_id(region: str = "500151", birth: str = "19900101", seq: str = "123") -> str:
    """A synthetic ID with a correct ISO 7064 MOD 11-2 check character (python-stdnum's)."""
    body = region + birth + seq
    return body + ric.calc_check_digit(body + "0")


def make_id_with_check(check: str, region: str = "500151", birth: str = "19900101") -> str:
    for n in range(1000):
        candidate = make_id(region, birth, f"{n:03d}")
        if candidate[-1] == check:
            return candidate
    raise AssertionError(check)


# ------------------------------------------------------------------------------------------- IDs


def test_valid_id_sex_and_birth_date():
    r = normalise_id(make_id(seq="123"))
    assert r.rule is None and r.value == make_id(seq="123")
    assert r.birth_date == date(1990, 1, 1) and r.sex == "男"
    assert normalise_id(make_id(seq="124")).sex == "女"


def test_check_char_helper_agrees():
    body = "50015119900101123"
    assert make_id() == body + check_char(body)


def test_full_width_id_with_spaces():
    valid = make_id()
    full = "".join(chr(ord(c) + 0xFEE0) for c in valid)
    r = normalise_id(f" {full[:6]}\u3000{full[6:]} ")
    assert r.rule is None and r.value == valid


def test_lower_case_x():
    valid = make_id_with_check("X")
    r = normalise_id(valid.lower())
    assert r.rule is None and r.value == valid and r.value.endswith("X")


def test_excel_text_prefixes():
    valid = make_id()
    assert normalise_id(f'="{valid}"').value == valid
    assert normalise_id(f"'{valid}").value == valid


def test_15_digit_legacy_upgrade():
    # 15-digit: region 510224, birth 650302 (1965-03-02), sequence 123 (odd: male)
    r = normalise_id("510224650302123")
    assert r.rule is None
    assert r.value == make_id("510224", "19650302", "123")
    assert r.value[:17] == "51022419650302123"
    assert r.birth_date == date(1965, 3, 2) and r.sex == "男"


@pytest.mark.parametrize(
    "raw", ["5.00151E+17", "5.00151199001011E+17", "5.00151199001011e17", "５.００１５１Ｅ＋１７"]
)
def test_excel_scientific_notation_is_id02(raw):
    r = normalise_id(raw)
    assert r.rule == "ID02" and r.value is None
    assert "Excel" in r.reason and "文本" in r.reason


def test_excel_float_form_is_id02():
    r = normalise_id("500151199001011234.0")
    assert r.rule == "ID02"


def test_excel_trailing_000_is_id02():
    body = "500151199001011"
    candidate = body + "000"
    assert check_char(candidate[:17]) != "0"  # the damage is detectable
    r = normalise_id(candidate)
    assert r.rule == "ID02" and "000" in r.reason


def test_trailing_000_with_correct_check_is_valid():
    for day in range(1, 29):
        for hundreds in range(10):
            body = f"500151199001{day:02d}{hundreds}00"
            if check_char(body) == "0":
                assert normalise_id(body + "0").rule is None
                return
    raise AssertionError("no synthetic id found")


def test_numeric_cells_are_id02():
    assert normalise_id(5.00151199001011e17).rule == "ID02"
    assert normalise_id(500151199001011234).rule == "ID02"
    assert normalise_id(500151199001011234.0).rule == "ID02"


def test_numeric_15_digit_cell_is_exact_and_upgraded():
    r = normalise_id(510224650302123)
    assert r.rule is None and r.value == make_id("510224", "19650302", "123")
    assert normalise_id("510224650302123.0").value == r.value


def test_impossible_birth_date_id01():
    body = "50015119900230123"
    r = normalise_id(body + check_char(body))
    assert r.rule == "ID01" and "出生日期" in r.reason and "不存在" in r.reason


def test_bad_check_char_id01():
    valid = make_id()
    wrong = valid[:17] + ("1" if valid[17] != "1" else "2")
    r = normalise_id(wrong)
    assert r.rule == "ID01" and "校验位" in r.reason and valid[17] in r.reason


def test_wrong_length_and_illegal_characters():
    assert "长度" in normalise_id("5001511990").reason
    r = normalise_id("50015119900101123A")
    assert r.rule == "ID01" and "非法字符" in r.reason and "A" in r.reason
    assert normalise_id("5001511990X101123" + "4").rule == "ID01"


@pytest.mark.parametrize(
    "region,birth", [("512124", "19650302"), ("510228", "19850302"), ("500224", "19990505"), ("500151", "20150101")]
)
def test_tongliang_region_codes_accepted(region, birth):
    r = normalise_id(make_id(region, birth))
    assert r.rule is None and r.value


def test_region_code_not_matching_birth_year_only_warns():
    # 510228 (Tongliang County, Sichuan) ended in 1997: odd for someone born in 2005 -> warning only
    r = normalise_id(make_id("510228", "20050101"))
    assert r.rule is None and r.value
    assert r.warning and "510228" in r.warning
    # 500151 exists since 2014 but a person born 1960 may have been issued it later: no warning
    assert normalise_id(make_id("500151", "19600101")).warning is None
    # unknown region code: also only a warning
    r = normalise_id(make_id("999999", "19800101"))
    assert r.rule is None and r.warning


def test_empty_id_is_not_an_error():
    assert normalise_id(None).value is None and normalise_id(None).rule is None
    assert normalise_id("  ").rule is None


# ------------------------------------------------------------------------------------------ names


@pytest.mark.parametrize(
    "dot", ["·", "•", "・", ".", "．", "∙", "\u00b7", "\u2022", "\u30fb", "\uff0e", "\u2219", "\uff65"]
)
def test_every_dot_variant(dot):
    assert normalise_name(f"阿依{dot}古丽") == "阿依\u00b7古丽"
    assert normalise_name(f" 阿依 {dot} 古丽 ") == "阿依\u00b7古丽"


def test_name_spaces_and_full_width():
    assert normalise_name("张\u3000三") == "张三"
    assert normalise_name(" 李 四 ") == "李四"
    assert normalise_name("ＡＢＣ") == "ABC"
    assert normalise_name("") is None and normalise_name(None) is None


# ------------------------------------------------------------------------------------------ dates


@pytest.mark.parametrize(
    "raw",
    [
        "2026-11-28",
        "2026/11/28",
        "20261128",
        "2026年11月28日",
        "２０２６年１１月２８日",
        " 2026-11-28 ",
        "2026-11-28 00:00:00",
        "2026.11.28",
        46354,
        46354.0,
        "46354",
        "46354.25",
        20261128,
        date(2026, 11, 28),
        datetime(2026, 11, 28, 10, 30),
    ],
)
def test_every_date_spelling(raw):
    assert parse_date(raw) == date(2026, 11, 28)


def test_single_digit_month_and_day():
    assert parse_date("2026/1/5") == date(2026, 1, 5)
    assert parse_date("2026-1-5") == date(2026, 1, 5)
    assert parse_date("2026年1月5日") == date(2026, 1, 5)


def test_excel_serials_1900_system():
    assert parse_date("1") == date(1900, 1, 1)
    assert parse_date(59) == date(1900, 2, 28)
    assert parse_date(61) == date(1900, 3, 1)
    assert parse_date(2958465) == date(9999, 12, 31)
    with pytest.raises(ValueError):
        parse_date(60)  # Excel's fictitious 1900-02-29
    with pytest.raises(ValueError):
        parse_date(0)


@pytest.mark.parametrize("raw", ["2026-02-30", "2026-13-01", "20260230", "abc", "2026-11/28", "202611", "-5"])
def test_garbage_dates_raise_chinese(raw):
    with pytest.raises(ValueError) as exc:
        parse_date(raw)
    assert any("\u4e00" <= c <= "\u9fff" for c in str(exc.value))


def test_empty_date():
    assert parse_date("") is None and parse_date(None) is None


@pytest.mark.parametrize(
    "raw",
    [
        "202611",
        "2026-11",
        "2026/11",
        "2026年11月",
        "2026.11",
        "2026-11-28",
        "20261128",
        202611,
        date(2026, 11, 5),
    ],
)
def test_every_month_spelling(raw):
    assert parse_month(raw) == date(2026, 11, 1)


def test_single_digit_month():
    assert parse_month("2026年1月") == date(2026, 1, 1)
    assert parse_month("2026-1") == date(2026, 1, 1)
    with pytest.raises(ValueError):
        parse_month("202613")
    with pytest.raises(ValueError):
        parse_month("next month")


# ------------------------------------------------------------------------------- amounts and more


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("1,234.50", "1234.50"),
        ("1234.5", "1234.5"),
        ("１，２３４．５０", "1234.50"),
        ("¥1,234.50", "1234.50"),
        ("￥100", "100"),
        ("100元", "100"),
        ("1,234,567", "1234567"),
        (1234.5, "1234.5"),
        (0.1 + 0.2, "0.30"),
        (100, "100"),
        ("-5.00", "-5.00"),
    ],
)
def test_amounts(raw, expected):
    assert parse_amount(raw) == Decimal(expected)


@pytest.mark.parametrize("raw", ["abc", "1,23", "12,34.5", "1.2.3", "元", "1.234", "NaN"])
def test_bad_amounts(raw):
    with pytest.raises(ValueError):
        parse_amount(raw)


def test_years():
    assert parse_year("2020") == 2020
    assert parse_year("2020年") == 2020
    assert parse_year(2020) == 2020
    assert parse_year(2020.0) == 2020
    assert parse_year("") is None
    with pytest.raises(ValueError):
        parse_year("20")


@pytest.mark.parametrize("raw", ["是", "Y", "y", "1", "合格", "True", "TRUE", "yes", True, 1])
def test_yes(raw):
    assert parse_yesno(raw) is True


@pytest.mark.parametrize("raw", ["否", "N", "n", "0", "不合格", "False", "false", "no", False, 0])
def test_no(raw):
    assert parse_yesno(raw) is False


def test_yesno_garbage_and_empty():
    assert parse_yesno("") is None
    with pytest.raises(ValueError):
        parse_yesno("也许")


def test_text_and_enum():
    assert normalise_text("  太平镇\u3000") == "太平镇"
    assert normalise_text("   ") is None
    assert normalise_enum(" 城乡低保 ", ["城乡低保", "特困供养"]) == "城乡低保"
    assert normalise_enum("城乡 低保", ["城乡低保"]) == "城乡低保"
    with pytest.raises(ValueError) as exc:
        normalise_enum("低保", ["城乡低保", "特困供养"])
    assert "城乡低保、特困供养" in str(exc.value)


# --------------------------------------------------------------------------------------- columns

ID_COL = Column(name="id_number", header="身份证号", type="id_number", required=True)
DATE_COL = Column(name="start_date", header="起始日期", type="date")
ENUM_COL = Column(name="category", header="救助类别", type="enum", values=("城乡低保", "特困供养"))


@pytest.mark.parametrize("as_arrow", [True, False])
def test_normalise_column_ids(as_arrow):
    valid = make_id()
    raw = [valid, "5.00151E+17", None, valid.lower(), "123", make_id("510224", "20050101")]
    values = pa.array(raw, pa.string()) if as_arrow else raw
    warnings: list = []
    out, errors = normalise_column(ID_COL, values, warnings=warnings)
    assert out == [valid, None, None, valid, None, make_id("510224", "20050101")]
    assert [(i, rule) for i, rule, _ in errors] == [(1, "ID02"), (4, "ID01")]
    assert [i for i, _ in warnings] == [5]


@pytest.mark.parametrize("as_arrow", [True, False])
def test_normalise_column_dates_and_enums(as_arrow):
    raw = ["2026-11-28", "2026/11/28", "bad", None, "2026-11-28"]
    values = pa.array(raw) if as_arrow else raw
    out, errors = normalise_column(DATE_COL, values)
    assert out == [date(2026, 11, 28)] * 2 + [None, None, date(2026, 11, 28)]
    assert len(errors) == 1 and errors[0][0] == 2 and errors[0][1] is None and "起始日期" in errors[0][2]
    out, errors = normalise_column(ENUM_COL, pa.array(["城乡低保", "x", "特困供养"]))
    assert out == ["城乡低保", None, "特困供养"] and [e[0] for e in errors] == [1]


def test_normalise_column_chunked_and_empty():
    arr = pa.chunked_array([pa.array(["2026-11-28"]), pa.array([None, "20261128"])])
    out, errors = normalise_column(DATE_COL, arr)
    assert out == [date(2026, 11, 28), None, date(2026, 11, 28)] and not errors
    assert normalise_column(DATE_COL, pa.array([], pa.string())) == ([], [])
