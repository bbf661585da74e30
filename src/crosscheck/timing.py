"""Where the night's time goes: named stages accumulate wall time, for logs and the benchmark."""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

# stage name -> seconds, for this process. The benchmark resets it before a run.
STAGES: dict[str, float] = defaultdict(float)


@contextmanager
def stage(name: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        STAGES[name] += time.perf_counter() - started


def reset() -> None:
    STAGES.clear()


def snapshot() -> dict[str, float]:
    return {k: round(v, 3) for k, v in STAGES.items()}
