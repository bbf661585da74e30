"""Synthetic Tongliang District: the four departments' extract files with planted findings.

    from crosscheck.generate import generate
    summary = generate(Path("out"), persons=100_000, seed=1, as_of=date(2026, 11, 28))
    print(summary)

writes ``out/landing/<dept>/<extract>_<YYYYMMDD>.<csv|xlsx|parquet>`` (+ ``.done`` markers) and
``out/truth.csv`` (every finding planted; the clean rest breaks no rule). Same arguments, same bytes.
"""

from __future__ import annotations

import os
import time as clock
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

from crosscheck.catalogue import RULES
from crosscheck.generate import ledger, nights, people, plant, tables, write
from crosscheck.generate.write import FileInfo

# Every rule the comparison has (sql/rules/ front matter): truth.csv counts each, planted or not.
RULE_CODES = tuple(RULES)


@dataclass
class GenerateSummary:
    out_dir: Path
    persons: int
    seed: int
    as_of: date
    files: list[FileInfo] = field(default_factory=list)
    planted: dict[str, int] = field(default_factory=dict)  # rule code -> truth rows
    truth_path: Path | None = None

    @property
    def total_planted(self) -> int:
        return sum(self.planted.values())

    def describe(self) -> str:
        return str(self)

    def __str__(self) -> str:
        lines = [
            f"generated {self.persons:,} persons (seed {self.seed}, as of {self.as_of}) in {self.out_dir}"
        ]
        for f in self.files:
            lines.append(f"  {f.path:<52} {f.format:<16} {f.rows:>10,} rows {f.bytes / 1e6:>9.1f} MB")
        lines.append(f"  {self.truth_path.name if self.truth_path else 'truth.csv'}: {self.total_planted} planted findings")
        lines.append("  " + "  ".join(f"{k}={v}" for k, v in self.planted.items()))
        return "\n".join(lines)


def _set_drop_times(paths: list[Path], as_of: date) -> None:
    """Files look dropped at 01:00 on the night after their as-of date (Asia/Shanghai): long enough
    ago that pick-up takes them without a .done marker, and the same on every run (an as-of date
    in the future gets an hour ago instead). Only the files just written: an earlier night's files
    in the same landing folder keep their times."""
    dropped = datetime.combine(as_of + timedelta(days=1), time(1, 0), tzinfo=timezone(timedelta(hours=8)))
    stamp = min(dropped.timestamp(), clock.time() - 3600)
    for path in paths:
        if path.is_file():
            os.utime(path, (stamp, stamp))


def generate(out_dir: Path, persons: int, seed: int, as_of: date,
             districts: tuple[str, ...] = ("500151",), since: date | None = None) -> GenerateSummary:
    """``districts``: the region codes whose towns people live in (include/reference/districts.csv).
    ``since``: the district's first night; the district is built as of that date and taken day by
    day to ``as_of`` (nights.py), so the files of ``as_of`` are a later night of the same people."""
    if since is not None:
        nights.check_dates(since, as_of)  # before any work: a clear error
    out_dir = Path(out_dir)
    # built as of the first night; checks the arguments before anything is written
    w = people.World(persons, seed, since or as_of, tuple(districts))
    out_dir.mkdir(parents=True, exist_ok=True)
    people.build_persons(w)
    people.build_poverty(w)
    people.build_ids(w)
    people.build_deaths(w)
    people.build_cases(w)
    plant.plant_facts(w)
    people.build_jobs(w)
    people.build_training(w)
    plant.plant_jobs(w)
    ledger.eligibility(w)
    ledger.build_enrollment(w)
    plant.plant_enrollment(w)
    ledger.build_pension_payments(w)
    ledger.build_finance_payments(w)
    plant.plant_money(w)
    tabs = tables.build_tables(w)
    del w.pen, w.fin  # the tables hold the (sorted) copies
    plant.plant_identity(w, tabs)
    if since is not None:
        nights.advance(w, tabs, as_of)
    summary = GenerateSummary(out_dir, persons, seed, as_of)
    for name in (
        "residents",
        "deaths",
        "assistance",
        "registry",
        "payments",
        "enrollment",
        "pension_payments",
        "jobs",
        "training",
    ):
        summary.files.append(write.write_table(w, tabs[name], out_dir))
        del tabs[name]
    # a later night's truth beside the first night's: both nights' drops share one landing folder
    summary.truth_path = write.write_truth(w, out_dir, "truth.csv" if since is None else f"truth_{as_of:%Y%m%d}.csv")
    written = [out_dir / f.path for f in summary.files]
    _set_drop_times(written + [p.with_name(p.name + ".done") for p in written], as_of)
    counts = Counter(r[0] for r in set(w.truth))
    summary.planted = {code: counts.get(code, 0) for code in RULE_CODES}
    return summary


__all__ = ["generate", "GenerateSummary", "RULE_CODES"]
