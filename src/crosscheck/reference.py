"""Reference data of the district: its towns and sub-districts (include/reference/)."""

from __future__ import annotations

import csv
from functools import cache

from crosscheck.settings import INCLUDE_DIR

DIVISIONS_CSV = INCLUDE_DIR / "reference" / "tongliang_divisions.csv"


@cache
def division_rows() -> tuple[dict, ...]:
    with DIVISIONS_CSV.open(encoding="utf-8") as f:
        return tuple(csv.DictReader(f))


@cache
def towns() -> tuple[str, ...]:
    """The district's 28 towns and sub-districts, in division-code order."""
    seen = {}
    for row in division_rows():
        seen.setdefault(row["town"], row["town_code"])
    return tuple(sorted(seen, key=seen.get))
