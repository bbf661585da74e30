"""normalise_arrow's vectorised fast paths give exactly what the per-value Python normalisers give.

Property style without hypothesis: a seeded generator glues together fragments that are clean,
nearly clean and dirty (full-width characters, whitespace, dot variants, compatibility ideographs,
combining marks, impossible dates, amounts with three decimals, ...), and every column type is
checked value by value, errors included, against the slow path.
"""

from __future__ import annotations

import random
import sys
import unicodedata

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from crosscheck.contracts import Column
from crosscheck.ingest import ARROW_TYPES
from crosscheck.normalise import (
    _DOTS,
    _ID_LIKE,
    _PLAIN_NAME,
    _PLAIN_TEXT,
    _WS,
    _plain_results,
    check_char,
    normalise_arrow,
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

ENUM = ("正常", "死亡", "迁出", "村（社区）", " 有空格 ", "A")  # two entries normalise_text changes

FRAGMENTS = [
    "", "王", "春雨", "李", "阿卜杜", "热合曼", "\u4e00", "\u9fff", "\u3400", "\u4dbf", "\u9fa5", "\u3000",
    "abc", "X", "x", "E", "0", "7", "12", "-", "/", ".", ",", "'", '"', "=", "+", "#", "(", ")", "_", "~",
    " ", "  ", "\t", "\n", "\x1f", "\u00a0", "\u200b", "\ufeff", "\u2028",
    "·", "•", "・", "．", "･", "\u0387", "\u2027", "\u22c5", "··",
    "０", "９", "Ｘ", "ｘ", "Ａ", "（", "）", "－", "／",
    "\uf900", "\ufa10", "\U0002f800", "\u2f00", "\u3280", "\u2460", "ﬁ", "\u2126",
    "e\u0301", "\u0301", "\u1100\u1161", "\u1161", "\uac00", "\u00e9", "Å",
    "¥", "元", "年", "月", "日", "\U00020000", "\U0002a6d6", "\ud7a3", "\u4dc0",
]


def _random_text(rng: random.Random) -> str:
    return "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 5)))


def _id(body: str) -> str:
    return body + check_char(body)


X_ID = next(_id(f"50015119900101{n:03d}") for n in range(1000) if check_char(f"50015119900101{n:03d}") == "X")


def _random_id(rng: random.Random) -> str:
    birth = f"{rng.choice([1889, 1890, 1950, 1990, 2000, 2024, 2026, 2027, 2099]):04d}"
    birth += rng.choice(["01", "02", "11", "12", "00", "13"]) + rng.choice(["01", "28", "29", "30", "31", "00"])
    valid = _id("500151" + birth + f"{rng.randint(0, 999):03d}")
    return rng.choice([
        valid, valid, valid.lower(), valid[:17] + rng.choice("0123456789X"), valid[:17] + "x",
        valid[:15] + "000", valid[:6] + valid[8:17], f" {valid} ", valid[:6] + " " + valid[6:],
        "".join(chr(ord(c) + 0xFEE0) for c in valid), valid[:10] + "X" + valid[11:], valid[:-1],
        f'="{valid}"', f"'{valid}", "5.00151199001011E+17", valid + ".0", valid + _random_text(rng),
        _mess_up(rng, valid), _mess_up(rng, valid.lower()), _mess_up(rng, valid[:6] + valid[8:17]),
        _mess_up(rng, valid[:6] + valid[8:16] + "X"), _mess_up(rng, valid[:6] + valid[8:17] + "1"),
    ])


def _mess_up(rng: random.Random, value: str) -> str:
    """Full-width characters and spaces (ASCII and ideographic) here and there."""
    out = ""
    for c in value:
        out += rng.choice(["", "", "", "", " ", "\u3000", "\t", "'"]) if rng.random() < 0.2 else ""
        out += chr(ord(c) + 0xFEE0) if rng.random() < 0.3 else c
    return out


def _random_date(rng: random.Random) -> str:
    y = rng.choice(["0000", "0001", "1899", "1900", "1999", "2000", "2024", "2025", "2100", "9999"])
    m = rng.choice(["00", "01", "02", "09", "10", "12", "13", "1", "99"])
    d = rng.choice(["00", "01", "28", "29", "30", "31", "32", "1"])
    sep = rng.choice(["-", "/", ".", "", "", "－", " ", "-/"[rng.randint(0, 1)]])
    date = y + sep + m + sep[::-1] + d
    return rng.choice([date, date, y + m, y + sep + m, f" {date}", date + " 12:30", date + "日",
                       str(rng.randint(0, 3_000_000)), y + "年" + m + "月", _random_text(rng)])


def _random_amount(rng: random.Random) -> str:
    whole = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 14)))
    frac = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 4)))
    amount = rng.choice(["", "-", "+", "-"]) + whole + (rng.choice([".", ".", ""]) + frac if frac else "")
    return rng.choice([amount, amount, amount + "元", "¥" + amount, "1,234.50", amount + "E2",
                       "１２.５", f" {amount}", "-0", "-0.00", "999999999999.99", "1000000000000",
                       _random_text(rng)])


