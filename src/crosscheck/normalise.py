"""Value normalisation: the ONE place that knows every value convention of the department extracts.

Every function takes the value as received (a string from CSV/Parquet, or a Python value from an
XLSX cell) and returns the normalised value; the caller keeps the raw value next to it.

Conventions (see shared/spec/extracts.md):

* ID numbers (``normalise_id``): NFKC, all whitespace removed, ``x`` -> ``X``; 15-digit legacy numbers
  are upgraded to 18 digits; Excel damage (scientific notation, float form, 18 digits ending ``000``
  with a failing check character, any 16+ digit number stored as a number) is rule ``ID02``; every
  other unusable number is rule ``ID01``. The check character is ISO 7064 MOD 11-2 (the same as
  python-stdnum ``cn.ric``). A region code unknown to python-stdnum's table, or no longer in force in
  the birth year, is only a warning, never a rejection.
* Names (``normalise_name``): NFKC, no whitespace, every dot variant between parts -> U+00B7.
* Dates (``parse_date``), in this order of rules, deterministic:
    1. Python ``date``/``datetime`` (XLSX date cells) -> the date;
    2. ``YYYY-MM-DD`` / ``YYYY/MM/DD`` / ``YYYY.MM.DD`` (1- or 2-digit month and day, optional time part),
       ``YYYY年MM月DD日``;
    3. exactly 8 digits -> ``YYYYMMDD``;
    4. exactly 6 digits -> rejected (looks like a month ``YYYYMM``, not a date);
    5. any other number (digits with an optional fraction, or an int/float) whose integer part is in
       1..2958465 -> an Excel serial number, 1900 date system (1 = 1900-01-01; 60, Excel's fictitious
       1900-02-29, is rejected; the fraction, a time of day, is dropped). A 5-digit string such as
       ``46354`` is therefore always a serial (46354 = 2026-11-28), never a year or a partial date.
* Months (``parse_month``): ``YYYYMM``, ``YYYY-MM``, ``YYYY/MM``, ``YYYY.MM``, ``YYYY年M月``, any full date
  above (-> its month), date/datetime; the result is the first day of the month.
* Amounts, years, yes/no, free text and enums: see the functions.

``normalise_column`` normalises a whole column, each distinct value once.
"""

from __future__ import annotations

import math
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import numpy as np
from stdnum.cn import ric

from crosscheck.contracts import Column

__all__ = [
    "IdResult",
    "normalise_id",
    "normalise_name",
    "normalise_text",
    "normalise_enum",
    "parse_date",
    "parse_month",
    "parse_amount",
    "parse_year",
    "parse_yesno",
    "normalise_column",
    "normalise_value",
]

_WS = re.compile(r"[\s\u200b\u200c\u200d\u2060\ufeff]+")
_REEXPORT = "请将该列设置为文本格式后重新导出"


def _nfkc(value: str) -> str:
    return unicodedata.normalize("NFKC", value)


def _is_empty(raw: Any) -> bool:
    if raw is None:
        return True
    if isinstance(raw, float) and math.isnan(raw):
        return True
    return isinstance(raw, str) and not raw.strip()


# ---------------------------------------------------------------------------------------------- ID


@dataclass(frozen=True)
class IdResult:
    value: str | None  # the 18-character ID, or None (empty or unusable)
    rule: str | None  # None ok, 'ID01' unusable, 'ID02' Excel damage
    reason: str | None = None  # plain Chinese for a clerk, including what to do
    warning: str | None = None  # e.g. region code not matching the birth year
    birth_date: date | None = None
    sex: str | None = None  # '男' / '女'

    @property
    def ok(self) -> bool:
        return self.rule is None


_EMPTY_ID = IdResult(None, None)
_SCIENTIFIC = re.compile(r"[0-9]+(?:\.[0-9]*)?E[+-]?[0-9]+")
_FLOATISH = re.compile(r"([0-9]+)\.([0-9]*)")
_EXCEL_TEXT = re.compile(r'=?"(.*)"')  # ="500151..." (the CSV trick to keep a number as text)
_ID_CHARS = re.compile(r"[0-9X]*")
_MIN_BIRTH = date(1890, 1, 1)


