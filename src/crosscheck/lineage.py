"""OpenLineage for the Airflow tasks: from a department's dropped file to the night's findings and files.

The OpenLineage provider emits a START and a COMPLETE event per task instance; what each task read
and wrote is derived here from the task's return value (its XCom), so the task bodies in
``crosscheck.tasks`` stay as they are. ``CrosscheckExtractor`` is the provider's extractor for the
TaskFlow tasks (configured with ``[openlineage] extractors``, and ``execute_in_thread``: reading the XCom
needs the task runner's own process, not the provider's default fork; see README "Lineage"):

    ingest  stage     file landing/<dept>/<file>            → staging.<extract>_f<file_id> (rows received)
            validate  staging table (GX assertions, rows)   → ingest.quarantine (rows set aside)
            load      staging table                         → core.<extract> partition as_of (rows loaded),
                                                               the receipt in outbox/<dept>/
    night   partition core.<extract> …                      → mart.findings (findings per rule)
            compare   core.<extract> (snapshot used)        → mart.findings (per status and severity), mart.indicators
            publish   mart.findings, mart.indicators        → mismatches.csv, kpis.csv, report.html, work lists

Every table and file carries the ``crosscheck`` facet: department, extract, file id, as-of date; rows in
staging and core are keyed by (file_id, row_number), so a finding leads to its rows, their file and
department. Nothing is emitted unless a transport is configured (the provider is off without one).
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

import attr
from airflow.providers.openlineage.extractors.base import BaseExtractor, OperatorLineage
from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.facet_v2 import (
    data_quality_assertions_dataset,
    data_quality_metrics_input_dataset,
    output_statistics_output_dataset,
)
from openlineage.client.generated.base import DatasetFacet, RunFacet

from crosscheck.masking import for_people

log = logging.getLogger(__name__)

FACET = "crosscheck"
SCHEMA = "urn:crosscheck:lineage:facet:1"  # crosscheck-specific facets (described in this module)
ROW_KEY = ["file_id", "row_number"]  # the columns of staging and core that name a row's file and line


@attr.define
class CrosscheckDatasetFacet(DatasetFacet):
    """Which department, extract, file and date a table or file stands for."""

    department: str | None = attr.field(default=None)
    extract: str | None = attr.field(default=None)
    file_id: int | None = attr.field(default=None)
    file_name: str | None = attr.field(default=None)
    as_of: str | None = attr.field(default=None)
    status: str | None = attr.field(default=None)
    row_key: list[str] | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA


@attr.define
class CrosscheckNightRunFacet(RunFacet):
    """The night's counts: findings per rule (a partition) or per status and severity (the night)."""

    as_of: str | None = attr.field(default=None)
    partition: str | None = attr.field(default=None)
    findings_by_rule: dict | None = attr.field(default=None)
    findings_by_status: dict | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA


def _warehouse_place() -> tuple[str, str]:
    """(namespace, database) of the warehouse in OpenLineage's naming: postgres://host:port, database."""
    from crosscheck.settings import get_settings
    from crosscheck.warehouse import EMBEDDED_DATABASE, connection_url

    url = connection_url() or get_settings().warehouse_url
    if not url:
        return "postgres://localhost:5432", EMBEDDED_DATABASE
    parts = urlsplit(url)
    return f"postgres://{parts.hostname or 'localhost'}:{parts.port or 5432}", parts.path.lstrip("/")


def _table(place, name: str, cls=InputDataset, facets=None, **kw):
    namespace, database = place
    return cls(namespace=namespace, name=f"{database}.{name}", facets=facets or {}, **kw)


def _file(path, cls=InputDataset, facets=None, **kw):
    # a dropped file's name (and its receipt's) may carry an ID number: lineage is read by whoever sees the backend
    return cls(namespace="file", name=for_people(str(Path(path).absolute())), facets=facets or {}, **kw)