def _values(kind: str, rng: random.Random, n: int = 3000) -> list[str | None]:
    make = {"id_number": _random_id, "date": _random_date, "month": _random_date, "amount": _random_amount}
    values: list[str | None] = [None, "", " ", "　"]
    for _ in range(n):
        if kind == "enum" and rng.random() < 0.5:
            v = rng.choice(ENUM)
            values.append(rng.choice([v, f" {v}", v.replace("（", "(").replace("）", ")"), v.strip()]))
        else:
            values.append(make.get(kind, _random_text)(rng))
    return values


SLOW = {
    "id_number": normalise_id, "name": normalise_name, "text": normalise_text,
    "enum": lambda v: normalise_enum(v, ENUM), "date": parse_date, "month": parse_month,
    "amount": parse_amount, "year": parse_year, "yesno": parse_yesno,
}


def _slow(column: Column, values: list) -> tuple[list, list]:
    """What the per-value normalisers say: the values and the errors normalise_arrow must report."""
    out, errors = [], []
    for i, v in enumerate(values):
        if column.type == "id_number":
            r = normalise_id(v)
            out.append(r.value)
            if r.reason is not None:
                errors.append((i, r.rule, r.reason))
            continue
        try:
            out.append(SLOW[column.type](v))
        except ValueError as exc:
            out.append(None)
            errors.append((i, None, f"{column.header}：{exc}"))
    return out, errors


@pytest.mark.parametrize("kind", sorted(SLOW))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_normalise_arrow_equals_the_python_normalisers(kind, seed):
    rng = random.Random(f"{kind}-{seed}")
    values = _values(kind, rng)
    column = Column(kind, "列", kind, values=ENUM if kind == "enum" else ())
    expected, expected_errors = _slow(column, values)
    arrow_type = ARROW_TYPES[kind]
    got, errors = normalise_arrow(column, pa.chunked_array([values[:1000], values[1000:]], pa.string()), arrow_type)
    assert got.type == arrow_type
    mismatches = [(v, g, e) for v, g, e in zip(values, got.to_pylist(), pa.array(expected, arrow_type).to_pylist(),
                                                strict=True) if g != e]
    assert not mismatches, mismatches[:10]
    assert sorted(errors) == expected_errors
    if kind == "id_number":  # normalise_column shares the ID fast path
        assert normalise_column(column, pa.array(values, pa.string())) == (expected, expected_errors)


@pytest.mark.parametrize(
    ("kind", "plain"),
    [
        ("id_number", [_id("50015119900101123"), X_ID.lower(), "510224650302123",
                       " ５００１５１ 19900101\u3000123" + _id("50015119900101123")[-1].lower()]),
        ("name", ["王春雨", "阿卜杜·热合曼", "\u3400\u9fff", "Li-Na"]),
        ("text", ["蒲吕街道", "6215****4948", "a. b", "YLDJ202501"]),
        ("enum", ["正常", "死亡", "A"]),
        ("date", ["2026-11-28", "2024/02/29", "2026.01.31", "20100827", "0001-01-01"]),
        ("month", ["202501", "2025-01", "2025/12", "1900.01"]),
        ("amount", ["194.00", "0", "-12.5", "999999999999.99", "000000000012.34"]),
    ],
)
def test_clean_values_take_the_fast_path(kind, plain):
    """Guards the point of the fast paths: clean values must not fall back to Python one by one."""
    column = Column(kind, "列", kind, values=ENUM if kind == "enum" else ())
    mask, values = _plain_results(column, pa.array(plain, pa.string()), ARROW_TYPES[kind])
    assert mask.all() and len(values) == len(plain)


