"""Ingest DAGs, one per department, generated from the department contracts (include/contracts/*.yaml).

Thin wiring only: every task body is a function of ``crosscheck.tasks`` imported inside the task.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Asset, AssetAlias, PokeReturnValue, dag, get_current_context, task

from crosscheck.catalogue import departments
from crosscheck.contracts import contracts
from crosscheck.monitoring import default_args
from crosscheck.tasks import TZ, asset_uri

DEPARTMENT_ZH = {code: dept.full for code, dept in departments().items()}
# A run starts every hour; its sensor pokes the drop folder every POKE seconds, without holding a
# worker slot between pokes (reschedule mode), and gives up quietly (skipped) before the next run.
SCHEDULE = os.environ.get("CROSSCHECK_INGEST_CRON", "0 * * * *")
POKE_SECONDS = int(os.environ.get("CROSSCHECK_INGEST_POKE_SECONDS", "300"))
WAIT_SECONDS = int(os.environ.get("CROSSCHECK_INGEST_WAIT_SECONDS", str(55 * 60)))

DOC = """
### 数据接收：{zh}（{department}）/ Ingest: {department}

**中文**：每小时检查一次 `landing/{department}/` 报送目录，等待新文件就绪（有 `.done` 标记或一分钟内未再变化）。
每个文件依次：归档 → 读取与标准化 → 暂存（staging）→ Great Expectations 校验 → 原子入库（core），
并在 `outbox/{department}/` 生成回执（回执说明每一行被接收或拒收的原因）。
文件名或格式不合规的文件会被拒收并生成回执，**不会**导致任务失败；其他部门的数据接收互不影响。
本部门的数据项：{extracts}。每个入库成功的数据项都会更新对应的资产（Asset），
四个部门的数据全部更新后将触发夜间比对（最迟每天 05:00 比对）。

**English**: every hour, wait (sensor in reschedule mode, no worker slot held) for new ready files in
`landing/{department}/`; then, per file (dynamic task mapping): archive, read and normalise into
staging, validate with the extract's Great Expectations suite, load into core atomically, and write
the receipt to `outbox/{department}/`. A refused file is a receipt, not a task failure. Each extract
loaded updates its asset `crosscheck://core/<extract>`: {extracts}. The nightly comparison runs when
every extract is refreshed, or at 05:00 Asia/Shanghai at the latest.

Code: `crosscheck.tasks` (pending_drops, stage_one, validate_one, load_one, summarise_department).
"""


def build_ingest_dag(department: str, extracts: list[str]):
    alias = AssetAlias(f"crosscheck-ingest-{department}")

    @dag(
        dag_id=f"crosscheck_ingest_{department}",
        description=f"接收{DEPARTMENT_ZH.get(department, department)}报送的数据 / ingest {department} extracts",
        doc_md=DOC.format(department=department, zh=DEPARTMENT_ZH.get(department, department),
                          extracts=", ".join(f"`{e}`" for e in extracts)),
        schedule=SCHEDULE,
        start_date=pendulum.datetime(2026, 1, 1, tz=TZ),
        catchup=False,
        max_active_runs=1,
        default_args=default_args(),
        tags=["crosscheck", "ingest", department],
    )
    def ingest():
        @task.sensor(task_id="wait_for_files", mode="reschedule", poke_interval=POKE_SECONDS,
                     timeout=WAIT_SECONDS, soft_fail=True, exponential_backoff=False)
        def wait_for_files() -> PokeReturnValue:
            from crosscheck.tasks import pending_drops

            names = pending_drops(department)
            return PokeReturnValue(is_done=bool(names), xcom_value=names)

        @task(task_id="stage", map_index_template="{{ file_name }}")
        def stage(name: str) -> dict:
            from crosscheck.tasks import stage_one

            get_current_context()["file_name"] = name
            return stage_one(department, name)

        @task(task_id="validate", map_index_template="{{ file_name }}")
        def validate(outcome: dict) -> dict:
            from crosscheck.tasks import validate_one

            get_current_context()["file_name"] = outcome.get("file_name")
            return validate_one(outcome)

        # Loads one at a time: two corrections of the same extract and date must land in order.
        @task(task_id="load", map_index_template="{{ file_name }}", max_active_tis_per_dagrun=1)
        def load(outcome: dict) -> dict:
            from crosscheck.tasks import load_one

            get_current_context()["file_name"] = outcome.get("file_name")
            return load_one(outcome)

        # Runs when some files failed too, so the extracts that did load are published.
        @task(task_id="publish_assets", outlets=[alias], trigger_rule="all_done_min_one_success")
        def publish_assets(outcomes, *, outlet_events=None) -> dict:
            from crosscheck.tasks import summarise_department

            summary = summarise_department(department, [outcomes[i] for i in range(len(outcomes))])
            for item in summary["loaded"]:
                outlet_events[alias].add(Asset(asset_uri(item["extract"])), extra=item)
            return summary

        # A leaf that fails when any file task failed, so the run shows red (the assets above are
        # still published for the files that loaded).
        @task(task_id="all_files_done")
        def all_files_done(outcomes) -> int:
            return len(outcomes)

        loaded = load.expand(outcome=validate.expand(outcome=stage.expand(name=wait_for_files())))
        publish_assets(loaded)
        all_files_done(loaded)

    return ingest()


def _departments() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for contract in contracts().values():
        found.setdefault(contract.department, []).append(contract.extract)
    order = {d: i for i, d in enumerate(departments())}
    return dict(sorted(found.items(), key=lambda item: order.get(item[0], len(order))))


for _department, _extracts in _departments().items():
    globals()[f"crosscheck_ingest_{_department}"] = build_ingest_dag(_department, _extracts)
