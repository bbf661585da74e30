"""A real Airflow deployment for tests and benchmarks: ``crosscheck airflow`` in a subprocess.

LocalExecutor (api-server, scheduler, dag-processor, triggerer) or, with ``workers``, the CeleryExecutor with that many
``airflow celery worker`` processes and Redis as broker. The metadata lives in a database of its own
on the given PostgreSQL server, dropped afterwards. ``run_nightly`` triggers the nightly DAG for a
date and waits for it. Used by tests/test_celery.py and bench/airflow_night.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg

from crosscheck import warehouse as wh
from crosscheck.cli import _sqlalchemy_psycopg2, airflow_environment

VENV_BIN = Path(sys.executable).parent


def wait_for(what: str, check, timeout: float, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AirflowStack:
    def __init__(self, server_url: str, warehouse_url: str, workdir: Path, crosscheck_env: dict,
                 workers: int = 0, broker: str | None = None, concurrency: int = 1):
        self.server_url, self.warehouse_url, self.workdir = server_url, warehouse_url, Path(workdir)
        self.workers, self.broker, self.concurrency = workers, broker, concurrency
        self.metadata_db = f"crosscheck_airflow_{uuid.uuid4().hex[:8]}"
        self.metadata_url = _sqlalchemy_psycopg2(wh.with_database(server_url, self.metadata_db))
        self.log_path = self.workdir / "airflow.log"
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CROSSCHECK_"))}
        env.update(airflow_environment(self.workdir / "airflow", self.metadata_url, warehouse_url, port,
                                       broker if workers else None))
        env.update(crosscheck_env)
        env.update({
            "PATH": f"{VENV_BIN}{os.pathsep}{env['PATH']}",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # no scheduled run beside the triggered ones
            # A queue of its own: two stacks sharing the broker (parallel test workers) never take each
            # other's tasks (their execution tokens would not verify).
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": f"crosscheck-{self.metadata_db}",
        })
        self.env = env
        self.command = [sys.executable, "-m", "crosscheck.cli", "airflow", "--port", str(port),
                        "--warehouse", warehouse_url, "--metadata-url", self.metadata_url]
        if workers:
            self.command += ["--celery", "--broker", broker, "--workers", str(workers),
                             "--concurrency", str(concurrency)]

    def __enter__(self) -> AirflowStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        wh.ensure_database(self.server_url, self.metadata_db)
        self._log = open(self.log_path, "w")  # noqa: SIM115 — closed in __exit__
        self.process = subprocess.Popen(self.command, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.meta = psycopg.connect(wh.with_database(self.server_url, self.metadata_db), autocommit=True)
        try:
            wait_for("the DAG processor to parse the nightly DAG", self._dag_parsed, 300)
            if self.workers:
                wait_for(f"{self.workers} Celery workers", self._workers_ready, 180)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.meta.close()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()
        wh.drop_database(self.server_url, self.metadata_db)

    def _dag_parsed(self):
        try:
            return self.meta.execute("SELECT 1 FROM dag WHERE dag_id = 'crosscheck_nightly'").fetchone()
        except psycopg.errors.UndefinedTable:  # still migrating
            return None

    def _workers_ready(self) -> bool:  # each worker logs "worker-N@host ready." once it consumes the queue
        text = self.log_path.read_text(errors="replace")
        return all(re.search(rf"worker-{i}@\S+ ready\.", text) for i in range(1, self.workers + 1))

    def airflow(self, *args: str) -> None:
        done = subprocess.run(["airflow", *args], env=self.env, capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise AssertionError(f"airflow {' '.join(args)}: {done.stderr[-2000:]}")

    def run_nightly(self, as_of: str, run_id: str, timeout: float = 600) -> dict:
        """Trigger the nightly DAG for as_of; wait; return its state, wall seconds and task instances."""
        self.airflow("dags", "unpause", "crosscheck_nightly")
        self.airflow("dags", "trigger", "crosscheck_nightly", "--run-id", run_id, "--conf", json.dumps({"as_of": as_of}))
        state = wait_for("the nightly run to finish", lambda: self.meta.execute(
            "SELECT state FROM dag_run WHERE run_id = %s AND state IN ('success', 'failed')", (run_id,)).fetchone(),
            timeout, every=2)[0]
        seconds = self.meta.execute("SELECT extract(epoch FROM end_date - start_date) FROM dag_run WHERE run_id = %s",
                                    (run_id,)).fetchone()[0]
        cur = self.meta.execute(
            "SELECT task_id, map_index, state, hostname, rendered_map_index, "
            "extract(epoch FROM end_date - start_date) AS seconds FROM task_instance WHERE run_id = %s "
            "ORDER BY start_date", (run_id,))
        names = [c.name for c in cur.description]
        tis = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        return {"state": state, "seconds": float(seconds), "tis": tis,
                "log_tail": self.log_path.read_text(errors="replace")[-3000:] if state != "success" else ""}
