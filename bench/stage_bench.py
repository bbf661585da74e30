"""The staging of each extract alone (read + normalise + COPY into staging): CPU seconds per file.

    .venv/bin/python bench/stage_bench.py bench/cache/100000/landing [--profile out.txt] [--rounds 3]

Calls ``ingest.stage_drop`` for every ready drop of the landing folder, one after the other in this
thread (no validation, no load, no GX), against a throwaway database on the embedded PostgreSQL.
Prints, per file: this process's CPU seconds (user + system), the embedded server's CPU seconds
(its backends do the COPY and the ANALYZE) and the wall seconds. With --rounds N the whole landing
folder is staged N times (a fresh database each time) and the medians are printed. With --profile,
pyinstrument's call tree of all the staging is written to that file.

The staging runs in a background thread during a night (pipeline.ingest_departments); its CPU time
is what it takes from the interpreter lock and the two cores, so CPU seconds are the figure to
compare, in alternating runs against the code before a change.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path


def _server_cpu(postmaster_pid: int) -> float:
    """CPU seconds of the embedded server's processes: the postmaster and its children, with the children
    that ended (a closed connection's backend counts in the postmaster's children times once reaped).
    Background processes (checkpointer, autovacuum) are in it too: run nothing else on that server."""
    import psutil

    total = 0.0
    try:
        parent = psutil.Process(postmaster_pid)
        for proc in [parent, *parent.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


def stage_round(landing: Path, as_of: date, server: str, postmaster_pid: int, profiler=None,
                only: str | None = None) -> dict[str, dict]:
    from crosscheck import warehouse as wh
    from crosscheck.ingest import stage_drop
    from crosscheck.pickup import scan
    from crosscheck.settings import get_settings

    settings = dataclasses.replace(get_settings(), archive_dir=Path(tempfile.mkdtemp(prefix="crosscheck-stage-")))
    database = f"stage_{uuid.uuid4().hex[:8]}"
    warehouse = wh.open_warehouse(wh.with_database(server, database), create=True)
    results = {}
    try:
        drops = [d for d in scan(landing, settings, night=as_of)
                 if d.state == "ready" and (only is None or only in d.name)]
        for drop in drops:
            cpu, server_cpu, wall = time.process_time(), _server_cpu(postmaster_pid), time.perf_counter()
            if profiler is not None:
                profiler.start()
            outcome = stage_drop(warehouse, drop, settings)
            if profiler is not None:
                profiler.stop()
            results[f"{drop.department}/{drop.name}"] = {
                "cpu": time.process_time() - cpu,
                "server_cpu": _server_cpu(postmaster_pid) - server_cpu,
                "wall": time.perf_counter() - wall,
                "status": outcome.status, "received": outcome.rows_received,
                "quarantined": outcome.rows_quarantined,
            }
    finally:
        shutil.rmtree(settings.archive_dir, ignore_errors=True)
        wh.drop_database(server, database)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("landing", type=Path)
    parser.add_argument("--date", default="2026-11-28")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", help="stage only the files whose name contains this")
    parser.add_argument("--profile", type=Path, help="write pyinstrument's call tree (text) here")
    parser.add_argument("--cpu-profile", type=Path,
                        help="write cProfile's statistics, timed in CPU seconds (a loaded machine's waits excluded)")
    args = parser.parse_args()
    os.environ.setdefault("CROSSCHECK_QUIET_PERIOD_SECONDS", "0")
    # A night imports these before or while its first file is read (pipeline.import_ahead; GX imports
    # pandas, which pyarrow looks up on its first conversion): not the staging's cost.
    import openpyxl  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.csv  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    from crosscheck import warehouse as wh

    server_handle = wh.embedded_server()
    server = server_handle.get_uri("postgres")
    import psycopg

    with psycopg.connect(server) as conn:
        data_dir = conn.execute("SHOW data_directory").fetchone()[0]
    postmaster_pid = int(Path(data_dir, "postmaster.pid").read_text().split()[0])
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.005)
    elif args.cpu_profile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)
        profiler.start = profiler.enable
        profiler.stop = profiler.disable
    rounds = [stage_round(args.landing, date.fromisoformat(args.date), server, postmaster_pid, profiler,
                          args.only)
              for _ in range(args.rounds)]
    print(f"{'file':<48} {'rows':>9} {'quar.':>6} {'cpu s':>7} {'server s':>8} {'wall s':>7}")
    total = {"cpu": 0.0, "server_cpu": 0.0, "wall": 0.0}
    for name, first in rounds[0].items():
        med = {k: statistics.median(r[name][k] for r in rounds) for k in total}
        for k in total:
            total[k] += med[k]
        print(f"{name:<48} {first['received']:>9} {first['quarantined']:>6} {med['cpu']:>7.2f} "
              f"{med['server_cpu']:>8.2f} {med['wall']:>7.2f}  {first['status']}")
    print(f"{'total (medians of ' + str(args.rounds) + ')':<65} {total['cpu']:>7.2f} {total['server_cpu']:>8.2f} "
          f"{total['wall']:>7.2f}")
    if args.cpu_profile:
        profiler.dump_stats(args.cpu_profile)
        print("cpu profile:", args.cpu_profile)
    elif profiler is not None:
        args.profile.parent.mkdir(parents=True, exist_ok=True)
        args.profile.write_text(profiler.output_text(unicode=False, color=False, show_all=False), encoding="utf-8")
        print("profile:", args.profile)


if __name__ == "__main__":
    main()
