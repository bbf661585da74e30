"""The event trigger that starts a department's ingest when a file in its drop folder is ready.

Run by Airflow's triggerer as the watcher of the asset ``crosscheck://landing/<department>``
(``dags/ingest.py``): it polls the folder with the pick-up's own rules (``crosscheck.pickup.scan``:
a ``.done`` marker or the quiet period) and the warehouse's list of handled files
(``crosscheck.tasks.pending_drops``), and fires once per file that is ready and not handled yet. It
never moves or deletes anything — Airflow's own file triggers delete the file, and nothing may leave
landing. Kept import-light: the DAG file constructs it at parse time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

log = logging.getLogger(__name__)


def landing_asset_uri(department: str) -> str:
    """The asset standing for "a new file is ready in landing/<department>/"."""
    return f"crosscheck://landing/{department}"


class LandingReadyTrigger(BaseEventTrigger):
    """Fires ``{"department", "files"}`` when ready files not yet handled (nor fired for) appear."""

    def __init__(self, department: str, poll_seconds: float = 10.0):
        super().__init__()
        self.department = department
        self.poll_seconds = float(poll_seconds)

    def serialize(self) -> tuple[str, dict]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"department": self.department, "poll_seconds": self.poll_seconds})

    def _pending(self, warehouse):
        from crosscheck.settings import get_settings
        from crosscheck.tasks import _warehouse, pending_drops

        settings = get_settings()  # the triggerer's: an entry point like a task
        warehouse = warehouse or _warehouse(settings)  # opened (and migrated) once, then reused
        return warehouse, pending_drops(self.department, settings, warehouse=warehouse, keys=True)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        fired: set[tuple] = set()  # (name, size, mtime): a file rewritten under its name fires again
        warehouse = None
        while True:
            try:
                warehouse, pending = await asyncio.to_thread(self._pending, warehouse)
            except Exception as exc:  # noqa: BLE001 — the warehouse away: try again at the next poll
                log.warning("%s: cannot check the drop folder: %s", self.department, str(exc).splitlines()[0])
                warehouse, pending = None, []
            new = [key for key in pending if tuple(key) not in fired]
            if new:
                fired.update(tuple(key) for key in new)
                names = [key[0] for key in new]
                log.info("%s: %d new ready file(s): %s", self.department, len(names), ", ".join(names))
                yield TriggerEvent({"department": self.department, "files": names})
            # Forget what has been handled since, so the set stays as small as the folder's backlog.
            fired &= {tuple(key) for key in pending}
            await asyncio.sleep(self.poll_seconds)
