"""Personal-data protection for anything meant for wide distribution, and spreadsheet safety."""

from __future__ import annotations

import re

_ID18 = re.compile(r"^[0-9]{17}[0-9Xx]$")


def mask_id(value: str | None) -> str | None:
    """``500151199001011234`` → ``500151********1234``: region code and last four stay, birth date goes.

    Anything that is not an 18-character ID (a damaged one, as received) keeps only its first
    six and last four characters too, so no full number leaks whatever its shape.
    """
    if value is None:
        return None
    text = str(value)
    if len(text) <= 10:
        return "*" * len(text)
    return text[:6] + "*" * (len(text) - 10) + text[-4:]


# An ID number inside free text (a finding's detail quotes the ID as written): 18 characters, or a
# 15-digit legacy number, not part of a longer run of digits or letters.
_ID_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])(?:[0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9A-Za-z])")


def mask_ids_in_text(text: str | None) -> str | None:
    """Every ID number inside a text masked as mask_id does (``…户主身份证号500151********1234不是…``)."""
    if not text:
        return text
    return _ID_IN_TEXT.sub(lambda m: mask_id(m.group(0)), text)


def is_full_id(value: str) -> bool:
    return bool(_ID18.match(value or ""))


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value):
    """A text cell that a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value