def check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits of an ID number: python-stdnum's, the
    one scalar reference (its argument includes the check place, which it ignores)."""
    return ric.calc_check_digit(first17 + "0")


# The vectorised check character (whole columns, the generator): weights 2^(17-i) mod 11 and the
# character of each weighted sum mod 11; tests/test_normalise_fast.py checks it against stdnum.
ID_WEIGHTS = np.array([2 ** (17 - i) % 11 for i in range(17)], dtype=np.int64)
ID_CHECK_CHARS = np.frombuffer(b"10X98765432", dtype=np.uint8)


def check_chars(digits: np.ndarray) -> np.ndarray:
    """The check characters (bytes, uint8) of rows of 17 digit values (an n x 17 integer array)."""
    return ID_CHECK_CHARS[(digits.astype(np.int64) @ ID_WEIGHTS) % 11]


_today_cache: list = [0.0, date.min]


def _today() -> date:
    now = time.monotonic()
    if now - _today_cache[0] > 60:
        _today_cache[:] = [now, date.today()]
    return _today_cache[1]


def _id01(reason: str) -> IdResult:
    return IdResult(None, "ID01", reason)


def _id02(reason: str) -> IdResult:
    return IdResult(None, "ID02", reason)


_ID02_NUMBER = _id02(
    "身份证号被Excel转换为数值（科学计数法或小数形式），后几位已丢失，无法修复，" + _REEXPORT
)
_ID02_000 = _id02("身份证号末三位被Excel改为000（超过15位的数字被截断），校验位不符，无法修复，" + _REEXPORT)


@lru_cache(maxsize=65536)
def _region_warning(region: str, year: int) -> str | None:
    """A warning when the region code cannot have been in force after the birth year; never a rejection.

    Region codes are those in force when the number was issued (at birth or later), so a code is
    plausible if it is in python-stdnum's table and was still in force in or after the birth year
    (500151 since 2014 is fine for someone born in 1990; 510228, ended 1997, is odd for one born 2005).
    stdnum's own ``get_birth_place`` demands the code be in force in the birth year itself, which
    rejects real IDs, so its table is read here directly.
    """
    try:
        from stdnum import numdb

        results = numdb.get("cn/loc").info(region)
        info = {k: v for _part, props in results for k, v in props.items()}
        if not info.get("county"):
            return (
                f"地区码{region}不在行政区划代码表中（可能是外地迁入人员或代码表未收录，仅提示，不影响使用）"
            )
        for county in info["county"].split(","):
            if not county.startswith("["):
                return None
            start_end = county[1:].split("]", 1)[0]
            end = start_end.split("-", 1)[1] if "-" in start_end else ""
            if not end or year <= int(end):
                return None
        return f"地区码{region}在出生年份{year}之前已停用（可能是旧区划代码或号码有误，仅提示，不影响使用）"
    except Exception:  # the code table must never reject or break an ID
        return None


def _numeric_id(raw: int | float | Decimal) -> IdResult | str:
    """An ID that arrived as a number (XLSX numeric cell). Returns an IdResult or a digit string."""
    if isinstance(raw, float | Decimal):
        if not math.isfinite(raw):
            return _id01("身份证号不是有效数字，请核对后重新报送")
        if raw != int(raw):
            return _id01("身份证号是带小数的数值，请将该列设置为文本格式后重新导出")
        raw = int(raw)
    digits = str(abs(raw))
    if len(digits) == 15:  # Excel keeps 15 significant digits: a legacy number survives
        return digits
    if len(digits) >= 16:
        return _ID02_NUMBER
    return _id01(f"身份证号长度不对：应为18位（或15位旧号码），实际为{len(digits)}位，请核对后重新报送")


def normalise_id(raw: Any) -> IdResult:
    """Normalise one ID number (身份证号). See the module docstring for the rules."""
    if raw is None or isinstance(raw, bool):
        return _EMPTY_ID if raw is None else _id01("身份证号不是号码，请核对后重新报送")
    if isinstance(raw, int | float | Decimal):
        got = _numeric_id(raw)
        if isinstance(got, IdResult):
            return got
        s = got
    else:
        s = str(raw)
        # fast path: 18 ASCII characters already clean
        if not (len(s) == 18 and s.isascii() and s[:17].isdigit() and (s[17].isdigit() or s[17] in "xX")):
            s = _WS.sub("", _nfkc(s)).upper()
            if m := _EXCEL_TEXT.fullmatch(s):
                s = m.group(1)
            s = s.strip("'`\"")
            if not s:
                return _EMPTY_ID
            if _SCIENTIFIC.fullmatch(s):
                return _ID02_NUMBER
            if m := _FLOATISH.fullmatch(s):
                whole, frac = m.groups()
                if len(whole) == 15 and not frac.strip("0"):
                    s = whole  # a legacy 15-digit number stored as a number is exact
                elif len(whole) >= 16:
                    return _ID02_NUMBER
        else:
            s = s.upper()
    if not _ID_CHARS.fullmatch(s):
        bad = "".join(dict.fromkeys(c for c in s if c not in "0123456789X"))
        return _id01(f"身份证号含非法字符「{bad}」：只能是数字，最后一位可以是X，请核对后重新报送")
    if len(s) == 15:
        if "X" in s:
            return _id01("15位旧身份证号只能是数字，请核对后重新报送")
        s = f"{s[:6]}19{s[6:]}"
        s += check_char(s)
    elif len(s) != 18:
        return _id01(f"身份证号长度不对：应为18位（或15位旧号码），实际为{len(s)}位，请核对后重新报送")
    elif "X" in s[:17]:
        return _id01("身份证号含非法字符「X」：X只能出现在最后一位，请核对后重新报送")
    expected = check_char(s[:17])
    if s[17] != expected and s.endswith("000"):
        return _ID02_000
    try:
        birth = date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return _id01(f"身份证号中的出生日期{s[6:14]}不存在，请核对后重新报送")
    if birth < _MIN_BIRTH or birth > _today():
        return _id01(f"身份证号中的出生日期{s[6:14]}不合理，请核对后重新报送")
    if s[17] != expected:
        return _id01("身份证号校验位错误（最后一位应为" + expected + "），号码有误，请核对后重新报送")
    return IdResult(
        s,
        None,
        None,
        _region_warning(s[:6], birth.year),
        birth,
        "男" if int(s[16]) % 2 else "女",
    )


# -------------------------------------------------------------------------------------------- names

# dot variants after NFKC (U+FF0E -> '.', U+FF65 -> U+30FB, U+0387 -> U+00B7)
_DOTS = re.compile(r"[.\u00b7\u2022\u30fb\u2219\u2027\u22c5\u2e31\u0387\uff0e\uff65]+")


def normalise_name(raw: Any) -> str | None:
    """Person name: NFKC, no whitespace, dots between parts as U+00B7 (中间点)."""
    if raw is None:
        return None
    s = _WS.sub("", _nfkc(str(raw)))
    s = _DOTS.sub("\u00b7", s).strip("\u00b7")
    return s or None


def normalise_text(raw: Any) -> str | None:
    """Free text: NFKC, surrounding whitespace removed, empty -> None."""
    if raw is None:
        return None
    s = _nfkc(str(raw)).strip()
    return s or None


def normalise_enum(raw: Any, allowed: Iterable[str]) -> str | None:
    """A value from a fixed list (NFKC, stripped; inner spaces are forgiven). None for empty."""
    s = normalise_text(raw)
    if s is None:
        return None
    allowed = tuple(allowed)
    if not allowed or s in allowed:
        return s
    compact = _WS.sub("", s)
    if compact in allowed:
        return compact
    raise ValueError(f"「{s}」不是允许的取值，应为以下之一：{'、'.join(allowed)}")


# -------------------------------------------------------------------------------------------- dates

_EXCEL_EPOCH = date(1899, 12, 30)
_MAX_SERIAL = 2958465  # 9999-12-31
_TIME = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
_YMD_SEP = re.compile(r"(?P<y>\d{4})(?P<sep>[-/.])(?P<m>\d{1,2})(?P=sep)(?P<d>\d{1,2})" + _TIME)
_YMD_CN = re.compile(
    r"(?P<y>\d{4})年(?P<m>\d{1,2})月(?P<d>\d{1,2})日?(?:\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
)
_NUMBER = re.compile(r"\d+(?:\.\d*)?")
_DATE_HELP = "应为2026-11-28、2026/11/28、20261128或2026年11月28日"


def _make_date(y: int | str, m: int | str, d: int | str, raw: Any) -> date:
    try:
        return date(int(y), int(m), int(d))
    except ValueError:
        raise ValueError(f"日期「{raw}」不存在（月份或日期超出范围），请核对") from None


def excel_serial_to_date(serial: float | int | Decimal, raw: Any = None) -> date:
    """Excel 1900 date system: 1 = 1900-01-01; 60 is Excel's fictitious 1900-02-29."""
    n = int(serial)
    if n < 1 or n > _MAX_SERIAL:
        raise ValueError(f"「{raw if raw is not None else serial}」不是有效日期，{_DATE_HELP}")
    if n == 60:
        raise ValueError(f"Excel日期序号60（1900-02-29）不存在：「{raw if raw is not None else serial}」")
    return _EXCEL_EPOCH + timedelta(days=n + (1 if n < 60 else 0))


