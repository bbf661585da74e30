"""Airflow's LocalExecutor with warm workers: what crosscheck's tasks import is imported once, before
the executor forks its worker processes.

Airflow 3's LocalExecutor forks its workers from the scheduler when it starts, and each worker forks a
fresh process for every task it runs (the task SDK's supervisor). A task process so starts with the
modules its worker had, and imports the rest itself, every time: for the validate task, GX — seconds
of each small file's way from pick-up to receipt. Imported here, before the workers are forked, GX
and the ingest modules are in every task process from its start (shared copy-on-write, and frozen for
the garbage collector as the LocalExecutor does for its own modules).

``crosscheck airflow`` and docker-compose.yaml run the scheduler with
``AIRFLOW__CORE__EXECUTOR=crosscheck.executor.WarmLocalExecutor``.
"""

from __future__ import annotations

from airflow.executors.local_executor import LocalExecutor


def import_for_tasks() -> None:
    """Import, without running anything, the modules crosscheck's ingest tasks import when they run."""
    import crosscheck.tasks  # noqa: F401  (the DAG files' task bodies)
    from crosscheck.validate import import_gx_modules

    import_gx_modules()  # with crosscheck.ingest (the readers, pyarrow) on the way


class WarmLocalExecutor(LocalExecutor):
    """The LocalExecutor, its worker processes forked after ``import_for_tasks``."""

    def start(self) -> None:
        import_for_tasks()
        super().start()
