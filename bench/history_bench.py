"""A month of nights with history: warehouse and archive size per night, night and compaction times,
replay of an early night after compaction.

    .venv/bin/python bench/history_bench.py --nights 30 --persons 100000 \\
        --server postgresql://postgres@127.0.0.1:5432/postgres

Night 1 is a generated district (``crosscheck generate``); night k its next nights (``generate
--since``: a few changes a day, findings come and go). Each night is generated, run (``crosscheck
run``, timed: the night's wall time), compacted (``crosscheck compact``: old snapshots folded into
history, archive compressed), then the warehouse's size (pg_database_size) and the archive's are
measured. At the end night ``--replay`` is replayed (``crosscheck replay``) and compared byte for
byte with what it published. Prints a table; writes bench/results/history-<timestamp>.json. Not a test.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import psycopg

from crosscheck import warehouse as wh

HERE = Path(__file__).resolve().parent


def crosscheck(*args: str, env: dict) -> str:
    done = subprocess.run([sys.executable, "-m", "crosscheck.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, check=False)
    if done.returncode:
        raise SystemExit(f"crosscheck {' '.join(args[:2])} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def mb(n: int) -> str:
    return f"{n / 1048576:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nights", type=int, default=30)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--first", type=date.fromisoformat, default=date(2026, 11, 2),
                        help="the first night (the nights stay in its year)")
    parser.add_argument("--replay", type=int, default=5, help="the night (1-based) replayed at the end")
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="PostgreSQL server whose throwaway database is the warehouse")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    nights = [args.first + timedelta(days=k) for k in range(args.nights)]
    name = f"history_bench_{os.getpid()}"
    url = wh.with_database(args.server, name)
    wh.open_warehouse(url, create=True)
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="crosscheck-history-bench-") as tmp:
            root = Path(tmp)
            district, var = root / "district", root / "var"
            env = {"CROSSCHECK_VAR": str(var)}
            print(f"{args.nights} nights of {args.persons} persons; warehouse {name}")
            print("night       night_s  compare_s  compact_s  warehouse_MB  core_MB  history_MB  archive_MB")
            for k, night in enumerate(nights, 1):
                since = ("--since", nights[0].isoformat()) if k > 1 else ()
                crosscheck("generate", "--out", str(district), "--persons", str(args.persons), "--seed",
                           str(args.seed), "--date", night.isoformat(), *since, env=env)
                started = time.perf_counter()
                out = crosscheck("run", "--landing", str(district / "landing"), "--date", night.isoformat(),
                                 "--warehouse", url, "--out", str(var / "out" / night.isoformat()), env=env)
                night_s = time.perf_counter() - started
                compare = re.search(r"compare ([\d.]+)s", out)
                started = time.perf_counter()
                crosscheck("compact", "--warehouse", url, env=env)
                compact_s = time.perf_counter() - started
                with psycopg.connect(url) as conn:
                    sizes = conn.execute(
                        "SELECT pg_database_size(current_database()), "
                        " (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n "
                        "  ON n.oid = c.relnamespace WHERE n.nspname = 'core' AND c.relkind = 'r'), "
                        " (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n "
                        "  ON n.oid = c.relnamespace WHERE n.nspname = 'history' AND c.relkind = 'r')").fetchone()
                row = {"night": night.isoformat(), "night_s": round(night_s, 1),
                       "compare_s": float(compare[1]) if compare else None, "compact_s": round(compact_s, 1),
                       "warehouse_bytes": int(sizes[0]), "core_bytes": int(sizes[1]), "history_bytes": int(sizes[2]),
                       "archive_bytes": size_of(var / "archive")}
                rows.append(row)
                print(f"{row['night']}  {night_s:7.1f}  {row['compare_s'] or 0:9.1f}  {compact_s:9.1f}  "
                      f"{mb(sizes[0]):>12}  {mb(sizes[1]):>7}  {mb(sizes[2]):>10}  {mb(row['archive_bytes']):>10}",
                      flush=True)
            replayed = nights[min(args.replay, args.nights) - 1].isoformat()
            started = time.perf_counter()
            crosscheck("replay", "--date", replayed, "--out", str(root / "replay"), "--warehouse", url, env=env)
            replay_s = time.perf_counter() - started
            same = all(filecmp.cmp(root / "replay" / f, var / "out" / replayed / f, shallow=False)
                       for f in ("mismatches.csv", "kpis.csv"))
    finally:
        wh.drop_database(args.server, name)
    first, last = rows[0], rows[-1]
    summary = {
        "persons": args.persons, "nights": args.nights, "rows": rows,
        "warehouse_growth": round(last["warehouse_bytes"] / first["warehouse_bytes"], 2),
        "night_time_change": round(last["night_s"] / first["night_s"] - 1, 3),
        "compact_s_max": max(r["compact_s"] for r in rows), "replayed": replayed, "replay_s": round(replay_s, 1),
        "replay_identical": same,
    }
    print(f"warehouse after night {args.nights} / after night 1: {summary['warehouse_growth']}x; "
          f"night {args.nights} vs night 1: {summary['night_time_change']:+.1%} "
          f"({last['night_s']} s vs {first['night_s']} s); compaction at most {summary['compact_s_max']} s")
    print(f"replay of night {args.replay} ({replayed}) after compaction in {replay_s:.1f} s: "
          f"{'identical' if same else 'DIFFERENT'} to what it published")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    path = results / f"history-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(summary, indent=1))
    print(f"→ {path}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