def parse_date(raw: Any) -> date | None:
    """A date in any accepted spelling (module docstring); None for empty; ValueError (Chinese) for garbage."""
    if raw is None:
        return None
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    if isinstance(raw, bool):
        raise ValueError(f"「{raw}」不是有效日期，{_DATE_HELP}")
    if isinstance(raw, int | float | Decimal):
        if isinstance(raw, float) and not math.isfinite(raw):
            raise ValueError(f"「{raw}」不是有效日期，{_DATE_HELP}")
        if raw == int(raw) and len(str(int(raw))) == 8:
            return parse_date(str(int(raw)))
        return excel_serial_to_date(raw, raw)
    s = str(raw)
    if not s.isascii():
        s = _nfkc(s)
    s = s.strip()
    if not s:
        return None
    if len(s) == 10 and s[4] == "-" and s[7] == "-" and s[:4].isdigit():  # fast path ISO
        return _make_date(s[:4], s[5:7], s[8:10], raw)
    if m := _YMD_SEP.fullmatch(s):
        return _make_date(m["y"], m["m"], m["d"], raw)
    s = _WS.sub("", s)
    if m := _YMD_CN.fullmatch(s):
        return _make_date(m["y"], m["m"], m["d"], raw)
    if _NUMBER.fullmatch(s):
        whole = s.split(".", 1)[0]
        if len(whole) == 8 and "." not in s:
            return _make_date(s[:4], s[4:6], s[6:8], raw)
        if len(whole) == 6 and "." not in s:
            raise ValueError(f"「{raw}」像年月（YYYYMM）而不是日期，{_DATE_HELP}")
        return excel_serial_to_date(int(whole), raw)
    raise ValueError(f"「{raw}」不是有效日期，{_DATE_HELP}")


