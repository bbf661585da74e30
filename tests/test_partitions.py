"""The partitioned night equals the unpartitioned one.

A generated deployment of two districts (Tongliang and the synthetic 示例区) is loaded once; the
night is then compared whole, by district and by town, in one process and step by step as the
nightly DAG does it (partitions in any order, one of them twice). Findings, their statuses and the
indicators must be the same every time.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from helpers import make_settings, night_state, throwaway_warehouse

from crosscheck.compare import compare_partition, finish_compare, prepare_compare
from crosscheck.generate import generate
from crosscheck.pipeline import compare_night, ingest_departments
from crosscheck.settings import DEPARTMENTS

D = date(2026, 11, 28)
DISTRICTS = ("500151", "500199")


@pytest.fixture(scope="module")
def deployment(warehouse_server, tmp_path_factory):
    """(warehouse, settings) with a two-district drop loaded, not yet compared."""
    tmp = tmp_path_factory.mktemp("two_districts")
    generate(tmp / "gen", persons=2500, seed=5, as_of=D, districts=DISTRICTS)
    settings = make_settings(tmp, landing_dir=tmp / "gen" / "landing", districts=DISTRICTS)
    with throwaway_warehouse(warehouse_server) as w:
        outcomes = ingest_departments(w, DEPARTMENTS, settings.landing_dir, settings)
        assert {o.status for o in outcomes} == {"loaded"}
        yield w, settings


@pytest.fixture(scope="module")
def whole(deployment) -> dict:
    w, settings = deployment
    result = compare_night(w, D, settings, gx=False, partition_by="none")
    assert result.total > 0
    return night_state(w, D)


def test_the_whole_night_covers_both_districts(whole):
    towns = {row[6] for row in whole["findings"]}
    assert any(t.startswith("示例") for t in towns if t) and any(not t.startswith("示例") for t in towns if t)
    scopes = {scope for _, scope, *_ in whole["indicators"]}
    assert {"district", "铜梁区", "示例区", "示例河镇", "巴川街道"} <= scopes
    rate = {scope: (n, d) for ind, scope, n, d, _ in whole["indicators"] if ind == "参保率"}
    assert rate["district"] == tuple(sum(x[i] for s, x in rate.items() if s in ("铜梁区", "示例区"))
                                     for i in (0, 1))


@pytest.mark.parametrize("by", ["district", "town"])
def test_partitioned_in_one_process_equals_the_whole(deployment, whole, by):
    w, settings = deployment
    compare_night(w, D, settings, gx=False, partition_by=by)
    assert night_state(w, D) == whole


@pytest.mark.parametrize("connections", [1, 3])
def test_rules_on_one_connection_or_several_equal_the_whole(deployment, whole, connections):
    """``whole`` ran the rule files on two connections side by side (the default); one after another
    on one connection, or on three, the night is the same."""
    w, settings = deployment
    compare_night(w, D, replace(settings, night_connections=connections), gx=False)
    assert night_state(w, D) == whole


def test_partitions_as_separate_steps_in_any_order_and_retried(deployment, whole):
    w, settings = deployment
    by_district = prepare_compare(w, D, settings, partition_by="district")
    assert [p["key"] for p in by_district] == ["铜梁区（500151）", "示例区（500199）"]
    partitions = prepare_compare(w, D, settings, partition_by="town")
    keys = [p["key"] for p in partitions]
    assert len(keys) > 30 and "示例湖镇" in keys
    assert len(partitions[0]["excluding"]) == len(keys) - 1  # the first one also takes unknown towns
    found = {}
    for partition in reversed(partitions):
        found[partition["key"]] = compare_partition(w, D, partition, settings)
    assert compare_partition(w, D, partitions[0], settings) == found[keys[0]]  # a retry replaces its rows
    finish_compare(w, D, settings, gx=False, night_id=partitions[0]["night_id"])
    assert night_state(w, D) == whole
    assert sum(sum(counts.values()) for counts in found.values()) == len(whole["findings"])


def test_a_partition_of_an_older_set_up_is_refused(deployment, whole):
    w, settings = deployment
    old = prepare_compare(w, D, settings, partition_by="district")
    prepare_compare(w, D, settings, partition_by="district")  # the night was set up again since
    with pytest.raises(RuntimeError, match="set up again"):
        compare_partition(w, D, old[0], settings)
    with w.connect() as conn:
        assert conn.execute("SELECT status FROM mart.runs WHERE as_of = %s", (D,)).fetchone()[0] == "failed"
    compare_night(w, D, settings, gx=False)
    assert night_state(w, D) == whole


def test_each_district_gets_its_own_files(deployment, whole, tmp_path):
    import csv

    from crosscheck.pipeline import publish_night

    w, settings = deployment
    compare_night(w, D, settings, gx=False)
    out = tmp_path / "out"
    publish_night(w, D, out, settings)

    def rows(path):
        with path.open(encoding="utf-8-sig") as f:
            return list(csv.DictReader(f))

    whole_kpis = {(r["indicator"], r["scope"]): r for r in rows(out / "kpis.csv")}
    everything = rows(out / "mismatches.csv")
    for code, name, synthetic in (("500151", "铜梁区", False), ("500199", "示例区", True)):
        folder = out / "districts" / code
        findings = rows(folder / "mismatches.csv")
        assert findings and all(r["town"].startswith("示例") == synthetic for r in findings)
        assert len(findings) == sum(1 for r in everything if r["town"] and r["town"].startswith("示例") == synthetic
                                    and r["town"] != "（镇街不详）")
        kpis = {(r["indicator"], r["scope"]): r for r in rows(folder / "kpis.csv")}
        assert kpis[("参保率", "district")]["numerator"] == whole_kpis[("参保率", name)]["numerator"]
        assert ("参保率", "示例河镇") in kpis if synthetic else ("参保率", "巴川街道") in kpis
        assert not any(scope in ("铜梁区", "示例区") for _, scope in kpis)
        assert f"<h1>{name}社保扶贫数据比对质量报告</h1>" in (folder / "report.html").read_text(encoding="utf-8")
    assert "<h1>铜梁区、示例区社保扶贫数据比对质量报告</h1>" in (out / "report.html").read_text(encoding="utf-8")
