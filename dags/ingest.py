"""Ingest DAGs, one per department, generated from the department contracts (include/contracts/*.yaml).

Thin wiring only: every task body is a function of ``crosscheck.tasks`` imported inside the task.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import (
    Asset,
    AssetAlias,
    AssetOrTimeSchedule,
    AssetWatcher,
    CronTriggerTimetable,
    PokeReturnValue,
    dag,
    get_current_context,
    task,
)

from crosscheck.catalogue import departments
from crosscheck.contracts import contracts
from crosscheck.monitoring import default_args
from crosscheck.settings import get_settings
from crosscheck.tasks import TZ, asset_uri
from crosscheck.triggers import LandingReadyTrigger, landing_asset_uri

DEPARTMENT_ZH = {code: dept.full for code, dept in departments().items()}
# A run starts when a file in the department's drop folder is ready (the triggerer's LandingReadyTrigger
# fires the asset crosscheck://landing/<dept>): no run when no file came. The setting ingest_cron restores
# a timed schedule instead (e.g. "0 * * * *" with ingest_wait_seconds 3300: the hourly poking of before).
# The sensor then finds the files at once; it pokes every ingest_poke_seconds (no worker slot held between
# pokes) and gives up quietly (skipped) after ingest_wait_seconds — e.g. when an earlier run took the file.
# A department with extracts to pull (include/sources.yaml) is also run on the setting pull_cron: nothing
# arrives by itself there, the run's pull task fetches it. (The settings ingest_* and pull_cron: include/settings.yaml.)
SETTINGS = get_settings()  # schedules and task defaults; each task reads the settings again when it runs


def _pulls(department: str) -> bool:
    """Whether the sources file names an extract of the department to pull. Read with yaml here: importing
    crosscheck.pull would load the warehouse stack into the DAG processor (its load_sources checks the
    file when the pull task runs; a broken file shows there)."""
    import yaml

    from crosscheck.settings import INCLUDE_DIR

    try:
        raw = yaml.safe_load(Path(SETTINGS.sources_file or INCLUDE_DIR / "sources.yaml").read_text("utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    if not isinstance(raw, dict):
        return False
    known = contracts()
    return any(isinstance(spec, dict) and spec.get("source", "drop") != "drop" and extract in known
               and known[extract].department == department for extract, spec in raw.items())


def landing_schedule(department: str):
    """The department's drop folder as an asset whose watcher fires when a new file is ready."""
    if SETTINGS.ingest_cron:
        return SETTINGS.ingest_cron
    trigger = LandingReadyTrigger(department, poll_seconds=SETTINGS.ingest_trigger_poll_seconds)
    landing = Asset(name=f"landing_{department}", uri=landing_asset_uri(department),
                    watchers=[AssetWatcher(name=f"landing_{department}_ready", trigger=trigger)])
    if _pulls(department):
        return AssetOrTimeSchedule(timetable=CronTriggerTimetable(SETTINGS.pull_cron, timezone=TZ), assets=[landing])
    return [landing]

