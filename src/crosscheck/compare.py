"""The night's comparison (数据比对) in three steps: set-up, every partition, findings and indicators.

``prepare_compare`` (set-up, returns the partitions) → ``compare_partition`` (each, on any worker) →
``finish_compare`` (findings' life, indicators, GX checks); ``mart.runs`` records each night's state.
They are run, under the night lock, by the night's steps of ``crosscheck.pipeline`` (in one process
or as the nightly DAG's tasks). The work itself lives by concern:

- ``crosscheck.catalogue``: the rules (sql/rules front matter) and the departments;
- ``crosscheck.night``: the night's set-up and each partition's rules and indicator sums
  (``crosscheck.partitions``: what a partition is);
- ``crosscheck.findings``: the findings' life, the indicators, GX's rule checks;
- ``crosscheck.outputs``: mismatches.csv, kpis.csv and the work lists' layout.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date

from crosscheck.catalogue import RULES, SEVERITIES
from crosscheck.findings import (
    STATUSES,
    compute_indicators,
    materialise_findings,
    merge_findings,
    run_rule_suites,
    store_rule_checks,
)
from crosscheck.history import prepare_night
from crosscheck.night import evaluate_partition, setup_night, tune
from crosscheck.partitions import Partition, plan_partitions
from crosscheck.settings import Settings
from crosscheck.timing import Timing, recording
from crosscheck.warehouse import Warehouse

log = logging.getLogger(__name__)


@dataclass
class CompareResult:
    as_of: date
    counts: dict[str, int] = field(default_factory=dict)  # findings found tonight, by rule
    by_severity: dict[str, int] = field(default_factory=dict)
    new: int = 0
    open: int = 0
    resolved: int = 0
    stale: list[str] = field(default_factory=list)  # "财政/payments (2026-11-25, 3 天)"
    gx: dict[str, dict] = field(default_factory=dict)  # rule -> {success, count, agrees}
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    duration: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        sev = ", ".join(f"{s} {self.by_severity.get(s, 0)}" for s in SEVERITIES)
        lines = [f"compare {self.as_of}: {self.total} findings ({sev}); new {self.new}, open {self.open}, "
                 f"resolved {self.resolved}; {self.duration:.1f} s ("
                 + ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items()) + ")"]
        if self.stale:
            lines.append("stale data: " + "; ".join(self.stale))
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def prepare_compare(warehouse: Warehouse, as_of: date, settings: Settings, partition_by: str,
                    timing: Timing | None = None) -> list[dict]:
    """Set up schema ``night`` for D; return its partitions (JSON, each naming the night's set-up)."""
    with warehouse.connect() as conn:
        with _run_status(conn, as_of, start=True, done=False), conn.transaction():
            tune(conn)
            prepare_night(conn, as_of, settings)  # crosscheck.history: the snapshots it reads, its rules
            setup_night(conn, as_of, settings)
            partitions = plan_partitions(conn, partition_by)
            night_id = conn.execute("SELECT night_id FROM night.params").fetchone()[0]
    return [{**p.as_dict(), "night_id": night_id} for p in partitions]


def compare_partition(warehouse: Warehouse, as_of: date, partition: dict, settings: Settings,
                      timing: Timing | None = None) -> dict[str, int]:
    """Once per partition (in any order, on any worker, retried alone): the partition's rule and
    indicator rows. Returns its findings per rule."""
    part = Partition.from_dict(partition)
    with warehouse.connect() as conn:
        with _run_status(conn, as_of, done=False), conn.transaction(), recording(timing or Timing()):
            _check_night(conn, as_of, partition.get("night_id"))
            tune(conn)
            evaluate_partition(conn, part, warehouse, settings.night_connections)
            return dict(conn.execute("SELECT rule_code, count(*) FROM night.finding_parts WHERE partition_key = %s "
                                     "GROUP BY 1 ORDER BY 1", (part.key,)).fetchall())


def finish_compare(warehouse: Warehouse, as_of: date, settings: Settings, gx: bool = True,
                   night_id: str | None = None, timing: Timing | None = None) -> CompareResult:
    """Once every partition is in: gather them, merge the findings' life, indicators, GX checks; run done."""
    started = time.perf_counter()
    result = CompareResult(as_of)
    with warehouse.connect() as conn:
        with _run_status(conn, as_of):
            with conn.transaction():
                _check_night(conn, as_of, night_id)
            _finish(warehouse, conn, as_of, settings, gx, result, timing or Timing())
    result.duration = time.perf_counter() - started
    return result


@contextmanager
def _run_status(conn, as_of: date, start: bool = False, done: bool = True):
    """mart.runs: 'running' first when ``start``, 'failed' when the block raises, 'done' when it ends
    and ``done``."""
    if start:
        with conn.transaction():
            conn.execute(
                "INSERT INTO mart.runs (as_of, status) VALUES (%s, 'running') ON CONFLICT (as_of) DO UPDATE "
                "SET started_at = now(), finished_at = NULL, status = 'running'", (as_of,))
    try:
        yield
    except BaseException:
        conn.rollback()
        with conn.transaction():
            conn.execute("UPDATE mart.runs SET status = 'failed', finished_at = now() WHERE as_of = %s", (as_of,))
        raise
    if done:
        with conn.transaction():
            conn.execute("INSERT INTO mart.runs (as_of, status, finished_at) VALUES (%s, 'done', now()) "
                         "ON CONFLICT (as_of) DO UPDATE SET status = 'done', finished_at = now()", (as_of,))


def _check_night(conn, as_of: date, night_id: str | None) -> None:
    """Schema ``night`` is shared: refuse when a set-up ran since the one this step belongs to."""
    row = conn.execute("SELECT as_of, night_id FROM night.params").fetchone()
    if row is None or row[0] != as_of or (night_id and row[1] != night_id):
        raise RuntimeError(f"schema night was set up again since this night's set-up ({row[0] if row else 'none'}):"
                           f" rerun the night from its set-up step")


def _finish(warehouse: Warehouse, conn, as_of: date, settings: Settings, gx: bool, result: CompareResult,
            timing: Timing) -> None:
    freshness = [dict(zip(("department", "dept_zh", "extract", "data_as_of", "age_days", "stale"), r, strict=True))
                 for r in conn.execute("SELECT department, dept_zh, extract, data_as_of, age_days, stale "
                                       "FROM night.extracts ORDER BY department, extract").fetchall()]
    conn.commit()
    result.stale = [f"{r['dept_zh']}/{r['extract']} ("
                    + (f"{r['data_as_of']}, {r['age_days']} 天" if r["data_as_of"] else "从未报送") + ")"
                    for r in freshness if r["stale"]]

    t = time.perf_counter()
    with conn.transaction():
        tune(conn)
        materialise_findings(conn)
        merge_findings(conn, as_of)
        counts = dict(conn.execute("SELECT rule_code, count(*) FROM night.findings GROUP BY 1 ORDER BY 1").fetchall())
        result.counts = {code: counts.get(code, 0) for code in RULES}
        severity = dict(conn.execute("SELECT severity, count(*) FROM night.findings GROUP BY 1").fetchall())
        result.by_severity = {s: severity.get(s, 0) for s in SEVERITIES}
        statuses = dict(conn.execute("SELECT status, count(*) FROM mart.finding_nights WHERE as_of = %s GROUP BY 1",
                                     (as_of,)).fetchall())
        result.new, result.open, result.resolved = (statuses.get(s, 0) for s in STATUSES)
    result.seconds["merge"] = time.perf_counter() - t

    t = time.perf_counter()
    with conn.transaction(), timing.stage("indicators"):
        compute_indicators(conn, as_of, freshness)
    result.seconds["indicators"] = time.perf_counter() - t

    t = time.perf_counter()
    checks = None
    if gx:
        try:
            checks = run_rule_suites(warehouse, as_of, settings)
        except Exception as exc:  # the findings stand without the cross-check; say so
            result.warnings.append(f"GX rule suites failed: {str(exc).splitlines()[0]}")
            log.exception("GX rule suites failed")
    with conn.transaction():
        result.warnings += store_rule_checks(conn, as_of, result.counts, checks)
    result.gx = {code: {**c, "agrees": c["count"] == result.counts.get(code, 0)} for code, c in (checks or {}).items()}
    result.seconds["gx"] = time.perf_counter() - t
