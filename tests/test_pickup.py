"""Pick-up: which entries of a drop folder are taken, which wait, which are refused — and that nothing is
ever followed, deleted or changed in landing. The last tests run the refusals through the warehouse and
check the receipts."""

from __future__ import annotations

import hashlib
import os
import stat
import time

import pytest
from helpers import csv_bytes, file_row, landing_path, make_settings, put, receipt, rows_of, unique_as_of

from crosscheck.pickup import archive, safe_display_name, scan
from crosscheck.pipeline import ingest_department


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path, max_file_bytes=64 * 1024)


def _snapshot(folder):
    """Every entry of a folder: name -> (kind, bytes or link target, mtime)."""
    out = {}
    for p in sorted(folder.iterdir()):
        st = p.lstat()
        if stat.S_ISLNK(st.st_mode):
            out[p.name] = ("link", os.readlink(p), st.st_mtime_ns)
        elif stat.S_ISFIFO(st.st_mode):
            out[p.name] = ("fifo", None, st.st_mtime_ns)
        elif stat.S_ISDIR(st.st_mode):
            out[p.name] = ("dir", sorted(x.name for x in p.iterdir()), st.st_mtime_ns)
        else:
            out[p.name] = ("file", p.read_bytes(), st.st_mtime_ns)
    return out


@pytest.fixture
def messy_folder(settings, tmp_path):
    """A hrss drop folder with one of everything; returns (as_of, the symlink's target outside landing)."""
    as_of = unique_as_of()
    d = f"{as_of:%Y%m%d}"
    folder = settings.landing_dir / "hrss"
    put(folder / f"enrollment_{d}.csv", csv_bytes("enrollment", rows_of("enrollment", {})))
    outside = put(tmp_path / "elsewhere" / "secret.csv", csv_bytes("training", rows_of("training", {})))
    (folder / f"training_{d}.csv").symlink_to(outside)
    (folder / f"jobs_{d}.csv").mkdir()
    (folder / f"jobs_{d}.csv" / "inner.csv").write_bytes(b"x")
    other = put(tmp_path / "elsewhere" / "linked.csv", csv_bytes("enrollment", rows_of("enrollment", {})))
    os.link(other, folder / f"pension_payments_{d}.csv")
    put(folder / "参保信息.csv", b"a,b\r\n")
    put(folder / f"enrollment_{d}.xls", b"\xd0\xcf\x11\xe0")
    put(folder / f"enrollment_{d}\x07.csv", b"a,b\r\n")
    put(folder / f"residents_{d}.csv", b"a,b\r\n")
    put(folder / "enrollment_20301332.csv", b"a,b\r\n")
    put(folder / f"training_{d}.parquet", b"\0" * (settings.max_file_bytes + 1))
    os.mkfifo(folder / f"deaths_{d}.csv")  # a pipe: opening it would hang pick-up
    put(folder / f"<b>{d}</b>.csv", b"a,b\r\n")  # markup in a name must not reach the HTML receipt
    put(folder / f".~lock.enrollment_{d}.csv#", b"lock")  # an editor's lock file: not a drop
    put(folder / f"enrollment_{d}.csv.done", b"")
    return as_of, outside


def test_scan_classifies_every_entry(settings, messy_folder):
    as_of, _ = messy_folder
    d = f"{as_of:%Y%m%d}"
    drops = {x.name: x for x in scan(settings.landing_dir, settings, ["hrss"])}
    assert f".~lock.enrollment_{d}.csv#" not in drops and f"enrollment_{d}.csv.done" not in drops
    assert drops[f"enrollment_{d}.csv"].state == "ready"
    assert (drops[f"enrollment_{d}.csv"].extract, drops[f"enrollment_{d}.csv"].as_of) == ("enrollment", as_of)
    reasons = {name: x.reason for name, x in drops.items() if x.state == "rejected"}
    assert set(reasons) == set(drops) - {f"enrollment_{d}.csv"}
    assert "符号链接" in reasons[f"training_{d}.csv"]
    assert "文件夹" in reasons[f"jobs_{d}.csv"]
    assert "硬链接" in reasons[f"pension_payments_{d}.csv"]
    assert "文件名或扩展名不符合约定" in reasons["参保信息.csv"]
    assert "文件名或扩展名不符合约定" in reasons[f"enrollment_{d}.xls"]
    assert "控制字符" in reasons[f"enrollment_{d}\x07.csv"]
    assert "不是本部门报送的数据项" in reasons[f"residents_{d}.csv"]
    assert "不是有效日期" in reasons["enrollment_20301332.csv"]
    assert "文件大小 64 KB 超过上限 64 KB" in reasons[f"training_{d}.parquet"]
    assert "不是普通文件" in reasons[f"deaths_{d}.csv"]
    assert all("enrollment_YYYYMMDD.csv" in reasons[n] for n in ("参保信息.csv", f"enrollment_{d}.xls"))


