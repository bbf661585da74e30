"""The catalogue: what the rules and the departments are, read from the files that hold them.

- a rule's severity, group, title and case-worker explanation: the front matter of its SQL file
  ``sql/rules/<CODE>[_<CODE>]_<slug>.sql`` (a YAML block in ``-- `` comments between ``-- ---`` lines,
  one entry per rule code the file produces);
- the departments (code, short and full Chinese names, order): ``include/departments.yaml``.

Everything else (``RULES``, the work lists' explanations, the generator's rule list, the department
names of receipts, DAGs and findings, ``night.departments`` and so ``night.dept_list``'s order)
derives from these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from crosscheck.settings import INCLUDE_DIR, SQL_DIR

RULES_DIR = SQL_DIR / "rules"
SEVERITIES = ("critical", "high", "medium", "low")
SEVERITY_ZH = {"critical": "严重", "high": "高", "medium": "中", "low": "低"}
# Rule groups in report order: the GX suite expectations/rules/<group>.json and the work-list sheet.
GROUPS = {"identity": "基础信息", "pension": "社保扶贫", "employment": "就业扶贫"}
FRONT = "-- ---"


@dataclass(frozen=True)
class Rule:
    code: str
    severity: str
    group: str  # identity | pension | employment: the GX suite and the work-list sheet
    title: str
    explanation: str = ""  # what the case worker is asked to check (work lists)
    sql_file: Path | None = None


@dataclass(frozen=True)
class Department:
    code: str  # contracts' department and the folder of its files
    short: str  # 民政
    full: str  # 区民政局


def rule_codes(path: Path) -> list[str]:
    """The rule codes a rule file produces, from its name (ID01_ID02_unusable_id.sql → ID01, ID02)."""
    return [part for part in path.stem.split("_") if re.fullmatch(r"[A-Z]{2}\d{2}", part)]


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.sql"))


def front_matter(path: Path) -> dict:
    """The YAML between the first two ``-- ---`` lines of a SQL file ({} without one)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].strip() != FRONT:
        return {}
    try:
        end = next(i for i, line in enumerate(lines[1:], 1) if line.strip() == FRONT)
    except StopIteration:
        raise ValueError(f"{path.name}: front matter not closed by a '{FRONT}' line") from None
    body = "\n".join(line[3:] if line.startswith("-- ") else line.removeprefix("--") for line in lines[1:end])
    data = yaml.safe_load(body) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path.name}: front matter must map rule codes to their attributes")
    return data


def _rule(path: Path, code: str, meta) -> Rule:
    if not isinstance(meta, dict):
        raise ValueError(f"{path.name}: front matter of {code} must be a mapping")
    missing = [k for k in ("severity", "group", "title", "explanation") if not meta.get(k)]
    if missing:
        raise ValueError(f"{path.name}: front matter of {code} lacks {', '.join(missing)}")
    if meta["severity"] not in SEVERITIES:
        raise ValueError(f"{path.name}: {code} has severity {meta['severity']!r}, not one of {SEVERITIES}")
    if meta["group"] not in GROUPS:
        raise ValueError(f"{path.name}: {code} has group {meta['group']!r}, not one of {tuple(GROUPS)}")
    return Rule(code, meta["severity"], meta["group"], str(meta["title"]), str(meta["explanation"]), path)


@cache
def rules() -> dict[str, Rule]:
    """Every rule by code, in report order (group, then code)."""
    found: dict[str, Rule] = {}
    for path in rule_files():
        codes, meta = rule_codes(path), front_matter(path)
        if sorted(codes) != sorted(meta):
            raise ValueError(f"{path.name}: its name says rules {codes}, its front matter {sorted(meta)}")
        for code in codes:
            if code in found:
                raise ValueError(f"rule {code} in both {found[code].sql_file.name} and {path.name}")
            found[code] = _rule(path, code, meta[code])
    order = list(GROUPS)
    return dict(sorted(found.items(), key=lambda item: (order.index(item[1].group), item[0])))


@cache
def departments() -> dict[str, Department]:
    """Every department by code, in the file's order."""
    raw = yaml.safe_load((INCLUDE_DIR / "departments.yaml").read_text(encoding="utf-8"))
    found = {}
    for entry in raw["departments"]:
        dept = Department(str(entry["code"]), str(entry["short"]), str(entry["full"]))
        if dept.code in found:
            raise ValueError(f"departments.yaml: department {dept.code} twice")
        found[dept.code] = dept
    return found


def short_name(code: str) -> str:
    """民政 for civil (the code itself for a department the file does not know)."""
    dept = departments().get(code)
    return dept.short if dept else code


def full_name(code: str) -> str:
    """区民政局 for civil (the code itself for a department the file does not know)."""
    dept = departments().get(code)
    return dept.full if dept else code


RULES: dict[str, Rule] = rules()
DEPARTMENTS: tuple[str, ...] = tuple(departments())
