"""crosscheck.executor.WarmLocalExecutor: Airflow's LocalExecutor whose workers are forked with what
crosscheck's tasks import (GX) already imported, so no task process imports it again."""

from __future__ import annotations

import subprocess
import sys
import textwrap

FORKS = textwrap.dedent("""
    import os, sys
    from crosscheck.executor import WarmLocalExecutor

    executor = WarmLocalExecutor(parallelism=2)
    assert "great_expectations" not in sys.modules
    at_fork = []  # what a worker starts with: this process's modules when it forks
    os.register_at_fork(before=lambda: at_fork.append(
        {"great_expectations", "crosscheck.tasks", "crosscheck.ingest"} <= set(sys.modules)))
    executor.start()
    forked = len(executor.workers)
    executor.end()
    print(forked, at_fork.count(True), at_fork.count(False))
""")


def test_workers_are_forked_with_gx_and_the_task_modules_imported(tmp_path):
    result = subprocess.run([sys.executable, "-c", FORKS], capture_output=True, text=True, timeout=300,
                            env={"AIRFLOW_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    forked, warm, cold = map(int, result.stdout.split()[-3:])
    assert forked == 2 and warm >= 2 and cold == 0
