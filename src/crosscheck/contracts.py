"""Department contracts: what each extract must contain, read from include/contracts/*.yaml.

A contract is data: adding a header alias or a value to an enum is an edit of the YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import yaml

from crosscheck.catalogue import departments
from crosscheck.settings import INCLUDE_DIR

# Value types a contract column may have; the normaliser has one function per type.
COLUMN_TYPES = ("id_number", "name", "text", "enum", "date", "month", "amount", "year", "yesno")


@dataclass(frozen=True)
class Column:
    name: str  # canonical snake_case name used in the warehouse
    header: str  # the header in the contract (Chinese)
    type: str
    aliases: tuple[str, ...] = ()
    required: bool = False
    values: tuple[str, ...] = ()  # allowed values of an enum
    min: float | None = None

    @property
    def headers(self) -> tuple[str, ...]:
        return (self.header, *self.aliases)


@dataclass(frozen=True)
class Contract:
    extract: str
    department: str
    title: str
    kind: str  # "snapshot" (full registry) or "transactions"
    key: tuple[str, ...]
    columns: tuple[Column, ...]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _load(path) -> Contract:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    columns = []
    for c in raw["columns"]:
        if c["type"] not in COLUMN_TYPES:
            raise ValueError(f"{path.name}: column {c['name']} has unknown type {c['type']}")
        columns.append(
            Column(
                name=c["name"],
                header=c["header"],
                type=c["type"],
                aliases=tuple(c.get("aliases", ())),
                required=bool(c.get("required", False)),
                values=tuple(str(v) for v in c.get("values", ())),
                min=c.get("min"),
            )
        )
    contract = Contract(
        extract=raw["extract"],
        department=raw["department"],
        title=raw["title"],
        kind=raw["kind"],
        key=tuple(raw["key"]),
        columns=tuple(columns),
    )
    if path.stem != contract.extract:
        raise ValueError(f"{path.name}: file name must be the extract name {contract.extract}")
    return contract


@cache
def contracts() -> dict[str, Contract]:
    """All contracts by extract name, in a stable order (department, then file name)."""
    loaded = [_load(p) for p in sorted((INCLUDE_DIR / "contracts").glob("*.yaml"))]
    known = departments()
    for c in loaded:
        if c.department not in known:
            raise ValueError(f"{c.extract}.yaml: department {c.department!r} is not in include/departments.yaml")
    loaded.sort(key=lambda c: (c.department, c.extract))
    return {c.extract: c for c in loaded}


def by_department(department: str) -> list[Contract]:
    return [c for c in contracts().values() if c.department == department]
