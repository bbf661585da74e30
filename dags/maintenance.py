"""Maintenance: history, archive and Airflow's own database, every morning after the night.

Thin wiring only: every task body is a function of ``crosscheck.tasks`` imported inside the task.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

from crosscheck.monitoring import default_args
from crosscheck.settings import get_settings
from crosscheck.tasks import TZ

SETTINGS = get_settings()  # the schedule and task defaults; each task reads the settings again when it runs

DOC = """
### 历史压缩与清理 / History, archive and Airflow database maintenance

**中文**：每天 **08:00（北京时间）**（夜间比对之后）运行：把各数据项较早的快照折叠为历史版本
（最近 `history_full_snapshots` 份快照保持完整，任何一晚都可用 `crosscheck replay` 重现），压缩已归档的原始文件，
超过各部门保存期限（`archive_retention_days`）且其数据已进入历史的原始文件予以删除（接收回执与历史保留）；
并清理 Airflow 自身的元数据库（`airflow db clean`，保留 `airflow_db_retention_days` 天）。可重复运行，中途中断后再次运行即可。

**English**: every day at **08:00 Asia/Shanghai** (after the night): folds each extract's older
snapshots into history (the latest `history_full_snapshots` stay whole; any night can be replayed
with `crosscheck replay`), compresses the archived files, removes those past their department's
`archive_retention_days` whose rows are in history (receipts and history stay), and cleans Airflow's
own metadata database (`airflow db clean`, keeping `airflow_db_retention_days` days). Idempotent;
a killed run is finished by the next.

Code: `crosscheck.tasks` (compact_history, tidy_archive, clean_airflow_db) → `crosscheck.history`.
"""


@dag(
    dag_id="crosscheck_maintenance",
    description="历史压缩、归档清理、Airflow 元数据库清理 / history, archive and Airflow DB maintenance",
    doc_md=DOC,
    schedule=CronTriggerTimetable(SETTINGS.maintenance_cron, timezone=TZ),
    start_date=pendulum.datetime(2026, 1, 1, tz=TZ),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(SETTINGS),
    tags=["crosscheck", "maintenance", "history"],
)
def crosscheck_maintenance():
    @task(task_id="compact_history")
    def compact_history() -> str:
        from crosscheck.tasks import compact_history as compact

        return compact(get_settings())

    @task(task_id="tidy_archive")
    def tidy_archive() -> str:
        from crosscheck.tasks import tidy_archive as tidy

        return tidy(get_settings())

    @task(task_id="clean_airflow_db")
    def clean_airflow_db() -> str:
        from crosscheck.tasks import clean_airflow_db as clean

        return clean(get_settings())

    compact_history() >> tidy_archive()  # files are removed only once their rows are in history
    clean_airflow_db()


crosscheck_maintenance()
