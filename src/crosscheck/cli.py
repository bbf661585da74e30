"""The ``crosscheck`` command (interface.md): generate, run, demo, and warehouse housekeeping."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import date, datetime
from pathlib import Path

log = logging.getLogger("crosscheck")


def _date(text: str) -> date:
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def cmd_generate(args) -> int:
    from crosscheck.generate import generate

    started = time.perf_counter()
    summary = generate(Path(args.out), persons=args.persons, seed=args.seed, as_of=args.date)
    print(summary.describe() if hasattr(summary, "describe") else summary)
    print(f"generated {args.persons} persons in {time.perf_counter() - started:.1f} s → {args.out}")
    return 0


def cmd_run(args) -> int:
    from crosscheck.pipeline import run_night

    result = run_night(
        landing=Path(args.landing), as_of=args.date, warehouse_url=args.warehouse,
        out_dir=Path(args.out) if args.out else None,
    )
    print(result.describe())
    return 0


def cmd_demo(args) -> int:
    from crosscheck.generate import generate
    from crosscheck.pipeline import run_night
    from crosscheck.settings import get_settings

    settings = get_settings()
    demo_dir = settings.var_dir / "demo"
    as_of = args.date
    print(f"1/2 generating a district of {args.persons} persons in {demo_dir} …")
    generate(demo_dir, persons=args.persons, seed=args.seed, as_of=as_of)
    print("2/2 running the night (pick-up, validation, load, comparison, reports) …")
    result = run_night(landing=demo_dir / "landing", as_of=as_of, warehouse_url=args.warehouse)
    print(result.describe())
    return 0


def cmd_warehouse(args) -> int:
    from crosscheck import warehouse as wh

    w = wh.open_warehouse(args.warehouse)
    print(wh.redact(w.url))
    if args.action == "psql":
        import os

        os.execvp("psql", ["psql", w.url])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crosscheck", description="社保扶贫数据比对 — nightly cross-department checks")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="write a synthetic district's drop folder and truth.csv")
    p.add_argument("--out", required=True)
    p.add_argument("--persons", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--date", type=_date, default=date.today())
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("run", help="run the whole night in-process")
    p.add_argument("--landing", required=True)
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--warehouse", help="PostgreSQL URL (default: embedded server under var/)")
    p.add_argument("--out", help="report folder (default var/reports/<date>/)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="generate a small district and run the night")
    p.add_argument("--persons", type=int, default=5_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--date", type=_date, default=date(2026, 11, 28))
    p.add_argument("--warehouse", help="PostgreSQL URL (default: embedded server under var/)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("warehouse", help="start/migrate the warehouse and print its URL")
    p.add_argument("action", choices=["url", "psql"], nargs="?", default="url")
    p.add_argument("--warehouse", help="PostgreSQL URL (default: embedded server under var/)")
    p.set_defaults(func=cmd_warehouse)
    return parser


def main(argv: list[str] | None = None) -> int:
    from crosscheck.pipeline import RunFailed

    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except RunFailed as exc:
        print(f"crosscheck: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
