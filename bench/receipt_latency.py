"""Time one small file's way through a running Airflow: from its pick-up to its receipt.

    .venv/bin/python bench/receipt_latency.py                 # civil's residents file, 5,000 persons, 3 drops
    .venv/bin/python bench/receipt_latency.py --extract deaths --repeat 5

Starts `crosscheck airflow` (LocalExecutor, tests/airflow_stack.py) on a throwaway warehouse of the
embedded PostgreSQL, unpauses the department's ingest DAG and drops one night's file of a generated
district (cached under bench/cache/receipts-<persons>/, one night per drop, so no file is a duplicate)
with its .done marker. The first drop warms the worker up and is not counted. For each counted drop
it prints: picked up → receipt (ingest.files.received_at, written when the stage task takes the file,
to the receipt's modification time), drop → receipt, and the ingest run's tasks. Not a test.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))

from airflow_stack import AirflowStack, wait_for  # noqa: E402

from crosscheck import warehouse as wh  # noqa: E402
from crosscheck.contracts import contracts  # noqa: E402

FIRST_NIGHT = date(2026, 11, 26)


def nights(persons: int, count: int) -> tuple[Path, list[date]]:
    """A generated district and ``count`` consecutive nights of it (each night's files differ)."""
    folder = BENCH / "cache" / f"receipts-{persons}"
    days = [FIRST_NIGHT + timedelta(days=i) for i in range(count)]
    for day in days:
        if not (folder / ("truth.csv" if day == FIRST_NIGHT else f"truth_{day:%Y%m%d}.csv")).exists():
            since = [] if day == FIRST_NIGHT else ["--since", FIRST_NIGHT.isoformat()]
            subprocess.run([sys.executable, "-m", "crosscheck.cli", "generate", "--out", str(folder), "--persons",
                            str(persons), "--seed", "1", "--date", day.isoformat(), *since], check=True,
                           stdout=subprocess.DEVNULL)
    return folder / "landing", days


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=5000)
    parser.add_argument("--extract", default="residents")
    parser.add_argument("--repeat", type=int, default=3, help="counted drops (after one to warm up)")
    args = parser.parse_args()
    department = contracts()[args.extract].department
    source, days = nights(args.persons, args.repeat + 1)
    server = wh.embedded_server().get_uri("postgres")
    database = f"receipts_{int(time.time())}"
    warehouse_url = wh.with_database(server, database)
    wh.open_warehouse(warehouse_url, create=True)
    measured = []
    try:
        with tempfile.TemporaryDirectory(prefix="crosscheck-receipts-") as tmp:
            landing, outbox = Path(tmp) / "landing", Path(tmp) / "outbox"
            (landing / department).mkdir(parents=True)
            env = {"CROSSCHECK_VAR": f"{tmp}/var", "CROSSCHECK_LANDING": str(landing),
                   "CROSSCHECK_OUTBOX": str(outbox), "CROSSCHECK_ARCHIVE": f"{tmp}/archive",
                   "CROSSCHECK_REPORTS": f"{tmp}/reports", "CROSSCHECK_TASK_RETRIES": "0",
                   "CROSSCHECK_INGEST_TRIGGER_POLL_SECONDS": "2"}
            stack = AirflowStack(server, warehouse_url, Path(tmp) / "stack", env)
            stack.env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = "True"  # asset-triggered runs
            with stack:
                stack.airflow("dags", "unpause", f"crosscheck_ingest_{department}")
                wait_for("the landing trigger", lambda: stack.meta.execute(
                    "SELECT count(*) FROM trigger WHERE classpath = 'crosscheck.triggers.LandingReadyTrigger' "
                    "AND triggerer_id IS NOT NULL").fetchone()[0] >= 1, 180)
                for i, day in enumerate(days):
                    name = next(p for p in (source / department).glob(f"{args.extract}_{day:%Y%m%d}.*")
                                if p.suffix != ".done").name
                    shutil.copy(source / department / name, landing / department / name)
                    (landing / department / f"{name}.done").touch()
                    dropped = time.time()
                    receipt = wait_for("the receipt", lambda n=name: next(
                        (p for p in (outbox / department).glob("*.html") if n.split(".")[0] in p.name), None)
                        if (outbox / department).is_dir() else None, 600, every=0.2)
                    with wh.Warehouse(warehouse_url).connect() as conn:
                        received, status = conn.execute(
                            "SELECT extract(epoch FROM received_at), status FROM ingest.files "
                            "WHERE file_name = %s ORDER BY file_id DESC LIMIT 1", (name,)).fetchone()
                    written = receipt.stat().st_mtime
                    wait_for("the ingest run to finish", lambda: not stack.meta.execute(
                        "SELECT 1 FROM dag_run WHERE state IN ('queued', 'running')").fetchone(), 300, every=0.5)
                    tasks = stack.meta.execute(
                        "SELECT task_id, round(extract(epoch FROM ti.end_date - ti.start_date)::numeric, 1) "
                        "FROM task_instance ti JOIN dag_run r USING (dag_id, run_id) "
                        "WHERE r.id = (SELECT max(id) FROM dag_run) ORDER BY ti.start_date").fetchall()
                    label = "warm-up" if i == 0 else f"drop {i}"
                    print(f"{label:8s} {name} ({status}): picked up → receipt {written - float(received):5.1f} s, "
                          f"drop → receipt {written - dropped:5.1f} s; tasks "
                          + ", ".join(f"{t} {s}s" for t, s in tasks), flush=True)
                    if i:
                        measured.append((written - float(received), written - dropped))
    finally:
        wh.drop_database(server, database)
        wh.stop_embedded_server()
    picked = [m[0] for m in measured]
    print(f"{args.extract}, {args.persons} persons: picked up → receipt median {statistics.median(picked):.1f} s "
          f"({', '.join(f'{s:.1f}' for s in picked)}); drop → receipt median "
          f"{statistics.median([m[1] for m in measured]):.1f} s")


if __name__ == "__main__":
    main()