_YM_SEP = re.compile(r"(\d{4})[-/.](\d{1,2})")
_YM_CN = re.compile(r"(\d{4})年(\d{1,2})月?")
_MONTH_HELP = "应为202611、2026-11或2026年11月"


def parse_month(raw: Any) -> date | None:
    """A month (first day of it): YYYYMM, YYYY-MM, YYYY/MM, YYYY年M月, a full date, or a date cell."""
    if raw is None:
        return None
    if isinstance(raw, date):
        return date(raw.year, raw.month, 1)
    if isinstance(raw, int | float | Decimal) and not isinstance(raw, bool):
        if isinstance(raw, float) and not math.isfinite(raw):
            raise ValueError(f"「{raw}」不是有效年月，{_MONTH_HELP}")
        if raw == int(raw):
            raw = str(int(raw))
        else:
            raise ValueError(f"「{raw}」不是有效年月，{_MONTH_HELP}")
    s = _WS.sub("", _nfkc(str(raw)))
    if not s:
        return None
    m = None
    if len(s) == 6 and s.isdigit():
        y, mo = s[:4], s[4:]
    elif m := (_YM_SEP.fullmatch(s) or _YM_CN.fullmatch(s)):
        y, mo = m.groups()
    else:
        try:
            d = parse_date(s)
        except ValueError:
            raise ValueError(f"「{raw}」不是有效年月，{_MONTH_HELP}") from None
        return None if d is None else date(d.year, d.month, 1)
    if not 1 <= int(mo) <= 12 or int(y) < 1900:
        raise ValueError(f"年月「{raw}」不存在（月份应为1到12），请核对")
    return date(int(y), int(mo), 1)


# ---------------------------------------------------------------------------------- amounts and more

_AMOUNT = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:E[+-]?\d+)?", re.IGNORECASE)
_CURRENCY = re.compile(r"^(?:¥|RMB|CNY|人民币)|(?:元|RMB|CNY)$", re.IGNORECASE)


