"""Where the night's time goes: named stages accumulate wall time, for logs and the benchmark.

A run owns one ``Timing`` and passes it to the steps that record stages (``pipeline.run_night``
makes it; ``NightResult.timing`` holds it). Code the run does not pass it to (``crosscheck.night``)
records through ``stage``, into the timing the calling step made current with ``recording``.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar


class Timing:
    """Seconds per stage name. Stages are timed from several threads at once (files read beside
    validation, rule files side by side), so additions hold a lock."""

    def __init__(self) -> None:
        self._seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    @contextmanager
    def stage(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self._seconds[name] += elapsed

    def add(self, name: str, seconds: float) -> None:
        """Seconds timed elsewhere (in another process) to a stage."""
        with self._lock:
            self._seconds[name] += seconds

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {k: round(v, 3) for k, v in self._seconds.items()}


_current: ContextVar[Timing | None] = ContextVar("crosscheck_timing", default=None)


@contextmanager
def recording(timing: Timing):
    """Make ``timing`` the one ``stage`` records into, in this thread, for the block."""
    token = _current.set(timing)
    try:
        yield timing
    finally:
        _current.reset(token)


def stage(name: str):
    """A stage of the timing made current by ``recording``; times nothing outside a run."""
    timing = _current.get()
    return timing.stage(name) if timing is not None else nullcontext()
