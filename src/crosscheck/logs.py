"""How crosscheck's processes log: the night's counts and reasons, every time with its zone, and
not the chatter of the libraries underneath (GX alone logged 214 lines at start-up).

One place for both: ``quiet_libraries()`` runs when the package is imported (command line, Airflow
tasks, tests alike), ``configure()`` sets up the command line's log lines.
"""

from __future__ import annotations

import logging
import warnings
from datetime import datetime
from pathlib import Path

# Library loggers kept at WARNING: their INFO lines are start-up bookkeeping, not news about the night.
# GX's data_context.types.base sets its own level to INFO when imported, so a filter (which survives
# setLevel) holds it too.
NOISY_LOGGERS = ("great_expectations", "matplotlib", "great_expectations.data_context.types.base")
# Library warnings about its own configuration that a user of the night cannot act on.
NOISY_WARNINGS = (r"You are using a generic SQLDatasource",)  # GX: we use SQLDatasource on purpose


def _warnings_and_worse(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


def quiet_libraries() -> None:
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        if _warnings_and_worse not in logger.filters:
            logger.addFilter(_warnings_and_worse)
    for message in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


class ZoneFormatter(logging.Formatter):
    """Log times in the users' zone (Asia/Shanghai), with the offset printed: a line logged at 17:03 UTC
    reads 01:03+08:00 of the next day, as the bureau's clocks say."""

    def formatTime(self, record, datefmt=None):  # noqa: N802 (logging's name)
        from crosscheck.settings import USERS_ZONE

        return datetime.fromtimestamp(record.created, USERS_ZONE).isoformat(sep=" ", timespec="seconds")


class _Terminal(logging.Filter):
    """The terminal shows the night's progress and warnings; an error is summarised by the command in
    one line at the end (interface.md), its details and traceback are in the log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


class _NoTraceback(ZoneFormatter):
    def formatException(self, ei):  # noqa: N802 (logging's name)
        return ""

    def format(self, record):
        return super().format(logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None}))


def configure(verbose: bool = False) -> Path | None:
    """The command line's logging: counts and warnings on stderr in the users' zone; everything, with
    tracebacks, in ``var/logs/crosscheck.log`` (rotated). ``verbose``: debug lines and errors with their
    tracebacks on stderr too. Returns the log file (None when it cannot be written)."""
    import threading
    from logging.handlers import RotatingFileHandler

    from crosscheck.settings import get_settings

    line = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    terminal = logging.StreamHandler()
    terminal.setFormatter(ZoneFormatter(line) if verbose else _NoTraceback(line))
    if not verbose:
        terminal.addFilter(_Terminal())
    handlers: list[logging.Handler] = [terminal]
    path: Path | None = get_settings().var_dir / "logs" / "crosscheck.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        to_file = RotatingFileHandler(path, maxBytes=20 * 1024 * 1024, backupCount=5, encoding="utf-8")
        to_file.setFormatter(ZoneFormatter("%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"))
        handlers.append(to_file)
    except OSError:
        path = None
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=handlers)
    logging.captureWarnings(True)  # the warnings that remain go through the same handlers
    quiet_libraries()
    log = logging.getLogger("crosscheck")
    threading.excepthook = lambda a: log.error("thread %s failed", a.thread.name if a.thread else "?",
                                               exc_info=(a.exc_type, a.exc_value, a.exc_traceback))
    return path