def test_quiet_period_and_done_marker(settings):
    as_of = unique_as_of()
    slow = make_settings(settings.var_dir.parent, quiet_period_seconds=60)
    path = put(landing_path(slow, "civil", "deaths", as_of), b"x", age=0)
    [drop] = scan(slow.landing_dir, slow, ["civil"])
    assert drop.state == "waiting" and "等待" in drop.reason
    [drop] = scan(slow.landing_dir, slow, ["civil"], now=time.time() + 61)
    assert drop.state == "ready"
    path.with_name(path.name + ".done").write_bytes(b"")
    [drop] = scan(slow.landing_dir, slow, ["civil"])
    assert drop.state == "ready"
    # a .done that is a symlink does not count
    path.with_name(path.name + ".done").unlink()
    path.with_name(path.name + ".done").symlink_to(path)
    assert [x.state for x in scan(slow.landing_dir, slow, ["civil"]) if x.path == path] == ["waiting"]


def test_archive_is_content_addressed_read_only_and_never_follows_links(settings, tmp_path):
    as_of = unique_as_of()
    data = csv_bytes("deaths", rows_of("residents", {}))
    path = put(landing_path(settings, "civil", "deaths", as_of), data)
    [drop] = scan(settings.landing_dir, settings, ["civil"])
    sha, archived = archive(drop, settings.archive_dir / "civil")
    assert sha == hashlib.sha256(data).hexdigest() and archived.read_bytes() == data
    assert archived.name == f"{sha}.csv" and archived.parent.name == sha[:2]
    assert not os.access(archived, os.W_OK) or os.geteuid() == 0
    assert stat.S_IMODE(archived.stat().st_mode) == 0o444
    assert archive(drop, settings.archive_dir / "civil") == (sha, archived)  # same bytes, same place
    assert path.read_bytes() == data  # landing untouched
    assert [p.name for p in (settings.archive_dir / "civil").rglob("*")] == [sha[:2], archived.name]
    # a drop swapped for a link after the scan is not followed
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere.csv")
    (tmp_path / "elsewhere.csv").write_bytes(b"other")
    with pytest.raises(OSError):
        archive(drop, settings.archive_dir / "civil")


def test_safe_display_name():
    assert safe_display_name("a\x07b\nc.csv") == "a\\x07b\\x0ac.csv"
    assert len(safe_display_name("数" * 300)) == 121


def test_refused_drops_get_receipts_and_stay_untouched(warehouse, settings, messy_folder):
    as_of, outside = messy_folder
    d = f"{as_of:%Y%m%d}"
    folder = settings.landing_dir / "hrss"
    before = _snapshot(folder)
    outside_before = (outside.read_bytes(), outside.stat().st_mtime_ns)
    outcomes = ingest_department(warehouse, "hrss", settings.landing_dir, settings)
    statuses = {o.file_name: o.status for o in outcomes}
    assert statuses.pop(f"enrollment_{d}.csv") == "loaded"
    assert set(statuses.values()) == {"rejected"} and len(statuses) == 11
    assert f"enrollment_{d}\\x07.csv" in statuses  # control characters shown, never written raw
    for o in outcomes:
        if o.status != "rejected":
            continue
        f = file_row(warehouse, o.file_id)
        assert (f["status"], f["sha256"], f["archive_path"]) == ("rejected", None, None)
        js, html = receipt(settings, "hrss", o.file_id)
        assert js["status"] == "rejected" and js["reason"] == f["reason"] and js["reason"] in html
        assert "拒收" in html
        assert "<b>" not in html
    # nothing in landing was deleted, changed or followed; the link's target was never archived
    assert _snapshot(folder) == before
    assert (outside.read_bytes(), outside.stat().st_mtime_ns) == outside_before
    archived = {p.name.split(".")[0] for p in settings.archive_dir.rglob("*") if p.is_file()}
    assert hashlib.sha256(outside.read_bytes()).hexdigest() not in archived
    assert len(archived) == 1
    # refusals are recorded once: a rerun adds nothing
    with warehouse.connect() as conn:
        count = conn.execute("SELECT count(*) FROM ingest.files").fetchone()[0]
    assert ingest_department(warehouse, "hrss", settings.landing_dir, settings) == []
    with warehouse.connect() as conn:
        assert conn.execute("SELECT count(*) FROM ingest.files").fetchone()[0] == count


def test_long_chinese_file_name_gets_a_receipt(warehouse, settings):
    name = f"铜梁区城乡居民养老保险参保信息{unique_as_of():%Y%m%d}" + "补充" * 32 + ".csv"  # 249 bytes
    assert 245 <= len(name.encode()) <= 255
    put(settings.landing_dir / "hrss" / name, b"a,b\r\n")
    [out] = ingest_department(warehouse, "hrss", settings.landing_dir, settings)
    assert out.status == "rejected" and out.file_name == name
    js, _ = receipt(settings, "hrss", out.file_id)
    assert js["file_name"] == name
