"""Where the night's time goes: named stages accumulate wall time, for logs and the benchmark."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from contextlib import contextmanager


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

    def reset(self) -> None:
        with self._lock:
            self._seconds.clear()

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {k: round(v, 3) for k, v in self._seconds.items()}


# This process's timing; the benchmark resets it before a run.
TIMING = Timing()
stage = TIMING.stage
reset = TIMING.reset
snapshot = TIMING.snapshot
