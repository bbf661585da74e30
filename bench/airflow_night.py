"""Time the nightly DAG on a loaded warehouse: LocalExecutor vs CeleryExecutor with N workers.

    .venv/bin/python bench/airflow_night.py --warehouse postgresql://postgres@127.0.0.1:5432/bench1m \\
        --date 2026-11-28 --executors local celery --partitions district town

The warehouse must already hold the night's extracts (e.g. from ``crosscheck run`` or
``run_bench.py``); each run triggers the nightly DAG (prepare → partitions → compare → publish,
work lists per partition) in a fresh Airflow deployment (tests/airflow_stack.py: metadata in a
throwaway database on the warehouse's server, Redis at --broker for Celery). Prints the DAG run's
wall time and where it went, and writes bench/results/airflow-<timestamp>.json. Not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from airflow_stack import AirflowStack  # noqa: E402

from crosscheck import warehouse as wh  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", required=True, help="URL of a warehouse holding the night's extracts")
    parser.add_argument("--date", required=True)
    parser.add_argument("--districts", default="500151")
    parser.add_argument("--executors", nargs="+", default=["local", "celery"], choices=["local", "celery"])
    parser.add_argument("--partitions", nargs="+", default=["district"], choices=["none", "district", "town"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()

    server = wh.with_database(args.warehouse, "postgres")
    results = []
    for executor in args.executors:
        for partitions in args.partitions:
            with tempfile.TemporaryDirectory(prefix="crosscheck-airflow-bench-") as tmp:
                env = {"CROSSCHECK_VAR": f"{tmp}/var", "CROSSCHECK_LANDING": f"{tmp}/landing",
                       "CROSSCHECK_DISTRICTS": args.districts, "CROSSCHECK_NIGHT_PARTITIONS": partitions,
                       "CROSSCHECK_TASK_RETRIES": "0"}
                workers = args.workers if executor == "celery" else 0
                started = time.perf_counter()
                with AirflowStack(server, args.warehouse, Path(tmp) / "stack", env, workers=workers,
                                  broker=args.broker, concurrency=1) as stack:
                    ready = time.perf_counter() - started
                    run = stack.run_nightly(args.date, f"bench_{executor}_{partitions}", timeout=3600)
            by_task: dict[str, float] = defaultdict(float)
            for ti in run["tis"]:
                by_task[ti["task_id"]] += float(ti["seconds"] or 0)
            hosts = sorted({ti["hostname"] for ti in run["tis"] if ti["hostname"]})
            row = {"executor": executor, "workers": workers, "partitions": partitions, "state": run["state"],
                   "night_seconds": round(run["seconds"], 1), "stack_ready_seconds": round(ready, 1),
                   "task_seconds": {k: round(v, 1) for k, v in by_task.items()},
                   "mapped": sum(1 for ti in run["tis"] if ti["map_index"] >= 0), "hosts": hosts}
            results.append(row)
            print(f"{executor:7s} workers {workers}  partitions {partitions:8s} {run['state']:8s} "
                  f"night {row['night_seconds']:7.1f} s  (tasks: "
                  + ", ".join(f"{k} {v}" for k, v in row["task_seconds"].items()) + f"; hosts {hosts})", flush=True)
    out = HERE / "results" / f"airflow-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"warehouse": wh.redact(args.warehouse), "date": args.date,
                               "districts": args.districts, "runs": results}, ensure_ascii=False, indent=1))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
