"""Reference data: the districts a deployment covers and their towns (include/reference/).

A deployment covers the districts listed in the setting ``districts`` (region codes); each district
has a divisions file of towns and villages. Findings, indicators and reports are per town, per
district and for the whole deployment; a town belongs to one district, found by its name.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache

from crosscheck.settings import INCLUDE_DIR

REFERENCE_DIR = INCLUDE_DIR / "reference"


@dataclass(frozen=True)
class District:
    code: str
    name: str
    divisions_file: str
    synthetic: bool

    @property
    def towns(self) -> tuple[str, ...]:
        return towns((self.code,))


@cache
def known_districts() -> dict[str, District]:
    with (REFERENCE_DIR / "districts.csv").open(encoding="utf-8") as f:
        return {r["district_code"]: District(r["district_code"], r["district"], r["divisions_file"],
                                             r["synthetic"] == "true") for r in csv.DictReader(f)}


def deployment_districts(codes) -> tuple[District, ...]:
    """The districts of the given region codes (a deployment's: the setting ``districts``)."""
    codes = tuple(codes)
    unknown = [c for c in codes if c not in known_districts()]
    if unknown:
        raise ValueError(f"unknown district codes {unknown}; known: {sorted(known_districts())} "
                         f"(include/reference/districts.csv)")
    return tuple(known_districts()[c] for c in codes)


@cache
def division_rows(codes: tuple[str, ...] | None = None) -> tuple[dict, ...]:
    """Every town/village row of the districts, each with ``district_code`` and ``district``."""
    rows, district_of = [], {}
    for district in deployment_districts(codes):
        with (REFERENCE_DIR / district.divisions_file).open(encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if district_of.setdefault(row["town"], district.code) != district.code:
                    raise ValueError(f"town {row['town']} is in districts {district_of[row['town']]} and "
                                     f"{district.code}; town names must be unique in a deployment")
                rows.append({**row, "district_code": district.code, "district": district.name})
    return tuple(rows)


def town_districts(codes: tuple[str, ...] | None = None) -> list[dict]:
    """One row per town: town, town_code, district_code, district — in division-code order."""
    seen: dict[str, dict] = {}
    for row in division_rows(codes):
        seen.setdefault(row["town"], {k: row[k] for k in ("town", "town_code", "district_code", "district")})
    return sorted(seen.values(), key=lambda r: r["town_code"])


def towns(codes: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The towns and sub-districts of the deployment, in division-code order."""
    return tuple(r["town"] for r in town_districts(codes))
