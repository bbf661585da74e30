"""Time the night's comparison stage alone (pipeline.compare_night: set-up, rules, findings, GX checks)
on a warehouse that already holds a night, e.g. one loaded once with

    CROSSCHECK_VAR=/tmp/cmp-var crosscheck run --landing bench/cache/1000000/landing --date 2026-11-28 --out /tmp/cmp-out
    CROSSCHECK_VAR=/tmp/cmp-var .venv/bin/python bench/compare_stage.py --statements --publish /tmp/cmp-pub

Prints the wall time and the CPU seconds of this process and of the embedded PostgreSQL server (all its
processes, parallel workers included: on a shared machine CPU seconds move far less than wall time),
with ``--statements`` each statement of the set-up and the rules that takes longer than ``--min-seconds``,
and with ``--publish`` the sha256 of mismatches.csv and kpis.csv (a speed-up must leave them unchanged).
For a before/after pair, run the older code's copy the same way (``PYTHONPATH=<copy>/src
CROSSCHECK_HOME=<copy>``), alternating.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from datetime import date
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _times(pid: int) -> tuple[int, list[int]]:
    """(parent pid, [utime, stime, cutime, cstime]) of a process, in clock ticks."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), [int(x) for x in fields[11:15]]


def server_cpu(pgdata: Path) -> float:
    """CPU seconds of a PostgreSQL server so far: the postmaster with its ended children, and the live ones."""
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    ticks = sum(_times(postmaster)[1])
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent, times = _times(int(entry))
            except OSError:
                continue  # ended meanwhile
            if parent == postmaster:
                ticks += times[0] + times[1]
    return ticks / TICK


def time_statements(pgdata: Path, min_seconds: float) -> None:
    """Print every statement run through psycopg that takes at least ``min_seconds`` (a file of several
    statements, as sql/night/*.sql, is run and timed one statement at a time)."""
    import psycopg

    execute = psycopg.Connection.execute

    def timed(conn, query, params=None, **kwargs):
        if isinstance(query, str) and query.count(";\n") > 1 and "CREATE TABLE night.params" not in query:
            statements = [s for s in query.split(";\n")
                          if any(line.strip() and not line.strip().startswith("--") for line in s.splitlines())]
            for statement in statements:
                cursor = timed(conn, statement, params, **kwargs)
            return cursor
        cpu, started = server_cpu(pgdata), time.perf_counter()
        try:
            return execute(conn, query, params, **kwargs)
        finally:
            seconds = time.perf_counter() - started
            if seconds >= min_seconds:
                text = query if isinstance(query, str) else query.as_string(conn)
                text = " ".join(" ".join(line for line in text.splitlines() if not line.strip().startswith("--"))
                                .split())
                print(f"  {seconds:7.2f} s  server CPU {server_cpu(pgdata) - cpu:6.2f} s  {text[:110]}", flush=True)

    psycopg.Connection.execute = timed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--date", default="2026-11-28", help="the night (as of) already loaded")
    parser.add_argument("--statements", action="store_true", help="time each statement of the stage")
    parser.add_argument("--min-seconds", type=float, default=0.15)
    parser.add_argument("--no-gx", action="store_true", help="without the GX rule suites")
    parser.add_argument("--publish", type=Path, help="publish the night there and print the outputs' sha256")
    args = parser.parse_args()

    from crosscheck import pipeline
    from crosscheck.settings import get_settings
    from crosscheck.timing import Timing
    from crosscheck.validate import import_gx
    from crosscheck.warehouse import open_warehouse

    settings = get_settings()
    if settings.warehouse_url:
        print("measures the embedded server only (CROSSCHECK_VAR); no warehouse_url", file=sys.stderr)
        return 2
    pgdata = settings.var_dir / "pgdata"
    warehouse = open_warehouse(None)
    import_gx()  # not part of the stage: the night imports GX while it reads its first file
    if args.statements:
        time_statements(pgdata, args.min_seconds)
    as_of = date.fromisoformat(args.date)
    timing = Timing()
    cpu, own, started = server_cpu(pgdata), time.process_time(), time.perf_counter()
    result = pipeline.compare_night(warehouse, as_of, settings, timing, gx=not args.no_gx)
    print(f"compare {time.perf_counter() - started:.2f} s wall; CPU: server {server_cpu(pgdata) - cpu:.2f} s, "
          f"this process {time.process_time() - own:.2f} s")
    print("steps (s):", ", ".join(f"{k} {v:.2f}" for k, v in result.seconds.items()))
    print(result.describe().splitlines()[0])
    if args.publish:
        written = pipeline.publish_night(warehouse, as_of, args.publish, settings, Timing())
        for name in ("mismatches", "kpis"):
            print(f"{name}.csv sha256 {hashlib.sha256(Path(written[name]).read_bytes()).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
