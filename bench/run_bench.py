"""Benchmark a night at district scale: floor vs crosscheck run, per stage, memory, scaling.

    .venv/bin/python bench/run_bench.py --sizes 100000 300000 1000000 --repeat 3
    .venv/bin/python bench/run_bench.py --smoke          # 5,000 persons, one run: checks the script works

Districts are generated once and cached under bench/cache/<persons>/ (seed 7, as of 2026-11-28).
Every measurement runs in a fresh child process against a fresh database on the embedded PostgreSQL
(or --warehouse URL's server), so imports, caches and table contents never carry over. Prints a
table and writes bench/results/<timestamp>.json.

Measured per size (medians over --repeat runs):
  floor        read every landing file into Arrow (pyarrow / openpyxl) and COPY the raw columns into
               PostgreSQL, nothing else — the physical floor of a night (the issue's reference)
  floor_calamine the same with XLSX read by python-calamine, as the night reads a workbook since session 6
               (not in the default modes; `--modes floor floor_calamine run`)
  run          `crosscheck run` end to end, with its stages (pick-up, read+normalise, GX validation,
               load, compare, indicators, report, work lists)
  gx_pandas    the same per-extract GX suites run on pandas DataFrames in memory (the way the GX
               Airflow provider's DataFrame operator works), to show what SQL pushdown buys
  peak RSS of the child process with its own children (the night's helper process) and PSS of the
               PostgreSQL server processes (sampled every 0.2 s)
  sha256 of mismatches.csv and kpis.csv of every run: a speed-up must leave them as they were
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import date, datetime
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
AS_OF = date(2026, 11, 28)
SEED = 7


def district(persons: int) -> Path:
    folder = BENCH / "cache" / str(persons)
    if not (folder / "truth.csv").exists():
        print(f"generating {persons} persons into {folder} …", flush=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "crosscheck.cli", "generate", "--out", str(folder), "--persons",
                        str(persons), "--seed", str(SEED), "--date", AS_OF.isoformat()], check=True,
                       stdout=subprocess.DEVNULL)
        print(f"  generated in {time.perf_counter() - started:.1f} s", flush=True)
    return folder


def _postgres_pss() -> int:
    """Proportional set size of all PostgreSQL processes: shared buffers counted once, not per backend."""
    total = 0
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] and proc.info["name"].startswith("postgres"):
            try:
                total += proc.memory_full_info().pss
            except psutil.Error:
                pass
    return total


def measure(mode: str, landing: Path, server_url: str) -> dict:
    """Run one measurement in a child process; return its JSON report plus peak memory."""
    database = f"bench_{uuid.uuid4().hex[:8]}"
    child = subprocess.Popen([sys.executable, str(BENCH / "child.py"), mode, str(landing), AS_OF.isoformat(),
                              server_url, database], stdout=subprocess.PIPE, text=True)
    peak = {"rss": 0, "postgres_rss": 0}

    def sample():
        proc = psutil.Process(child.pid)
        while child.poll() is None:
            try:  # with its helper process (crosscheck.pipeline.helper_process): the night's memory
                tree = [proc, *proc.children(recursive=True)]
                peak["rss"] = max(peak["rss"], sum(p.memory_info().rss for p in tree))
                peak["postgres_rss"] = max(peak["postgres_rss"], _postgres_pss())
            except psutil.Error:
                pass
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, _ = child.communicate()
    thread.join()
    if child.returncode != 0:
        raise SystemExit(f"{mode} failed with exit code {child.returncode}")
    report = json.loads(out.strip().splitlines()[-1])
    report["peak_rss_mb"] = round(peak["rss"] / 2**20)
    report["peak_postgres_rss_mb"] = round(peak["postgres_rss"] / 2**20)
    return report


def median_report(reports: list[dict]) -> dict:
    result = {}
    for key in reports[0]:
        values = [r[key] for r in reports if isinstance(r.get(key), (int, float))]
        if key == "stages":
            stages = {s for r in reports for s in r["stages"]}
            result[key] = {s: round(statistics.median(r["stages"].get(s, 0) for r in reports), 2) for s in stages}
        elif values:
            result[key] = round(statistics.median(values), 2)
        else:
            result[key] = reports[0][key]
    return result


def fitted_exponent(points: list[tuple[int, float]]) -> float | None:
    """Slope of log(time) over log(size): 1.0 is linear."""
    if len(points) < 2:
        return None
    xs = [math.log(p[0]) for p in points]
    ys = [math.log(p[1]) for p in points]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    return round(sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) /
                 sum((x - mx) ** 2 for x in xs), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=["floor", "run", "gx_pandas"])
    parser.add_argument("--warehouse", help="PostgreSQL server URL (default: the embedded server)")
    parser.add_argument("--smoke", action="store_true", help="5,000 persons, one run of each mode")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.repeat = [5_000], 1
    if args.warehouse:
        server_url = args.warehouse
    else:
        sys.path.insert(0, str(ROOT / "src"))
        from crosscheck import warehouse as wh

        server_url = wh.embedded_server().get_uri("postgres")

    results = {"machine": {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30),
                           "python": sys.version.split()[0]}, "as_of": AS_OF.isoformat(), "sizes": {}}
    for size in args.sizes:
        landing = district(size) / "landing"
        results["sizes"][size] = {}
        for mode in args.modes:
            runs = []
            for i in range(args.repeat):
                report = measure(mode, landing, server_url)
                sums = "".join(f", {name}.csv sha256 {digest}" for name, digest in report.get("sha256", {}).items())
                print(f"  {size:>9,} {mode:<10} run {i + 1}: {report['seconds']:.1f} s, "
                      f"peak {report['peak_rss_mb']} MB (+ PostgreSQL {report['peak_postgres_rss_mb']} MB){sums}",
                      flush=True)
                runs.append(report)
            results["sizes"][size][mode] = median_report(runs)
            if any("sha256" in r for r in runs):
                # every run of a size must write the same results; a speed-up must keep them too
                results["sizes"][size][mode]["sha256"] = distinct = sorted({json.dumps(r["sha256"], sort_keys=True)
                                                                            for r in runs})
                if len(distinct) > 1:
                    print(f"  {size:>9,} {mode}: the runs wrote DIFFERENT results: {distinct}", flush=True)

    print()
    print(f"{'persons':>10} {'floor s':>8} {'run s':>8} {'run/floor':>9} {'floor_calamine s':>16} {'run/it':>7} "
          f"{'GX pushdown s':>14} {'GX pandas s':>12} {'peak RSS MB':>12} {'PG RSS MB':>10}")
    for size, modes in results["sizes"].items():
        floor, run, pandas = modes.get("floor", {}), modes.get("run", {}), modes.get("gx_pandas", {})
        fast = modes.get("floor_calamine", {})
        ratio = run.get("seconds", 0) / floor["seconds"] if floor.get("seconds") else float("nan")
        fast_ratio = run.get("seconds", 0) / fast["seconds"] if fast.get("seconds") else float("nan")
        print(f"{size:>10,} {floor.get('seconds', float('nan')):>8.1f} {run.get('seconds', float('nan')):>8.1f} "
              f"{ratio:>9.2f} {fast.get('seconds', float('nan')):>16.1f} {fast_ratio:>7.2f} "
              f"{run.get('stages', {}).get('validate', float('nan')):>14.1f} "
              f"{pandas.get('seconds', float('nan')):>12.1f} {run.get('peak_rss_mb', 0):>12} "
              f"{run.get('peak_postgres_rss_mb', 0):>10}")
    if any(m.get("run") for m in results["sizes"].values()):
        print("\nstages of `crosscheck run` (s):")
        for size, modes in results["sizes"].items():
            stages = modes.get("run", {}).get("stages", {})
            steps = {k: v for k, v in stages.items() if ":" not in k}
            extracts = {k.split(":", 1)[1]: v for k, v in stages.items() if k.startswith("extract:")}
            print(f"{size:>10,} " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(steps.items(), key=lambda i: -i[1])))
            if extracts:
                print(f"{'':>10} per extract (pick-up to load): "
                      + ", ".join(f"{k} {v:.1f}" for k, v in sorted(extracts.items(), key=lambda i: -i[1])))
    for size, modes in results["sizes"].items():
        for digests in modes.get("run", {}).get("sha256", []):
            print(f"{size:>10,} results sha256: " + ", ".join(f"{k}.csv {v}" for k, v in json.loads(digests).items()))
    points = [(s, m["run"]["seconds"]) for s, m in results["sizes"].items() if "run" in m]
    results["run_time_exponent"] = fitted_exponent(points)
    if results["run_time_exponent"] is not None:
        print(f"\nfitted exponent of run time over persons: {results['run_time_exponent']} (1.0 = linear)")
    out = BENCH / "results" / f"{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=1))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