def parse_amount(raw: Any) -> Decimal | None:
    """Yuan as Decimal: thousands separators, full-width characters, ¥ prefix and 元 suffix allowed."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise ValueError(f"「{raw}」不是有效金额")
    if isinstance(raw, Decimal):
        return _check_amount(raw, raw)
    if isinstance(raw, int):
        return _check_amount(Decimal(raw), raw)
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise ValueError(f"「{raw}」不是有效金额")
        return _check_amount(Decimal(repr(raw)), raw)
    s = _WS.sub("", _nfkc(str(raw)))
    if not s:
        return None
    s = _CURRENCY.sub("", _CURRENCY.sub("", s))
    if not s or not any(c.isdigit() for c in s) or not _AMOUNT.fullmatch(s):
        raise ValueError(f"「{raw}」不是有效金额，应为以元为单位的数字，如1234.50或1,234.50")
    try:
        value = Decimal(s.replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"「{raw}」不是有效金额，应为以元为单位的数字，如1234.50或1,234.50") from None
    return _check_amount(value, raw)


_CENT = Decimal("0.01")
_MAX_AMOUNT = Decimal("1e12")


def _check_amount(value: Decimal, raw: Any) -> Decimal:
    """At most two decimals (float noise such as 0.30000000000000004 is rounded away) and below 1e12 yuan."""
    if not value.is_finite() or abs(value) >= _MAX_AMOUNT:
        raise ValueError(f"金额「{raw}」超出范围")
    if value.as_tuple().exponent < -2:
        rounded = value.quantize(_CENT, rounding=ROUND_HALF_UP)
        if abs(rounded - value) > Decimal("0.000001"):
            raise ValueError(f"金额「{raw}」超过两位小数（应以元为单位，精确到分）")
        return rounded
    return value


_YEAR = re.compile(r"(\d{4})(?:\.0+)?年?(?:度)?")


def parse_year(raw: Any) -> int | None:
    """A year: 2020, '2020', '2020年', '2020年度'."""
    if raw is None:
        return None
    if isinstance(raw, int | float | Decimal) and not isinstance(raw, bool):
        if raw != raw or raw != int(raw):
            raise ValueError(f"「{raw}」不是有效年份，应为如2020的四位年份")
        raw = str(int(raw))
    s = _WS.sub("", _nfkc(str(raw)))
    if not s:
        return None
    m = _YEAR.fullmatch(s)
    if not m or not 1900 <= int(m.group(1)) <= 2100:
        raise ValueError(f"「{raw}」不是有效年份，应为如2020的四位年份")
    return int(m.group(1))


_YES = {"是", "Y", "YES", "1", "1.0", "合格", "TRUE", "T", "√", "有"}
_NO = {"否", "N", "NO", "0", "0.0", "不合格", "FALSE", "F", "×", "无"}


def parse_yesno(raw: Any) -> bool | None:
    """是/否, Y/N (any case), 1/0, 合格/不合格, True/False."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float) and raw in (0, 1):
        return bool(raw)
    s = _WS.sub("", _nfkc(str(raw))).upper()
    if not s:
        return None
    if s in _YES:
        return True
    if s in _NO:
        return False
    raise ValueError(f"「{raw}」不是有效的是/否取值，应为是或否（也可为Y/N、1/0、合格/不合格）")


# ------------------------------------------------------------------------------------------ columns


def _value_normaliser(column: Column) -> Callable[[Any], Any]:
    t = column.type
    if t == "id_number":
        return normalise_id
    if t == "name":
        return normalise_name
    if t == "text":
        return normalise_text
    if t == "enum":
        allowed = column.values
        return lambda v: normalise_enum(v, allowed)
    return {
        "date": parse_date,
        "month": parse_month,
        "amount": parse_amount,
        "year": parse_year,
        "yesno": parse_yesno,
    }[t]


def normalise_value(column: Column, raw: Any) -> tuple[Any, str | None, str | None, str | None]:
    """One value of a column: (normalised, rule or None, reason or None, warning or None)."""
    if column.type == "id_number":
        r = normalise_id(raw)
        return r.value, r.rule, r.reason, r.warning
    try:
        return _value_normaliser(column)(raw), None, None, None
    except ValueError as exc:
        return None, None, f"{column.header}：{exc}", None


_DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

# Vectorised "plain value" fast paths (pyarrow.compute/numpy over whole arrays: the rows of ID, name and
# text columns, the distinct values of the others). A value is fast only if its Python normaliser
# provably returns it unchanged (or the parsed value) and without error; everything else, including
# every value that would be rejected, takes the Python path, which also words the reason.
# tests/test_normalise_fast.py checks each path against the Python normalisers.
#
# Characters that are their own NFKC form, never compose with a neighbour, are not whitespace (_WS)
# and are not dot variants (_DOTS): printable ASCII without space and '.', CJK Unified Ideographs and
# Extension A. '.' and inner spaces are kept by normalise_text, a single U+00B7 between parts by
# normalise_name.
_CJK = r"\x{3400}-\x{4dbf}\x{4e00}-\x{9fff}"
_NAME_CHARS = r"\x{21}-\x{2d}\x{2f}-\x{7e}" + _CJK
_TEXT_CHARS = r"\x{21}-\x{7e}" + _CJK
_PLAIN_NAME = rf"^[{_NAME_CHARS}]+(?:\x{{b7}}[{_NAME_CHARS}]+)*$"
_PLAIN_TEXT = rf"^[{_TEXT_CHARS}](?:[ {_TEXT_CHARS}]*[{_TEXT_CHARS}])?$"  # no surrounding space
_PLAIN_ID = r"^[0-9]{17}[0-9Xx]$"
# digits, X/x and spaces, ASCII or full-width: NFKC makes them ASCII and _WS drops the spaces
_ID_LIKE = r"^[0-9Xx \x{3000}\x{ff10}-\x{ff19}\x{ff38}\x{ff58}]+$"
# parse_date's ISO/separator fast path (_YMD_SEP with 2-digit month and day) and its YYYYMMDD rule
_PLAIN_DATE = r"^[0-9]{4}(?:-[0-9]{2}-|/[0-9]{2}/|\.[0-9]{2}\.|[0-9]{2})[0-9]{2}$"
_PLAIN_MONTH = r"^[0-9]{4}[-/.]?[0-9]{2}$"  # parse_month's YYYYMM and _YM_SEP with a 2-digit month
# at most 12 integer digits: always below the 1e12 limit and within decimal128(14, 2)
_PLAIN_AMOUNT = r"^-?[0-9]{1,12}(?:\.[0-9]{1,2})?$"


