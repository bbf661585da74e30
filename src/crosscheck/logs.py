"""How crosscheck's processes log: the night's counts and reasons, every time with its zone, and
not the chatter of the libraries underneath (GX alone logged 214 lines at start-up).

One place for both: ``quiet_libraries()`` runs when the package is imported (command line, Airflow
tasks, tests alike), ``configure()`` sets up the command line's log lines.
"""

from __future__ import annotations

import logging
import warnings
from datetime import datetime

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


def configure(verbose: bool = False) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(ZoneFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    logging.captureWarnings(True)  # the warnings that remain go through the same format
    quiet_libraries()