def _rows(n) -> dict:
    return {"outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=n or 0)}


def _ingest(task_id: str, o: dict, place) -> OperatorLineage | None:
    from crosscheck.settings import get_settings

    if not isinstance(o, dict) or not o.get("file_name"):
        return None
    about = {FACET: CrosscheckDatasetFacet(
        department=o.get("department"), extract=o.get("extract"), file_id=o.get("file_id"),
        file_name=for_people(o.get("file_name")), as_of=o.get("as_of"), status=o.get("status"), row_key=ROW_KEY)}
    staging = f"staging.{o.get('extract')}_f{o.get('file_id')}" if o.get("file_id") and o.get("extract") else None
    if task_id == "stage":
        dropped = _file(get_settings().landing_dir / o["department"] / o["file_name"], facets=about)
        outputs = [_table(place, staging, OutputDataset, about, outputFacets=_rows(o.get("rows_received")))] \
            if staging else []
        return OperatorLineage(inputs=[dropped], outputs=outputs)
    if staging is None:
        return None
    if task_id == "validate":
        assertions = [data_quality_assertions_dataset.Assertion(assertion=label, success=False, actual=str(n))
                      for label, n in (o.get("expectations_failed") or {}).items()]
        checked = _table(place, staging, facets=about, inputFacets={
            "dataQualityMetrics": data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet(
                rowCount=o.get("rows_received") or 0, columnMetrics={}),
            "dataQualityAssertions": data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
                assertions=assertions)})
        return OperatorLineage(inputs=[checked], outputs=[
            _table(place, "ingest.quarantine", OutputDataset, about, outputFacets=_rows(o.get("rows_quarantined")))])
    if task_id == "load":
        outputs = []
        if o.get("status") == "loaded":
            outputs.append(_table(place, f"core.{o['extract']}", OutputDataset, about,
                                  outputFacets=_rows(o.get("rows_loaded"))))
        if o.get("receipt"):
            outputs.append(_file(o["receipt"], OutputDataset, about))
        return OperatorLineage(inputs=[_table(place, staging, facets=about)], outputs=outputs)
    return None


def _night(task_id: str, value, place) -> OperatorLineage | None:
    from crosscheck.contracts import contracts

    if task_id == "partition" and isinstance(value, dict):
        counts = value.get("findings") or {}
        inputs = [_table(place, f"core.{e}", facets={FACET: CrosscheckDatasetFacet(
            department=c.department, extract=e, row_key=ROW_KEY)}) for e, c in contracts().items()]
        return OperatorLineage(
            inputs=inputs,
            outputs=[_table(place, "mart.findings", OutputDataset, outputFacets=_rows(sum(counts.values())))],
            run_facets={FACET: CrosscheckNightRunFacet(partition=value.get("partition"), findings_by_rule=counts)})
    if task_id == "compare" and isinstance(value, dict):
        by_status = value.get("findings") or {}
        inputs = [_table(place, f"core.{f['extract']}", facets={FACET: CrosscheckDatasetFacet(
            department=f.get("department"), extract=f["extract"], as_of=f.get("data_as_of"), row_key=ROW_KEY)})
            for f in value.get("freshness") or []]
        tonight = sum(n for status in ("new", "open") for n in (by_status.get(status) or {}).values())
        return OperatorLineage(
            inputs=inputs,
            outputs=[_table(place, "mart.findings", OutputDataset, outputFacets=_rows(tonight)),
                     _table(place, "mart.indicators", OutputDataset)],
            run_facets={FACET: CrosscheckNightRunFacet(as_of=value.get("as_of"), findings_by_status=by_status)})
    if task_id == "publish" and isinstance(value, dict):
        return OperatorLineage(inputs=[_table(place, "mart.findings"), _table(place, "mart.indicators")],
                               outputs=[_file(p, OutputDataset) for p in value.values()])
    return None


def task_lineage(dag_id: str, task_id: str, value) -> OperatorLineage | None:
    """What the task ``task_id`` of ``dag_id`` read and wrote, from its return value (None: nothing)."""
    if dag_id.startswith("crosscheck_ingest_"):
        return _ingest(task_id, value, _warehouse_place())
    if dag_id == "crosscheck_nightly":
        return _night(task_id, value, _warehouse_place())
    return None


class CrosscheckExtractor(BaseExtractor):
    """The OpenLineage extractor of crosscheck's TaskFlow tasks (``@task`` → _PythonDecoratedOperator)."""

    @classmethod
    def get_operator_classnames(cls) -> list[str]:
        return ["_PythonDecoratedOperator"]

    def _execute_extraction(self) -> OperatorLineage | None:
        return None  # the START event: what a task touches is known when it is done

    def extract_on_complete(self, task_instance) -> OperatorLineage | None:
        value = task_instance.xcom_pull(task_ids=self.operator.task_id, map_indexes=task_instance.map_index)
        return task_lineage(self.operator.dag_id, self.operator.task_id, value)