DOC = """
### 数据接收：{zh}（{department}）/ Ingest: {department}

**中文**：若本部门有数据项配置为从其数据库或前置机（SFTP）拉取（`include/sources.yaml`），先拉取前一天的数据放入报送目录。
`landing/{department}/` 报送目录中有新文件就绪（有 `.done` 标记或一分钟内未再变化）时自动开始（无新文件不运行）。
每个文件依次：归档 → 读取与标准化 → 暂存（staging）→ Great Expectations 校验 → 原子入库（core），
并在 `outbox/{department}/` 生成回执（回执说明每一行被接收或拒收的原因）。
文件名或格式不合规的文件会被拒收并生成回执，**不会**导致任务失败；其他部门的数据接收互不影响。
退回比例或行数与该数据项近期明显不符的文件（如身份证号被Excel改成科学计数法、文件被截断）将被**暂扣**：
不入库、继续使用此前的数据，日志与通知中有 HELD 一行，汇总（XCom）列于 `held`；核实后用 `crosscheck release 文件编号` 放行。
本部门的数据项：{extracts}。每个入库成功的数据项都会更新对应的资产（Asset），
四个部门的数据全部更新后将触发夜间比对（最迟每天 05:00 比对）。

**English**: first pull the extracts `include/sources.yaml` says come from the department's database or
SFTP exchange server (yesterday's date) into the drop folder; a run starts when a new file in
`landing/{department}/` is ready (asset `crosscheck://landing/{department}` fired by the triggerer; no run without a file); then, per file (dynamic task mapping): archive, read and normalise into
staging, validate with the extract's Great Expectations suite, load into core atomically, and write
the receipt to `outbox/{department}/`. A refused file is a receipt, not a task failure. A file whose
quarantine share or row count departs grossly from the extract's recent history is **held** (not
loaded; the previous snapshot stays): a HELD log line and notification, listed under `held` in the
summary (XCom); `crosscheck release FILE_ID` loads it. Each extract
loaded updates its asset `crosscheck://core/<extract>`: {extracts}. The nightly comparison runs when
every extract is refreshed, or at 05:00 Asia/Shanghai at the latest.

Code: `crosscheck.tasks` (pull_sources, pending_drops, stage_one, validate_one, load_one, summarise_department).
"""


def build_ingest_dag(department: str, extracts: list[str]):
    alias = AssetAlias(f"crosscheck-ingest-{department}")

    @dag(
        dag_id=f"crosscheck_ingest_{department}",
        description=f"接收{DEPARTMENT_ZH.get(department, department)}报送的数据 / ingest {department} extracts",
        doc_md=DOC.format(department=department, zh=DEPARTMENT_ZH.get(department, department),
                          extracts=", ".join(f"`{e}`" for e in extracts)),
        schedule=landing_schedule(department),
        start_date=pendulum.datetime(2026, 1, 1, tz=TZ),
        catchup=False,
        max_active_runs=1,
        default_args=default_args(SETTINGS),
        tags=["crosscheck", "ingest", department],
    )
    def ingest():
        # Extracts the department offers in its database or on its exchange server (include/sources.yaml)
        # are fetched into its drop folder first; a no-op for a department that drops its files.
        @task(task_id="pull")
        def pull() -> list:
            from crosscheck.tasks import pull_sources

            return pull_sources(department, get_current_context()["dag_run"].run_after, get_settings())

        # all_done: what was dropped (or pulled) is taken even when another extract's pull failed.
        @task.sensor(task_id="wait_for_files", mode="reschedule", poke_interval=SETTINGS.ingest_poke_seconds,
                     timeout=SETTINGS.ingest_wait_seconds, soft_fail=True, exponential_backoff=False, trigger_rule="all_done")
        def wait_for_files() -> PokeReturnValue:
            from crosscheck.tasks import pending_drops

            drops = pending_drops(department, get_settings())  # keys and masked names, never raw names
            return PokeReturnValue(is_done=bool(drops), xcom_value=drops)

        @task(task_id="stage", map_index_template="{{ file_name }}")
        def stage(drop: dict) -> dict:
            from crosscheck.tasks import stage_one

            get_current_context()["file_name"] = drop["file"]
            return stage_one(department, drop, get_settings())

        @task(task_id="validate", map_index_template="{{ file_name }}")
        def validate(outcome: dict) -> dict:
            from crosscheck.tasks import validate_one

            get_current_context()["file_name"] = outcome.get("file_name")
            return validate_one(outcome, get_settings())

        # Loads one at a time: two corrections of the same extract and date must land in order.
        @task(task_id="load", map_index_template="{{ file_name }}", max_active_tis_per_dagrun=1)
        def load(outcome: dict) -> dict:
            from crosscheck.tasks import load_one

            get_current_context()["file_name"] = outcome.get("file_name")
            return load_one(outcome, get_settings())

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

        waited = wait_for_files()
        pull() >> waited
        loaded = load.expand(outcome=validate.expand(outcome=stage.expand(drop=waited)))
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
