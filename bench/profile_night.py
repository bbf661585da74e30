"""Profile one night with pyinstrument: where does `crosscheck run` spend its time?

    .venv/bin/python bench/profile_night.py bench/cache/1000000/landing [--out profile.txt]

Runs the night against a throwaway database on the embedded PostgreSQL, prints the stage timings
and writes pyinstrument's call tree (text) to --out (default bench/results/profile-<persons>.txt).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from datetime import date
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("landing", type=Path)
    parser.add_argument("--date", default="2026-11-28")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ["CROSSCHECK_VAR"] = tempfile.mkdtemp(prefix="crosscheck-profile-")
    os.environ["CROSSCHECK_QUIET_PERIOD_SECONDS"] = "0"
    from pyinstrument import Profiler

    from crosscheck import warehouse as wh
    from crosscheck.pipeline import run_night
    from crosscheck.settings import get_settings

    server = wh.embedded_server().get_uri("postgres")
    database = f"profile_{uuid.uuid4().hex[:8]}"
    url = wh.with_database(server, database)
    wh.open_warehouse(url, create=True)
    profiler = Profiler(interval=0.01)
    try:
        profiler.start()
        result = run_night(args.landing, date.fromisoformat(args.date), url, None, get_settings())
        profiler.stop()
    finally:
        wh.drop_database(server, database)
    out = args.out or Path(__file__).parent / "results" / f"profile-{args.landing.parent.name}.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text(profiler.output_text(unicode=False, color=False), encoding="utf-8")
    print("stages (s):", result.timing.snapshot())
    print("profile:", out)


if __name__ == "__main__":
    main()
