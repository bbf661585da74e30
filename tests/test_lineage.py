"""OpenLineage events of a night: the four ingest DAGs and the nightly DAG run with `dag.test()` and the
OpenLineage provider writing to a file transport. From the events alone (plus the row's file_id and
row_number the warehouse keeps on every core row) a finding is traced to its file, row and department.

The DAGs run in a fresh Python process: the provider decides whether it is on, and registers its
listener, once per process when Airflow's plugins load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from test_dags import INGEST_DAGS, airflow_home, crosscheck_env, night_date, write_district  # noqa: F401 (fixtures)

from crosscheck.settings import ROOT

pytestmark = pytest.mark.xdist_group("airflow")

RUN_NIGHT = """
import sys
sys.path.insert(0, sys.argv[1])
from airflow.dag_processing.dagbag import DagBag
from test_dags import run_dag, task_states
bag = DagBag(dag_folder=sys.argv[2])
for dag_id in sys.argv[3:]:
    run, _ = run_dag(bag, dag_id)
    assert str(run.state) == "success", (dag_id, task_states(run))
"""


def _events(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _completed(events, job_suffix: str) -> list[dict]:
    return [e for e in events if e.get("eventType") == "COMPLETE" and e["job"]["name"].endswith(job_suffix)]


@pytest.mark.usefixtures("airflow_home", "crosscheck_env")
def test_a_finding_is_traced_to_file_row_and_department(fresh_warehouse, tmp_path):
    as_of = night_date()
    landing = write_district(tmp_path / "district", as_of, persons=600)
    events_file = tmp_path / "lineage.jsonl"
    env = {**os.environ, "CROSSCHECK_LANDING": str(landing),
           "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events_file),
                                                          "append": True}),
           "AIRFLOW__OPENLINEAGE__EXTRACTORS": "crosscheck.lineage.CrosscheckExtractor",
           "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",
           "AIRFLOW__OPENLINEAGE__NAMESPACE": "crosscheck"}
    done = subprocess.run([sys.executable, "-c", RUN_NIGHT, str(ROOT / "tests"), str(ROOT / "dags"),
                           *INGEST_DAGS, "crosscheck_nightly"], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    events = _events(events_file)

    # Ingest: every loaded file is an event whose input is the dropped file and output its core table,
    # both saying department, extract, file id and as-of; the row counts ride along.
    loads = {}
    for event in _completed(events, ".load"):
        core = [o for o in event["outputs"] if ".core." in o["name"]]
        if not core:
            continue
        about = core[0]["facets"]["crosscheck"]
        loads[about["file_id"]] = about
        assert core[0]["outputFacets"]["outputStatistics"]["rowCount"] > 0
    staged = {}
    for event in _completed(events, ".stage"):
        (dropped,) = event["inputs"]
        about = dropped["facets"]["crosscheck"]
        assert dropped["namespace"] == "file" and dropped["name"].endswith(f"/{about['department']}/{about['file_name']}")
        staged[about["file_id"]] = dropped
    validations = _completed(events, ".validate")
    assert validations and all("dataQualityAssertions" in e["inputs"][0]["inputFacets"] for e in validations)

    # The night: core tables in, findings out, with the findings per rule.
    partitions = _completed(events, ".partition")
    by_rule: dict[str, int] = {}
    for event in partitions:
        for rule, n in event["run"]["facets"]["crosscheck"]["findings_by_rule"].items():
            by_rule[rule] = by_rule.get(rule, 0) + n
    (compare,) = _completed(events, "crosscheck_nightly.compare")
    used = {(i["facets"]["crosscheck"]["extract"], i["facets"]["crosscheck"]["as_of"]) for i in compare["inputs"]}
    assert any(o["name"].endswith(".mart.findings") for o in compare["outputs"])
    (publish,) = _completed(events, "crosscheck_nightly.publish")
    assert any(o["name"].endswith("/report.html") for o in publish["outputs"])

    # One finding of tonight, followed back: its rule was counted, its person's row in core names a
    # file_id and row_number; the load event of that file_id is the snapshot the night used, and the
    # stage event names the dropped file and its department.
    with fresh_warehouse.connect() as conn:
        rule, id_number = conn.execute(
            "SELECT f.rule_code, f.id_number FROM mart.findings f JOIN mart.finding_nights n USING (finding_id) "
            "WHERE n.as_of = %s AND f.rule_code = 'SS01' LIMIT 1", (as_of,)).fetchone()
        file_id, row_number = conn.execute(
            "SELECT file_id, row_number FROM core.residents WHERE id_number = %s AND as_of = %s",
            (id_number, as_of)).fetchone()
    assert by_rule.get(rule, 0) > 0
    assert loads[file_id]["extract"] == "residents" and (loads[file_id]["extract"], loads[file_id]["as_of"]) in used
    assert loads[file_id]["row_key"] == ["file_id", "row_number"] and row_number >= 1
    dropped = staged[file_id]["facets"]["crosscheck"]
    assert dropped["department"] == "civil" and dropped["file_name"].startswith("residents_")