def _matches(strings, pattern: str):
    """numpy bool mask of the non-null strings matching ``pattern`` (RE2)."""
    import pyarrow.compute as pc

    return pc.fill_null(pc.match_substring_regex(strings, pattern), False).to_numpy(zero_copy_only=False)


def _digit_matrix(strings, width: int):
    """The bytes of non-null strings of exactly ``width`` ASCII characters each, as an (n, width) uint8 array."""

    if not len(strings):
        return np.zeros((0, width), dtype=np.uint8)
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)[strings.offset:]
    data = np.frombuffer(strings.buffers()[2], dtype=np.uint8)
    return data[offsets[0]:offsets[0] + width * len(strings)].reshape(-1, width)


def _number(digits, start: int, stop: int):
    """The decimal number in columns start..stop of a matrix of ASCII digits."""

    value = np.zeros(len(digits), dtype=np.int64)
    for i in range(start, stop):
        value = value * 10 + digits[:, i] - 48
    return value


def _valid_ymd(year, month, day):
    """Mask of the (year, month, day) triples that ``datetime.date`` accepts."""

    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    days = np.array(_DAYS_IN_MONTH)[np.clip(month - 1, 0, 11)] + ((month == 2) & leap)
    return (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= days)


def _to_date32(year, month, day):
    """A date32 array from valid (year, month, day) arrays."""
    import pyarrow as pa

    months = (year - 1970) * 12 + month - 1
    days = months.astype("datetime64[M]").astype("datetime64[D]") + (day - 1)
    return pa.array(days, pa.date32())


