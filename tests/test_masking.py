"""The masking policy (masking.py) as a property: whatever text surrounds an ID number of any spelling the
contract knows (extracts.md) or a malformed one, and whatever spelling its birth date has in the same
row, what comes out for people lets no ID be rebuilt.

The checks here are the test's own (IDs by python-stdnum, its own folding and date reading), not the
policy's code.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from stdnum.cn import ric

from crosscheck.masking import for_people, mask_id, row_for_people

REGIONS = ["500151", "500224", "510224", "512124", "110101", "440305"]
FULL_WIDTH = str.maketrans("0123456789Xx", "０１２３４５６７８９Ｘｘ")


def _id(region: str, birth: date, seq: int) -> str:
    first17 = f"{region}{birth:%Y%m%d}{seq:03d}"
    return first17 + ric.calc_check_digit(first17)


def _spaced(text: str, cuts: list[int]) -> str:
    for cut in sorted({c % len(text) for c in cuts if c % len(text)}, reverse=True):
        text = text[:cut] + " " + text[cut:]
    return text


@st.composite
def spelled_id(draw) -> tuple[str, str, date]:
    """(the ID as it appears in the text, the valid ID it stands for, its birth date)."""
    region = draw(st.sampled_from(REGIONS))
    birth = draw(st.dates(date(1900, 1, 1), date(2025, 12, 31)))
    seq = draw(st.integers(0, 999))
    valid = _id(region, birth, seq)
    variant = draw(st.sampled_from([
        "plain", "lower_x", "spaces", "full_width", "half_full", "legacy15", "excel_sci", "tail000",
        "digits17", "digits19_after", "digits19_before", "longer_run", "wrong_check", "dashes"]))
    digits = st.text("0123456789", min_size=1, max_size=8)
    if variant == "lower_x":
        shown = valid.lower()
    elif variant == "spaces":
        shown = _spaced(valid, draw(st.lists(st.integers(1, 17), min_size=1, max_size=4)))
    elif variant == "dashes":
        shown = f"{valid[:6]}-{valid[6:14]}-{valid[14:]}"
    elif variant == "full_width":
        shown = valid.translate(FULL_WIDTH)
    elif variant == "half_full":
        shown = valid[:9] + valid[9:].translate(FULL_WIDTH)
    elif variant == "legacy15":
        birth = draw(st.dates(date(1900, 1, 1), date(1999, 12, 31)))
        valid = _id(region, birth, seq)
        shown = f"{region}{birth:%y%m%d}{seq:03d}"
    elif variant == "excel_sci":
        shown = f"{int(valid[:17]) * 10:.5E}".replace("E+", "E+")
    elif variant == "tail000":
        shown = valid[:15] + "000"
    elif variant == "digits17":
        shown = valid[:17]
    elif variant == "digits19_after":
        shown = valid + draw(st.sampled_from("0123456789"))
    elif variant == "digits19_before":
        shown = draw(st.sampled_from("0123456789")) + valid
    elif variant == "longer_run":
        shown = draw(digits) + valid + draw(digits)
    elif variant == "wrong_check":
        wrong = next(c for c in "0123456789X" if c != valid[17])
        shown = valid[:17] + wrong
    else:
        shown = valid
    return shown, valid, birth


def birth_spellings(birth: date) -> list[str]:
    y, m, d = birth.year, birth.month, birth.day
    return [f"{birth:%Y%m%d}", f"{birth:%Y-%m-%d}", f"{birth:%Y/%m/%d}", f"{birth:%Y.%m.%d}",
            f"{birth:%Y年%m月%d日}", f"{y}年{m}月{d}日", f"{y}-{m}-{d}", f"{y}/{m}/{d}", f"{birth:%y%m%d}",
            f"{birth:%y-%m-%d}", f"{birth:%d/%m/%Y}", f"{birth:%m/%d/%Y}", f"{birth:%Y %m %d}",
            f"{birth:%Y-%m-%d}".translate(FULL_WIDTH)]


# the words and separators of a finding's detail, or any text at all (digits of other scripts included)
FILLER = st.one_of(st.text(st.sampled_from(list("身份证号出生日期为户主不是该成员，；：（）() 太平镇坪漆村张三abcX-_./0123456789")),
                           max_size=12), st.text(max_size=12))


# ------------------------------------------------------------------------------ the test's own reader

def _squeeze(text: str) -> str:
    """The output as someone rebuilding an ID would read it: NFKC, upper case, separators inside numbers gone."""
    text = unicodedata.normalize("NFKC", text).upper()
    return re.sub(r"(?<=[0-9])[\s\-_.,·]{1,3}(?=[0-9X])", "", text)


def _dates_in(text: str) -> set[date]:
    text = unicodedata.normalize("NFKC", text)
    found = set()
    for y, m, d in re.findall(r"(?<![0-9])([0-9]{4}|[0-9]{2})\s*[-/.年\s]\s*([0-9]{1,2})\s*[-/.月\s]\s*([0-9]{1,2})",
                              text):
        for year in ([int(y)] if len(y) == 4 else [1900 + int(y), 2000 + int(y)]):
            try:
                found.add(date(year, int(m), int(d)))
            except ValueError:
                pass
    for a, b, y in re.findall(r"(?<![0-9])([0-9]{1,2})\s*[-/.\s]\s*([0-9]{1,2})\s*[-/.\s]\s*([0-9]{4})", text):
        for m, d in ((a, b), (b, a)):
            try:
                found.add(date(int(y), int(m), int(d)))
            except ValueError:
                pass
    return found


def assert_not_rebuildable(out: str, valid: str, birth: date | None) -> None:
    squeezed = _squeeze(out)
    assert valid[:17] not in squeezed, out  # 17 digits give the check character, hence the whole ID
    if birth is None:
        return
    assert f"{birth:%Y%m%d}" not in squeezed, out  # the birth date is what the masked digits hide
    assert birth not in _dates_in(out), out
    if birth.year < 2000:
        legacy = f"{valid[:6]}{birth:%y%m%d}{valid[14:17]}"
        assert legacy not in squeezed, out


# ----------------------------------------------------------------------------------------- properties

@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spelled_id(), st.integers(0, 13), FILLER, FILLER, FILLER, st.booleans())
@example(("510224199002015478", "510224199002015478", date(1990, 2, 1)), 4, "ID04 ", "户籍出生日期为1990-01-01，身份证号为",
         "", False)
def test_no_id_can_be_rebuilt_from_a_row_for_people(spelled, spelling, before, middle, after, id_column_raw):
    shown, valid, birth = spelled
    written = birth_spellings(birth)[spelling]
    detail = f"{before}{shown}{middle}{written}{after}"
    row = {"id_number": shown if id_column_raw else valid, "name": f"{middle}张三", "detail": detail,
           "village": f"{after}村", "amount": None}
    out = row_for_people(row)
    assert out["amount"] is None
    damaged = "E+" in shown  # an Excel-damaged ID carries no birth date: a date beside it is nobody's
    assert_not_rebuildable("\n".join(str(v) for v in out.values()), valid,
                           None if damaged and id_column_raw else birth)
    # the text alone (a log line, a page) under the policy without the row around it
    assert_not_rebuildable(for_people(f"{shown} {written}"), valid, None if damaged else birth)


@settings(max_examples=200, deadline=None)
@given(spelled_id(), FILLER)
def test_an_id_column_never_shows_a_full_id(spelled, noise):
    shown, valid, birth = spelled
    masked = mask_id(shown)
    assert_not_rebuildable(masked, valid, birth)
    assert_not_rebuildable(for_people(noise + shown + noise), valid, birth)


def test_a_computed_check_character_is_never_stated():
    valid = _id("500151", date(1990, 1, 1), 123)
    wrong = valid[:17] + ("0" if valid[17] != "0" else "1")
    row = {"id_number": wrong, "detail": f"人社“参保信息”第3行 身份证号“{wrong}”：身份证号校验位错误（最后一位应为"
                                         f"{valid[17]}），号码有误，请核对后重新报送"}
    out = row_for_people(row)
    assert f"应为{valid[17]}" not in out["detail"]
    assert "校验位错误" in out["detail"]  # the reason itself stays
    assert_not_rebuildable(out["detail"] + out["id_number"], valid, date(1990, 1, 1))


def test_other_figures_of_a_row_stay_readable():
    """Dates that are not a birth date of the row, months, amounts and short numbers are kept."""
    valid = _id("500151", date(1950, 6, 7), 11)
    row = {"id_number": valid, "detail": "2026-03-15死亡，仍发放2026-04养老金2笔（流水号5001510000002087、S000123）共1,234.50元",
           "name": "张三", "amount": 1234.5}
    out = row_for_people(row)
    assert out["detail"] == row["detail"]
    assert out["id_number"] == "500151********" + valid[-4:]
    assert row_for_people(row, mask_ids=False)["id_number"] == valid  # worklist_mask_ids off: column whole
