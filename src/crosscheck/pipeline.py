"""The night, as steps: what ``crosscheck run`` calls in one process and the Airflow tasks call one by one.

    ingest_departments  pick-up → archive → read/normalise → stage → GX validate → load core → receipts
                        (Airflow: the ingest DAGs' per-file tasks)
    prepare             the returned work lists' verdicts, the night's set-up, its partitions
    evaluate            one partition's rules and indicator sums (any order, any worker)
    finish              findings' life, indicators, GX checks (crosscheck.compare)
    write_worklists     one partition's work lists (Airflow; in one process publish_night writes them all)
    publish_night       mismatches.csv, kpis.csv, report.html, work lists into a fresh set, then switched

``compare_night`` is prepare → evaluate each partition → finish; ``run_night`` is ingest →
compare_night → publish_night. The nightly DAG (``crosscheck.tasks``) runs the same steps as tasks.

One advisory lock, ``night_lock``, keeps nights apart on a warehouse: each step takes it in the mode
it needs (set-up and finish alone; partitions, work lists and publishing side by side, still
excluding every other run). A run holding it already (``run_night``, ``compare_night``) makes the
steps' own taking of it a no-op, so its steps never wait for themselves.
"""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
import signal
import threading
import time
from collections import Counter
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from crosscheck.compare import CompareResult, compare_partition, finish_compare, prepare_compare
from crosscheck.ingest import FileOutcome, load_or_hold, record_rejected_drop, stage_drop
from crosscheck.pickup import scan
from crosscheck.receipts import write_receipt
from crosscheck.settings import DEPARTMENTS, Settings
from crosscheck.timing import Timing
from crosscheck.validate import DataDocsWriter
from crosscheck.warehouse import Warehouse, open_warehouse, redact

log = logging.getLogger(__name__)

NIGHT_LOCK = 0x6E69676874  # advisory lock key: one night run at a time per warehouse
# The night lock this context holds: {warehouse URL: shared?}.
_held: ContextVar[dict[str, bool] | None] = ContextVar("crosscheck_night_lock", default=None)


class RunFailed(Exception):
    """The night could not complete; the message is a one-line reason for the operator."""


_imports_started = threading.Event()


def import_ahead() -> None:
    """Start importing, once per process and in a thread, what every night needs and takes seconds to
    import: GX (validation), then openpyxl (work lists). The imports then fill the time the night waits for
    PostgreSQL (the server's start, the migrations, the first file's read) instead of adding to it. (The
    report's matplotlib is imported where the report is drawn: the helper process of ``crosscheck run``.)"""
    if _imports_started.is_set():
        return
    _imports_started.set()

    def imports():
        from crosscheck.validate import import_gx

        import_gx()
        import openpyxl  # noqa: F401

    threading.Thread(target=imports, name="import-ahead", daemon=True).start()


# ------------------------------------------------------------------------------- the helper process

_helper_lock = threading.Lock()
_helper_pool: ProcessPoolExecutor | None = None


def helper_process() -> ProcessPoolExecutor:
    """The night's second process (``crosscheck run``), started once per process: it reads and stages the
    files (ingest) and draws the report (publishing) while this process validates and loads them, and
    writes the work lists.

    All three are Python, as GX's import and validation are: in one process they take turns on one
    interpreter lock, however many threads. In a process of its own the reading runs on the other core
    while this process imports GX and validates (at 100 k persons reading takes longer than validating:
    the validation then overlaps it whole), and matplotlib is imported and the charts drawn there, not
    here. Spawned, not forked: this process runs threads (the import-ahead one) whose locks a fork would
    copy held. Started first by ``crosscheck run``, its own imports overlap the embedded server's start."""
    global _helper_pool
    with _helper_lock:
        if _helper_pool is None:
            context = multiprocessing.get_context("spawn")
            records = context.Queue()
            logging.handlers.QueueListener(records, _ToOwnLogger()).start()
            _helper_pool = ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_helper_init,
                                               initargs=(records, logging.getLogger().getEffectiveLevel()))
            _helper_pool.submit(_import_for_reading)  # a pool starts its process at the first task
        return _helper_pool


class _ToOwnLogger(logging.Handler):
    """Hands a record of the helper process to this process's logger of the same name (its handlers:
    the terminal, the log file)."""

    def handle(self, record: logging.LogRecord) -> bool:
        logger = logging.getLogger(record.name)
        if record.levelno >= logger.getEffectiveLevel():
            logger.handle(record)
        return True