@pytest.mark.parametrize(
    ("kind", "dirty"),
    [
        ("id_number", [_id("50015119900101123")[:17] + "Y", "51022465030212X", "5102246503021234",
                       f'="{_id("50015119900101123")}"', _id("50015120990101123"), _id("50015118891231123")]),
        ("name", ["王 春雨", "阿卜杜.热合曼", "·王", "王··李", "\uf900", "ＡＢ", "e\u0301"]),
        ("text", [" 蒲吕", "蒲吕 ", "村（社区）", "\uf900", "a\u3000b"]),
        ("enum", ["村（社区）", " 有空格 ", "正常 "]),
        ("date", ["2026-02-29", "0000-01-01", "2026-13-01", "2026-1-1", "2026-01/01", "202611"]),
        ("month", ["202513", "189912", "2025-1", "2025-00"]),
        ("amount", ["1.234", "1000000000000", "1,234", "+1", ".5", "1."]),
    ],
)
def test_unclean_values_take_the_slow_path(kind, dirty):
    column = Column(kind, "列", kind, values=ENUM if kind == "enum" else ())
    mask, _values = _plain_results(column, pa.array(dirty, pa.string()), ARROW_TYPES[kind])
    assert not mask.any()


def _composes_as_second() -> set[str]:
    """Every character that NFC can compose onto a preceding character."""
    seconds = set()
    for cp in range(sys.maxunicode + 1):
        parts = unicodedata.decomposition(chr(cp)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            seconds.add(chr(int(parts[1], 16)))
    return seconds | {chr(cp) for cp in range(0x1161, 0x11C3)}  # Hangul V and T jamo compose algorithmically


def test_plain_characters_are_left_alone_by_the_normalisers():
    """Proof of the character classes: each plain character is its own NFKC form, cannot compose with
    a neighbour, is not whitespace and is not a dot variant (so any string of them is unchanged)."""
    chars = [chr(cp) for cp in range(sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF]
    seconds = _composes_as_second()
    for pattern, dots_ok in ((_PLAIN_NAME, False), (_PLAIN_TEXT, True)):
        plain = pa.array(chars).filter(pc.match_substring_regex(pa.array(chars), pattern)).to_pylist()
        assert 20000 < len(plain) < 30000
        for c in plain:
            assert unicodedata.is_normalized("NFKC", c) and unicodedata.combining(c) == 0, repr(c)
            assert c not in seconds and not c.isspace() and not _WS.match(c), repr(c)
            assert dots_ok or not _DOTS.match(c), repr(c)


def test_id_characters_become_digits_x_or_removed():
    """The ID path turns full-width forms with pyarrow's NFKC and then drops spaces: per character this is
    what normalise_id's NFKC and _WS do."""
    chars = [chr(cp) for cp in range(0x10000) if not 0xD800 <= cp <= 0xDFFF]
    like = pa.array(chars).filter(pc.match_substring_regex(pa.array(chars), _ID_LIKE)).to_pylist()
    assert len(like) == 26
    arrow = pc.utf8_normalize(pa.array(like), "NFKC").to_pylist()
    for c, a in zip(like, arrow, strict=True):
        assert a == unicodedata.normalize("NFKC", c) and (a in "0123456789Xx" or _WS.fullmatch(a)), repr(c)


def test_check_characters_are_stdnums():
    """The vectorised check character (normalise_arrow, the generator) and the scalar one equal
    python-stdnum's on random bodies, every check character among them."""
    import numpy as np
    from stdnum.cn import ric

    from crosscheck.normalise import check_chars

    rng = np.random.default_rng(11)
    digits = rng.integers(0, 10, size=(20_000, 17))
    bodies = ["".join(map(str, row)) for row in digits.tolist()]
    expected = [ric.calc_check_digit(body + "0") for body in bodies]
    assert set(expected) == set("0123456789X")
    assert check_chars(digits).tobytes().decode() == "".join(expected)
    assert [check_char(body) for body in bodies[:2000]] == expected[:2000]