def _plain_ids(strings):
    """The valid IDs among ``strings`` (a pyarrow string array) that need no more than normalise_id's
    full-width -> ASCII, whitespace removal, ``x`` -> ``X`` and 15 -> 18 digit upgrade.

    Returns ``(mask, values)``: a numpy mask and the normalised IDs where it is set, in order. Almost
    all of a million IDs are such; checking them as a matrix of digits (check character, birth date,
    date range) is ~20x faster than one by one. Region-code warnings are not computed here (callers
    asking for warnings go the slow way).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    is18 = _matches(strings, _PLAIN_ID)
    is15 = np.zeros(len(strings), dtype=bool)
    chars = np.zeros((len(strings), 18), dtype=np.uint8)
    chars[is18] = _digit_matrix(strings.filter(pa.array(is18)), 18)
    other = np.flatnonzero(~is18)
    messy = other[_matches(strings.take(pa.array(other, pa.int64())), _ID_LIKE)]
    if len(messy):  # the few with spaces or full-width characters, as normalise_id's NFKC and _WS leave them
        compact = pc.replace_substring(pc.utf8_normalize(strings.take(pa.array(messy, pa.int64())), "NFKC"), " ", "")
        long, short = _matches(compact, _PLAIN_ID), _matches(compact, r"^[0-9]{15}$")
        is18[messy[long]] = True
        chars[messy[long]] = _digit_matrix(compact.filter(pa.array(long)), 18)
        is15[messy[short]] = True
        legacy = _digit_matrix(compact.filter(pa.array(short)), 15)  # gains '19' and a check character
        chars[is15, :6] = legacy[:, :6]
        chars[is15, 6:8] = np.frombuffer(b"19", np.uint8)
        chars[is15, 8:17] = legacy[:, 6:]
    chars[chars[:, 17] == ord("x"), 17] = ord("X")
    digits = chars[:, :17].astype(np.int64) - 48
    expected = check_chars(digits)
    chars[is15, 17] = expected[is15]
    year, month, day = _number(chars, 6, 10), _number(chars, 10, 12), _number(chars, 12, 14)
    ymd = year * 10000 + month * 100 + day
    today = _today()
    good = ((is18 | is15) & (expected == chars[:, 17]) & _valid_ymd(year, month, day)
            & (ymd >= _MIN_BIRTH.year * 10000 + 101) & (ymd <= today.year * 10000 + today.month * 100 + today.day))
    n = int(good.sum())
    offsets = pa.py_buffer(np.arange(0, 18 * n + 1, 18, dtype=np.int32).tobytes())
    return good, pa.StringArray.from_buffers(n, offsets, pa.py_buffer(chars[good].tobytes()))


def _plain_results(column: Column, strings, arrow_type):
    """``(mask, values)``: the ``strings`` a fast path can normalise and their results as an Arrow array
    of ``arrow_type`` (in order), or None when no fast path applies."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = column.type
    if strings.type != pa.string():
        return None
    if t == "id_number" and arrow_type == pa.string():
        return _plain_ids(strings)
    if t in ("name", "text", "enum") and arrow_type == pa.string():
        if t == "enum":
            # a value exactly in the list is itself, provided the list entry survives normalise_text
            allowed = [v for v in column.values if normalise_text(v) == v]
            if not allowed:
                return None
            mask = pc.fill_null(pc.is_in(strings, value_set=pa.array(allowed, pa.string())), False)
            mask = mask.to_numpy(zero_copy_only=False)
        else:
            mask = _matches(strings, _PLAIN_NAME if t == "name" else _PLAIN_TEXT)
        return mask, strings.filter(pa.array(mask, pa.bool_()))
    if t == "amount" and arrow_type == pa.decimal128(14, 2):
        mask = _matches(strings, _PLAIN_AMOUNT)
        return mask, pc.cast(strings.filter(pa.array(mask, pa.bool_())), arrow_type)
    if t in ("date", "month") and arrow_type == pa.date32():
        mask = _matches(strings, _PLAIN_DATE if t == "date" else _PLAIN_MONTH)
        index = np.flatnonzero(mask)
        compact = pc.replace_substring_regex(strings.take(pa.array(index, pa.int64())), r"[-/.]", "")
        if t == "date":
            digits = _digit_matrix(compact, 8)
            year, month, day = _number(digits, 0, 4), _number(digits, 4, 6), _number(digits, 6, 8)
            good = _valid_ymd(year, month, day)
        else:
            digits = _digit_matrix(compact, 6)
            year, month = _number(digits, 0, 4), _number(digits, 4, 6)
            day = np.ones_like(year)
            good = (month >= 1) & (month <= 12) & (year >= 1900)  # parse_month's own check
        mask[index[~good]] = False  # invalid dates take the slow path, which words the reason
        return mask, _to_date32(year[good], month[good], day[good])
    return None


def _slow_results(column: Column, distinct: Sequence[Any]) -> list[tuple[Any, str | None, str | None, str | None]]:
    """(normalised, rule, reason, warning) of each value by the Python normalisers."""
    if column.type == "id_number":
        return [(r.value, r.rule, r.reason, r.warning) for r in map(normalise_id, distinct)]
    fn = _value_normaliser(column)
    out = []
    for v in distinct:
        try:
            out.append((fn(v), None, None, None))
        except ValueError as exc:
            out.append((None, None, f"{column.header}：{exc}", None))
    return out