def _helper_init(records, level: int) -> None:
    """In the helper process: its log records go, redacted, to the parent's handlers; Ctrl-C is for the
    parent to handle (it stops the night, and with it this process)."""
    from crosscheck.masking import RedactingFilter

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    to_parent = logging.handlers.QueueHandler(records)
    to_parent.addFilter(RedactingFilter())  # as the parent's record factory does (masking.install_log_redaction)
    root = logging.getLogger()
    root.handlers[:] = [to_parent]
    root.setLevel(level)


def _import_for_reading() -> None:
    """What reading the first XLSX would otherwise import on the critical path."""
    import openpyxl  # noqa: F401


def _import_for_the_report() -> None:
    """The report's charts' matplotlib (seconds), once the files are read: while they are validated."""
    import matplotlib.pyplot  # noqa: F401


def _stage_timed(warehouse: Warehouse, drop, settings: Settings) -> tuple[FileOutcome, float]:
    """stage_drop, and the seconds it took where it ran (the helper process's clock is not this one's)."""
    started = time.perf_counter()
    outcome = stage_drop(warehouse, drop, settings)
    return outcome, time.perf_counter() - started


def ingest_department(warehouse: Warehouse, department: str, landing: Path, settings: Settings,
                      timing: Timing | None = None) -> list[FileOutcome]:
    """Every file of one department's drop folder (see ingest_departments)."""
    return ingest_departments(warehouse, [department], landing, settings, timing=timing)


def ingest_departments(warehouse: Warehouse, departments, landing: Path, settings: Settings,
                       night: date | None = None, timing: Timing | None = None,
                       helper: ProcessPoolExecutor | None = None, docs: DataDocsWriter | None = None) -> list[FileOutcome]:
    """Every file of the departments' drop folders, each in its own transactions: one bad file never
    stops the others. Infrastructure errors (database down) propagate so the task is retried.

    Reading and normalising the next file overlaps with validating and loading the current one: files
    are staged in order, one at a time, by a background thread — or by ``helper`` (``helper_process``,
    ``crosscheck run``), where the reading does not share this process's interpreter lock with GX — while
    this thread validates, loads and writes receipts in the same order.
    GX runs in this thread only; its Data Docs pages are written before each file is loaded, or by
    ``docs`` in the background (``crosscheck run``: waited for before the night is published). Stage
    timings then overlap, so they add up to more than the wall time.
    """
    from crosscheck.validate import validate_file

    timing = timing or Timing()
    stage = timing.stage
    with stage("pickup"):
        drops = scan(landing, settings, list(departments), night=night)
    ready = [d for d in drops if d.state == "ready"]
    if ready:
        import_ahead()  # GX takes seconds to import: while the first file is read, not after
    pool = helper or ThreadPoolExecutor(max_workers=1, thread_name_prefix="stage")
    futures = {id(d): pool.submit(_stage_timed, warehouse, d, settings) for d in ready}
    outcomes = []
    try:
        for drop in drops:
            if drop.state == "waiting":
                log.info("%s/%s: waiting — %s", drop.department, drop.name, drop.reason)
                continue
            if drop.state == "rejected":
                outcome = record_rejected_drop(warehouse, drop)
            else:
                outcome, seconds = futures[id(drop)].result()
                timing.add(f"extract:{drop.extract}", seconds)  # per extract, for rows/s in the benchmark
                timing.add("read+normalise", seconds)
                if outcome.status == "staged":
                    with stage(f"extract:{drop.extract}"):
                        with stage("validate"):
                            validate_file(warehouse, outcome.file_id, settings.reports_dir / "data_docs", docs)
                        with stage("load"):  # or held: the previous snapshot stays in use
                            outcome = load_or_hold(warehouse, outcome.file_id, settings)
            if outcome is None or outcome.status == "skipped":
                continue
            with stage("receipts"):
                write_receipt(warehouse, outcome.file_id, settings.outbox_dir)
            (log.warning if outcome.status == "held" else log.info)("%s", outcome.summary())
            outcomes.append(outcome)
    finally:
        # On an error, files not yet staged are left for the retry (a half-staged one is cleared then);
        # the one being staged is let finish, so that no staging outlives the call.
        for future in futures.values():
            future.cancel()
        wait_for_futures(futures.values())
        if helper is None:
            pool.shutdown()
    return outcomes


