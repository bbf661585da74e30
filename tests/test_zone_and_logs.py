"""Times in the users' zone with the zone stated (receipts, log lines), and logs without library chatter."""

from __future__ import annotations

import json
import re
from datetime import date

from test_night import crosscheck

from crosscheck.generate import generate
from crosscheck.receipts import write_receipt


def test_receipt_prints_the_shanghai_time_and_says_so(warehouse, tmp_path):
    """Received at 17:03 UTC on 1 December: in Shanghai it is already 01:03 on 2 December."""
    with warehouse.connect() as conn:
        file_id = conn.execute(
            "INSERT INTO ingest.files (department, file_name, received_at, status, reason) "
            "VALUES ('civil', 'residents_20261201.csv', '2026-12-01 17:03:00+00', 'rejected', '测试') "
            "RETURNING file_id").fetchone()[0]
    html = write_receipt(warehouse, file_id, tmp_path)
    shown = "2026-12-02 01:03:00 北京时间（UTC+8）"
    assert shown in html.read_text(encoding="utf-8")
    assert json.loads(html.with_suffix(".json").read_text(encoding="utf-8"))["received_at"] == shown


def test_a_small_run_logs_counts_not_library_noise(tmp_path, warehouse_server):
    from helpers import throwaway_warehouse

    generate(tmp_path / "d", 500, 2, date(2026, 11, 28))
    with throwaway_warehouse(warehouse_server) as w:
        run = crosscheck("run", "--landing", str(tmp_path / "d" / "landing"), "--date", "2026-11-28",
                         "--warehouse", w.url, "--out", str(tmp_path / "out"),
                         env={"CROSSCHECK_VAR": str(tmp_path / "var")})
    lines = run.stderr.splitlines()
    noise = [x for x in lines if re.search(r"great_expectations|matplotlib|py\.warnings|Skipping registering", x)]
    assert not noise, noise[:5]
    counts = [x for x in lines if re.search(r"crosscheck\.pipeline: .*: loaded — received \d+, loaded \d+", x)]
    assert len(counts) == 9, lines  # one line per extract with its counts
    stamped = [x for x in lines if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+08:00 (INFO|WARNING) ", x)]
    assert stamped and len(stamped) == len([x for x in lines if re.match(r"\d{4}-\d\d-\d\d ", x)])