def normalise_column(
    column: Column,
    values: Any,
    *,
    warnings: list[tuple[int, str]] | None = None,
) -> tuple[list[Any], list[tuple[int, str | None, str]]]:
    """Normalise a whole column, each DISTINCT value once.

    ``values`` is a pyarrow Array/ChunkedArray (strings, as read) or any Python sequence.
    Returns ``(normalised, errors)``: ``normalised[i]`` is the value for row i (None when empty or
    unusable; str for id/name/text/enum, date for date/month, Decimal for amount, int for year, bool
    for yesno); ``errors`` holds ``(index, rule_or_None, reason_zh)`` for every unusable non-empty
    value (rule is 'ID01'/'ID02' for ID numbers, None otherwise). Pass a list as ``warnings`` to
    receive ``(index, warning_zh)`` (e.g. region code not matching the birth year).
    Empty values are not errors here: required-column checks belong to validation.
    """
    errors: list[tuple[int, str | None, str]] = []
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:  # pragma: no cover
        pa = None
    if pa is not None and isinstance(values, pa.Array | pa.ChunkedArray):
        import numpy as np

        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks() if values.num_chunks else pa.array([], values.type)
        if len(values) == 0:
            return [], errors
        enc = pc.dictionary_encode(values, null_encoding="encode")
        distinct = enc.dictionary.to_pylist()
        indices = enc.indices.to_numpy(zero_copy_only=False)
        results = _slow_results(column, distinct)  # the fast paths are normalise_arrow's
        normed = np.empty(len(results), dtype=object)
        normed[:] = [r[0] for r in results]
        out = normed[indices].tolist()
        bad = np.array([r[2] is not None for r in results], dtype=bool)
        if bad.any():
            for i in np.flatnonzero(bad[indices]).tolist():
                r = results[indices[i]]
                errors.append((i, r[1], r[2]))
        if warnings is not None:
            warn = np.array([r[3] is not None for r in results], dtype=bool)
            if warn.any():
                for i in np.flatnonzero(warn[indices]).tolist():
                    warnings.append((i, results[indices[i]][3]))
        return out, errors
    cache: dict[Any, tuple[Any, str | None, str | None, str | None]] = {}
    out = []
    single = _value_normaliser(column) if column.type != "id_number" else None
    for i, v in enumerate(values):
        key = (type(v), v)
        try:
            r = cache[key]
        except KeyError:
            if single is None:
                res = normalise_id(v)
                r = (res.value, res.rule, res.reason, res.warning)
            else:
                try:
                    r = (single(v), None, None, None)
                except ValueError as exc:
                    r = (None, None, f"{column.header}：{exc}", None)
            cache[key] = r
        except TypeError:  # unhashable
            r = normalise_value(column, v)
        out.append(r[0])
        if r[2] is not None:
            errors.append((i, r[1], r[2]))
        if r[3] is not None and warnings is not None:
            warnings.append((i, r[3]))
    return out, errors


def normalise_arrow(column: Column, values, arrow_type) -> tuple[Any, list[tuple[int, str | None, str]]]:
    """Like normalise_column for a pyarrow array, but the result stays an Arrow array of ``arrow_type``.

    Plain values (see ``_plain_results``) are normalised vectorised; each other distinct value is
    normalised once in Python and the results are gathered with ``take``: no Python object is built
    per row or per plain value, which matters for million-row files.
    """
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], values.type)
    if len(values) == 0:
        return pa.array([], arrow_type), []
    if column.type in ("id_number", "name", "text") and values.type == arrow_type == pa.string():
        # Plain rows are normalised row by row, without dictionary-encoding them: hashing every row is
        # the main cost for columns of (nearly) unique values such as serial numbers and IDs.
        fast, fast_values = _plain_results(column, values, arrow_type)
        if fast.all():
            return fast_values, []
        rest = np.flatnonzero(~fast)
        normalised, errors = _normalise_distinct(column, values.take(pa.array(rest, pa.int64())), arrow_type)
        errors = [(int(rest[i]), rule, reason) for i, rule, reason in errors]
        return _scatter(fast, fast_values, normalised), errors
    return _normalise_distinct(column, values, arrow_type)


def _scatter(fast, fast_values, other_values):
    """The array whose items are ``fast_values`` where ``fast`` is set and ``other_values`` elsewhere, in order."""
    import pyarrow as pa

    position = np.empty(len(fast), dtype=np.int64)
    position[fast] = np.arange(len(fast_values))
    position[~fast] = len(fast_values) + np.arange(len(other_values))
    return pa.concat_arrays([fast_values, other_values]).take(pa.array(position))


def _normalise_distinct(column: Column, values, arrow_type) -> tuple[Any, list[tuple[int, str | None, str]]]:
    """normalise_arrow on a non-empty array: fast paths and Python normalisers over its distinct values."""
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(values, null_encoding="encode")
    dictionary = encoded.dictionary
    plain = _plain_results(column, dictionary, arrow_type)
    fast, fast_values = plain if plain is not None else (np.zeros(len(dictionary), dtype=bool), pa.array([], arrow_type))
    slow = np.flatnonzero(~fast)
    results = _slow_results(column, dictionary.take(pa.array(slow, pa.int64())).to_pylist())
    slow_values = pa.array([r[0] for r in results], arrow_type)
    normalised = _scatter(fast, fast_values, slow_values).take(encoded.indices)
    errors: list[tuple[int, str | None, str]] = []
    bad = np.flatnonzero([r[2] is not None for r in results])
    if len(bad):
        reason_at = dict(zip(slow[bad].tolist(), (results[i] for i in bad), strict=True))
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(np.isin(indices, slow[bad])).tolist():
            r = reason_at[int(indices[i])]
            errors.append((i, r[1], r[2]))
    return normalised, errors
