"""Two nights of the same district (crosscheck generate --since) through the real pipeline: the second
night's findings are new, open and resolved exactly as the two nights' truth files say, mostly open."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from helpers import throwaway_warehouse
from test_night import crosscheck

FIRST, SECOND = "2026-11-28", "2026-12-01"  # three days and a new month (November's payments)
pytestmark = pytest.mark.xdist_group("night")


def _keys(path: Path) -> dict[tuple[str, str, str], str]:
    with path.open(encoding="utf-8-sig") as f:
        return {(r["rule_code"], r["id_number"], r.get("period") or ""): r.get("status", "")
                for r in csv.DictReader(f)}


def test_second_night_of_the_same_people_is_mostly_open(tmp_path, warehouse_server):
    out, var = tmp_path / "district", tmp_path / "var"
    same = ("--out", str(out), "--persons", "3000", "--seed", "11")
    crosscheck("generate", *same, "--date", FIRST)
    crosscheck("generate", *same, "--date", SECOND, "--since", FIRST)  # into the same landing folder
    env = {"CROSSCHECK_VAR": str(var)}
    with throwaway_warehouse(warehouse_server) as w:
        for night in (FIRST, SECOND):
            crosscheck("run", "--landing", str(out / "landing"), "--date", night, "--warehouse", w.url,
                       "--out", str(var / night), env=env)
    truth1 = set(_keys(out / "truth.csv"))
    truth2 = set(_keys(out / f"truth_{SECOND.replace('-', '')}.csv"))
    found = _keys(var / SECOND / "mismatches.csv")
    by_status = {s: {k for k, v in found.items() if v == s} for s in ("new", "open", "resolved")}
    assert by_status["open"] == truth1 & truth2
    assert by_status["new"] == truth2 - truth1
    assert by_status["resolved"] == truth1 - truth2
    assert by_status["new"] and by_status["resolved"]
    assert len(by_status["open"]) > 3 * (len(by_status["new"]) + len(by_status["resolved"]))
    assert any(k[2] == "2026-11" for k in by_status["new"]), "a payment of the new month is a finding"
