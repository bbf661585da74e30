"""The nightly comparison: when every extract has been refreshed, or at 05:00 Asia/Shanghai at the latest.

Thin wiring only: every task body is a function of ``crosscheck.tasks`` imported inside the task.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import (
    Asset,
    AssetAll,
    AssetOrTimeSchedule,
    AsyncCallback,
    CronTriggerTimetable,
    DeadlineAlert,
    DeadlineReference,
    Param,
    dag,
    get_current_context,
    task,
)

from crosscheck.contracts import contracts
from crosscheck.monitoring import DeadlineNotifier, default_args, nightly_deadline
from crosscheck.settings import get_settings
from crosscheck.tasks import TZ, asset_uri

SETTINGS = get_settings()  # schedules and task defaults; each task reads the settings again when it runs
EXTRACT_ASSETS = [Asset(asset_uri(extract)) for extract in contracts()]

DOC = """
### 夜间数据比对 / Nightly cross-department comparison

**中文**：当四个部门的全部数据项（{n} 个）都已更新入库时立即开始比对；若有部门迟报，
最迟每天 **05:00（北京时间）** 按时开始，迟报部门使用其最近一次报送的数据，并在报告中标明数据时效（几天前的数据）。
步骤：确定比对日期 → 准备（读取交回的核查清单、建立当晚比对环境、划分分区）→ 按分区（区县或镇街，
动态任务映射，可由多个 worker 并行）执行比对规则与指标 → 汇总问题清单与指标 → 输出结果（`mismatches.csv`、
`kpis.csv`、`report.html`、数据质量文档）；各镇街核查工作清单先按分区并行生成 → 汇总。
输出目录：`reports/<比对日期>/`，全部写完后一次切换（读者只会看到上一晚或本晚的完整结果）。某个分区失败时只重试该分区。
若比对在排队后 {deadline} 分钟内仍未完成，将发送超时告警（DeadlineAlert）。
手动触发时可填写参数 `as_of`（YYYY-MM-DD）重跑某一天。

**English**: starts as soon as every extract asset ({n}) has been updated, or at **05:00
Asia/Shanghai** at the latest; a late department's latest data is used and its age is flagged by the
comparison. Steps: pick the as-of date → prepare (returned work lists, the night's set-up, its
partitions) → rules and indicators per partition (district or town: dynamic task mapping, shared by
the workers; a failed partition retries alone) → compare (findings life, indicators, GX checks) →
work lists per partition → publish (mismatches.csv, kpis.csv, report.html, Data Docs) → summary, into
`reports/<as_of>/`, switched once when every file is written (readers see the previous night or this one, whole). A deadline alert fires when a run has not finished {deadline} minutes after it
was queued. Trigger manually with the `as_of` param (YYYY-MM-DD) to redo a night.

Code: `crosscheck.tasks` (night_as_of, prepare, compare_partition, compare, write_worklists, publish,
summarise_night) → `crosscheck.compare`, `crosscheck.pipeline`.
"""


@dag(
    dag_id="crosscheck_nightly",
    description="夜间跨部门数据比对与报告 / nightly comparison and reports",
    doc_md=DOC.format(n=len(EXTRACT_ASSETS), deadline=int(nightly_deadline(SETTINGS).total_seconds() // 60)),
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(SETTINGS.night_cron, timezone=TZ),
        assets=AssetAll(*EXTRACT_ASSETS),
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz=TZ),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(SETTINGS),
    tags=["crosscheck", "nightly", "compare", "report"],
    params={"as_of": Param(None, type=["null", "string"], format="date",
                           description="比对日期 YYYY-MM-DD（留空：最新入库数据的日期）/ the night's as-of date")},
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=nightly_deadline(SETTINGS),
        callback=AsyncCallback(DeadlineNotifier, kwargs={"message": "夜间比对未按时完成 / the nightly comparison is late"}),
    ),
)
def crosscheck_nightly():
    @task(task_id="as_of")
    def as_of() -> str:
        from crosscheck.tasks import night_as_of

        context = get_current_context()
        events = context.get("triggering_asset_events") or {}
        uris = sorted({a.uri for a in events if getattr(a, "uri", None)})  # assets, not the aliases
        if uris:
            print("triggered by:", ", ".join(uris))
        dag_run = context["dag_run"]
        run_after = getattr(dag_run, "run_after", None) or getattr(dag_run, "logical_date", None)
        return night_as_of(context["params"].get("as_of"), run_after, get_settings())

    @task(task_id="prepare")
    def prepare(day: str) -> list[dict]:
        from crosscheck.tasks import prepare as prepare_night

        return prepare_night(day, get_settings())

    # Each mapped instance is labelled with its partition (a district or a town) in the UI.
    @task(task_id="partition", map_index_template="{{ partition_key }}")
    def partition(day: str, partition: dict) -> dict:
        from crosscheck.tasks import compare_partition

        get_current_context()["partition_key"] = partition["key"]
        return compare_partition(day, partition, get_settings())

    @task(task_id="compare")
    def compare(day: str, partitions: list[dict]) -> dict:
        from crosscheck.tasks import compare as finish

        return finish(day, partitions, get_settings())

    @task(task_id="worklists", map_index_template="{{ partition_key }}")
    def worklists(day: str, partition: dict) -> dict:
        from crosscheck.tasks import write_worklists

        get_current_context()["partition_key"] = partition["key"]
        return write_worklists(day, partition, get_settings())

    @task(task_id="publish")
    def publish(day: str, partitions: list[dict]) -> dict:
        from crosscheck.tasks import publish as run_publish

        return run_publish(day, get_settings(), worklists=False, partitions=partitions)

    @task(task_id="summary")
    def summary(day: str, comparison: dict, outputs: dict) -> str:
        from crosscheck.tasks import summarise_night

        return summarise_night(day, comparison, outputs)

    day = as_of()
    partitions = prepare(day)
    evaluated = partition.partial(day=day).expand(partition=partitions)
    comparison = compare(day, partitions)
    evaluated >> comparison
    lists = worklists.partial(day=day).expand(partition=partitions)
    outputs = publish(day, partitions)
    # The work lists are written into the night's set first: publish switches to it once, whole.
    comparison >> lists >> outputs
    summary(day, comparison, outputs)


crosscheck_nightly()
