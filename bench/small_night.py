"""Time a small night (the demo's size) as a user sees it: `crosscheck run`, from the command to its exit.

    .venv/bin/python bench/small_night.py                         # 5,000 persons, three runs, both set-ups
    .venv/bin/python bench/small_night.py --setups installed --repeat 5
    .venv/bin/python bench/small_night.py --baseline /tmp/main   # before/after, runs alternating

The district is generated once and cached under bench/cache/small-<persons>/ (seed 1, as of
2026-11-28, as `crosscheck demo`). Each run is a fresh `crosscheck run` process with a var folder of
its own, so nothing carries over but the operating system's file cache:

  fresh       an empty var folder: the embedded PostgreSQL is initialised too (the first night of a
              new installation, as `make demo` on a fresh clone)
  installed   a copy of a var folder whose warehouse was created and migrated beforehand, server
              stopped (every later night: the server starts, the files of the night are new to it)

Prints each run's seconds to its last output and to its exit, the medians, and the sha256 of mismatches.csv and kpis.csv: a speed-up
must not change them (all runs must print the same). Not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
CROSSCHECK = [sys.executable, "-m", "crosscheck.cli"]
AS_OF = "2026-11-28"
SEED = 1
OUTPUTS = ("mismatches.csv", "kpis.csv")


def district(persons: int) -> Path:
    folder = BENCH / "cache" / f"small-{persons}"
    if not (folder / "truth.csv").exists():
        subprocess.run([*CROSSCHECK, "generate", "--out", str(folder), "--persons", str(persons), "--seed", str(SEED),
                        "--date", AS_OF], check=True, stdout=subprocess.DEVNULL)
    return folder


def environment(var: Path, checkout: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROSSCHECK_")}
    if checkout:  # another checkout's code (and its sql/, include/, expectations/) with this venv
        env["PYTHONPATH"] = str(checkout / "src")
    # Generated files without a .done marker would wait out the quiet period (60 s) after generation.
    return {**env, "CROSSCHECK_VAR": str(var), "CROSSCHECK_QUIET_PERIOD_SECONDS": "0"}


def installed_template(work: Path) -> Path:
    """A var folder with the embedded warehouse created and migrated, its server stopped (on exit)."""
    template = work / "template"
    subprocess.run([*CROSSCHECK, "warehouse", "create"], env=environment(template), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return template


def checksums(out_dir: Path) -> str:
    return " ".join(f"{name} {hashlib.sha256((out_dir / name).read_bytes()).hexdigest()[:16]}" for name in OUTPUTS)


def one_night(landing: Path, var: Path, checkout: Path | None = None) -> tuple[float, float, float, str]:
    """Seconds to the last line the command prints (stdout or stderr), seconds to its exit (after
    which the embedded server has stopped, if this process started it), CPU seconds of the process
    (not of PostgreSQL: a steadier figure on a shared machine) and the outputs' checksums."""
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen([*CROSSCHECK, "run", "--landing", str(landing), "--date", AS_OF],
                               env=environment(var, checkout), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last_line, lines = started, []

    def follow(stream):
        nonlocal last_line
        for line in stream:
            last_line = time.perf_counter()
            lines.append(line)

    readers = [threading.Thread(target=follow, args=(s,)) for s in (process.stdout, process.stderr)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    returncode = process.wait()
    exited = time.perf_counter() - started
    if returncode != 0:
        raise SystemExit("crosscheck run failed:\n" + "".join(lines)[-3000:])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    return last_line - started, exited, cpu_seconds, checksums(var / "reports" / AS_OF)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--setups", nargs="+", default=["fresh", "installed"], choices=["fresh", "installed"])
    parser.add_argument("--baseline", type=Path, help="another checkout (e.g. `git archive` of main): its runs "
                        "alternate with this one's, so both see the same load of a shared machine")
    args = parser.parse_args()
    landing = district(args.persons) / "landing"
    versions = {"this": None, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    with tempfile.TemporaryDirectory(prefix="crosscheck-small-night-") as tmp:
        work = Path(tmp)
        template = installed_template(work) if "installed" in args.setups else None
        for setup in args.setups:
            runs = {version: [] for version in versions}
            for i in range(args.repeat):
                for version, checkout in versions.items():
                    var = work / f"{setup}-{version}-{i}"
                    if setup == "installed":
                        # cp -a: the server's files keep their owner (the wheel's system user when run as root)
                        subprocess.run(["cp", "-a", str(template), str(var)], check=True)
                    wall, exited, cpu, digest = one_night(landing, var, checkout)
                    runs[version].append((wall, exited, cpu, digest))
                    print(f"{setup:9s} {version:8s} run {i + 1}: last output {wall:5.1f} s, exit {exited:5.1f} s, "
                          f"CPU {cpu:5.1f} s  {digest}", flush=True)
                    shutil.rmtree(var, ignore_errors=True)
            for version, measured in runs.items():
                walls, exits, cpus = ([m[k] for m in measured] for k in range(3))
                print(f"{setup:9s} {version:8s} {args.persons} persons: last output median "
                      f"{statistics.median(walls):.1f} s ({', '.join(f'{s:.1f}' for s in walls)}); exit median "
                      f"{statistics.median(exits):.1f} s; CPU median {statistics.median(cpus):.1f} s")
            if len({m[3] for measured in runs.values() for m in measured}) > 1:
                print("OUTPUTS DIFFER between runs")


if __name__ == "__main__":
    main()