@dataclass
class NightResult:
    as_of: date
    out_dir: Path
    files: list[FileOutcome] = field(default_factory=list)
    compare: object = None
    outputs: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    timing: Timing = field(default_factory=Timing)  # the stages of this run (the benchmark prints them)

    def describe(self) -> str:
        by_status = Counter(f.status for f in self.files)
        lines = [f"night {self.as_of}: files " + (", ".join(f"{k} {v}" for k, v in sorted(by_status.items()))
                                                  or "none new")]
        received = sum(f.rows_received for f in self.files)
        loaded = sum(f.rows_loaded for f in self.files)
        quarantined = sum(f.rows_quarantined for f in self.files)
        lines.append(f"rows received {received}, loaded {loaded}, quarantined {quarantined}")
        if self.compare is not None:
            lines.append(self.compare.describe())
        for name, path in self.outputs.items():
            lines.append(f"{name}: {path}")
        lines.append("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items()))
        return "\n".join(lines)


@contextmanager
def night_lock(warehouse: Warehouse, wait: bool = False, shared: bool = False):
    """Hold the warehouse-wide night lock; refuse (or wait) when another run holds it. Steps that
    rebuild the night hold it alone; ``shared``: steps of one night that may run side by side
    (partitions, work lists, publishing) hold it together, still excluding every other run.
    Within a block that holds it already (alone, or shared for a shared step) it is a no-op."""
    held = _held.get() or {}
    if warehouse.url in held and (shared or not held[warehouse.url]):
        yield
        return
    mode = "_shared" if shared else ""
    with warehouse.connect(autocommit=True) as conn:
        if wait:
            conn.execute(f"SELECT pg_advisory_lock{mode}(%s)", (NIGHT_LOCK,))
        elif not conn.execute(f"SELECT pg_try_advisory_lock{mode}(%s)", (NIGHT_LOCK,)).fetchone()[0]:
            raise RunFailed("another crosscheck run is in progress on this warehouse; try again when it ends")
        token = _held.set({**held, warehouse.url: shared})
        try:
            yield
        finally:
            _held.reset(token)
            conn.execute(f"SELECT pg_advisory_unlock{mode}(%s)", (NIGHT_LOCK,))


# --------------------------------------------------------------------------------------------
# The night's steps, each under the night lock in its mode
# --------------------------------------------------------------------------------------------


def apply_feedback_folder(warehouse: Warehouse, settings: Settings, timing: Timing | None = None) -> int:
    """Store the verdicts of every work list returned to the feedback folder (crosscheck.feedback:
    checked row by row, a receipt each, a bad file moved aside); return how many were stored."""
    from crosscheck.feedback import apply_feedback_folder as apply_folder

    with (timing or Timing()).stage("feedback"):
        return sum(r.stored for r in apply_folder(warehouse, settings))


def prepare(warehouse: Warehouse, as_of: date, settings: Settings, partition_by: str | None = None,
            timing: Timing | None = None) -> list[dict]:
    """Read the returned work lists, set up the night and plan its partitions (``partition_by``,
    by default the setting ``night_partitions``); return them (JSON, naming the night's set-up)."""
    with night_lock(warehouse):
        verdicts = apply_feedback_folder(warehouse, settings, timing)
        partitions = prepare_compare(warehouse, as_of, settings, partition_by or settings.night_partitions, timing)
    log.info("night %s set up; %d verdicts read from returned work lists; %d partitions: %s", as_of, verdicts,
             len(partitions), ", ".join(p["key"] for p in partitions))
    return partitions


def evaluate(warehouse: Warehouse, as_of: date, partition: dict, settings: Settings,
             timing: Timing | None = None) -> dict[str, int]:
    """One partition's rules and indicator sums; its findings per rule."""
    with night_lock(warehouse, shared=True):
        return compare_partition(warehouse, as_of, partition, settings, timing)


def finish(warehouse: Warehouse, as_of: date, settings: Settings, night_id: str | None = None, gx: bool = True,
           timing: Timing | None = None) -> CompareResult:
    """Findings' life, indicators and GX checks once every partition of the night is in."""
    with night_lock(warehouse):
        return finish_compare(warehouse, as_of, settings, gx=gx, night_id=night_id, timing=timing)


def compare_night(warehouse: Warehouse, as_of: date, settings: Settings, timing: Timing | None = None,
                  gx: bool = True, partition_by: str = "none") -> CompareResult:
    """prepare → evaluate every partition → finish, in this process, holding the night lock throughout
    (one partition, the whole night, unless ``partition_by`` says otherwise)."""
    timing = timing or Timing()
    started = time.perf_counter()
    with night_lock(warehouse), timing.stage("compare"):
        partitions = prepare(warehouse, as_of, settings, partition_by, timing)
        setup = time.perf_counter()
        for partition in partitions:
            evaluate(warehouse, as_of, partition, settings, timing)
        evaluated = time.perf_counter()
        result = finish(warehouse, as_of, settings, partitions[0]["night_id"], gx, timing)
    result.seconds = {"setup": setup - started, "partitions": evaluated - setup, **result.seconds}
    result.duration = time.perf_counter() - started
    log.info("%s", result.describe())
    return result


def write_worklists(warehouse: Warehouse, as_of: date, folder: Path, partition: dict, settings: Settings,
                    timing: Timing | None = None) -> list[Path]:
    """One partition's work lists into the night's publish set ``folder`` (the DAG's mapped task)."""
    from crosscheck.partitions import Partition
    from crosscheck.worklists import write_partition_worklists

    with night_lock(warehouse, shared=True), (timing or Timing()).stage("worklists"):
        return write_partition_worklists(warehouse, as_of, folder, settings, Partition.from_dict(partition))


def publish_night(warehouse: Warehouse, as_of: date, out_dir: Path, settings: Settings,
                  timing: Timing | None = None, worklists: bool = True, into: Path | None = None,
                  helper: ProcessPoolExecutor | None = None) -> dict:
    """Publish the night's files at out_dir whole or not at all (crosscheck.publishing): written into
    a fresh set, then out_dir is switched to it; paths returned as readers reach them, through out_dir.
    ``into``: the night's set made beforehand (the DAG's, holding the partitions' work lists when
    ``worklists`` is off); a retry after its switch leaves the live set alone. ``helper``: the process
    the reports are drawn in meanwhile (``helper_process``)."""
    from crosscheck.publishing import current, publishing, switch, visible

    timing = timing or Timing()
    with night_lock(warehouse, shared=True):  # reads only
        if into is None:
            with publishing(out_dir) as folder:
                written = write_night(warehouse, as_of, folder, settings, timing, worklists=worklists, helper=helper)
        else:
            folder = into
            if current(out_dir) == folder:
                log.info("%s already published", out_dir)
                written = {"mismatches": folder / "mismatches.csv", "kpis": folder / "kpis.csv",
                           "report": folder / "report.html", "worklists": folder / "worklists"}
                if (folder / "districts").is_dir():
                    written["districts"] = folder / "districts"
            else:
                written = write_night(warehouse, as_of, folder, settings, timing, worklists=worklists, helper=helper)
                written.setdefault("worklists", folder / "worklists")  # the partitions' work lists
                switch(out_dir, folder)
    return {name: visible(out_dir, path, folder) for name, path in written.items()}


def write_night(warehouse: Warehouse, as_of: date, out_dir: Path, settings: Settings, timing: Timing,
                worklists: bool = True, helper: ProcessPoolExecutor | None = None) -> dict:
    """Write the files interface.md promises for the night into out_dir; for a deployment of several
    districts, each district's mismatches.csv, kpis.csv and report.html into districts/<code>/ too.
    With a ``helper`` process, the reports (matplotlib's charts) are drawn there while this process
    writes the work lists (openpyxl)."""
    from crosscheck.outputs import write_kpis, write_mismatches
    from crosscheck.reference import deployment_districts
    from crosscheck.report import gather, write_report
    from crosscheck.validate import write_data_docs_index
    from crosscheck.worklists import write_worklists

    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = {"mismatches": out_dir / "mismatches.csv", "kpis": out_dir / "kpis.csv"}
    with timing.stage("outputs"):
        write_mismatches(warehouse, as_of, outputs["mismatches"])
        write_kpis(warehouse, as_of, outputs["kpis"])
    districts = deployment_districts(settings.districts)
    if len(districts) == 1:
        districts = ()  # the deployment's report is its district's
    with timing.stage("report"):
        write_data_docs_index(settings.reports_dir / "data_docs")
        data = gather(warehouse, as_of)  # once for the deployment's report and each district's
        report = _called(helper, write_report, warehouse, as_of, out_dir, settings, data=data)
        district_reports = [_called(helper, write_report, warehouse, as_of, out_dir / "districts" / d.code, settings,
                                    district=d, data=data) for d in districts]
    if worklists:
        with timing.stage("worklists"):
            outputs.update(write_worklists(warehouse, as_of, out_dir, settings))
    with timing.stage("report"):
        outputs.update(report.result())
    if districts:
        with timing.stage("districts"):
            for district, district_report in zip(districts, district_reports, strict=True):
                folder = out_dir / "districts" / district.code
                write_mismatches(warehouse, as_of, folder / "mismatches.csv", towns=district.towns)
                write_kpis(warehouse, as_of, folder / "kpis.csv", district=district)
                district_report.result()
        outputs["districts"] = out_dir / "districts"
    return outputs


def _called(helper: ProcessPoolExecutor | None, function, *args, **kwargs) -> Future:
    """``function(*args, **kwargs)`` submitted to the helper process, or without one called here and now
    (a future that has its result)."""
    if helper is not None:
        return helper.submit(function, *args, **kwargs)
    called = Future()
    called.set_result(function(*args, **kwargs))
    return called


def run_night(landing: Path, as_of: date, warehouse_url: str | None, out_dir: Path | None,
              settings: Settings) -> NightResult:
    """The whole night: ingest every department (its files read in the helper process), compare,
    publish; under the night lock."""
    from crosscheck.publishing import PublishError, check_out
    from crosscheck.warehouse import WarehouseMissing

    if not landing.is_dir():
        raise RunFailed(f"landing folder {landing} does not exist")
    out_dir = out_dir or settings.reports_dir / as_of.isoformat()
    try:  # before any work: a bad --out used to fail only after ingest and compare had run
        check_out(out_dir, landing)
    except PublishError as exc:
        raise RunFailed(str(exc)) from None
    try:
        warehouse = open_warehouse(warehouse_url)
    except WarehouseMissing as exc:
        raise RunFailed(str(exc)) from None
    except Exception as exc:  # an unreachable server is the operator's first question
        target = redact(warehouse_url) if warehouse_url else "the embedded PostgreSQL"
        raise RunFailed(f"cannot open the warehouse at {target}: {str(exc).splitlines()[0]}") from exc
    result = NightResult(as_of, out_dir)
    timing = result.timing
    helper = helper_process()
    docs = DataDocsWriter()
    step = "ingest"
    try:
        with night_lock(warehouse):
            started = time.perf_counter()
            result.files += ingest_departments(warehouse, DEPARTMENTS, landing, settings, night=as_of, timing=timing,
                                               helper=helper, docs=docs)
            helper.submit(_import_for_the_report)  # while the night is compared
            result.seconds["ingest"] = time.perf_counter() - started
            step, started = "compare", time.perf_counter()
            result.compare = compare_night(warehouse, as_of, settings, timing)
            result.seconds["compare"] = time.perf_counter() - started
            step, started = "publish", time.perf_counter()
            with timing.stage("data docs"):  # rendered meanwhile; every page in place before the index lists them
                docs.wait()
            result.outputs = publish_night(warehouse, as_of, out_dir, settings, timing, helper=helper)
            result.seconds["publish"] = time.perf_counter() - started
    except Exception as exc:
        if not connection_lost(exc):
            raise
        # The traceback is for the log file; the operator gets one line (interface.md).
        log.error("the warehouse connection was lost during %s", step, exc_info=True)
        raise RunFailed(f"仓库数据库连接中断（{step} 阶段），本次比对未完成，已发布的结果保持不变 / the warehouse connection "
                        f"was lost during {step}; the night did not complete, published outputs are unchanged: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from exc
    return result


def connection_lost(exc: BaseException) -> bool:
    """Whether an error (or one it was raised from) is the database going away: a refused or broken
    connection, a server shutting down, a terminated backend — psycopg's or SQLAlchemy's (GX)."""
    import psycopg
    import sqlalchemy.exc

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | sqlalchemy.exc.OperationalError
                      | sqlalchemy.exc.InterfaceError):
            return True
        if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


__all__ = ["RunFailed", "apply_feedback_folder", "compare_night", "connection_lost", "evaluate", "finish",
           "ingest_department", "ingest_departments", "night_lock", "prepare", "publish_night", "run_night",
           "write_night", "write_worklists"]
