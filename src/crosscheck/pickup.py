"""Pick-up: which files in landing/<dept>/ are ready, and archiving them before anything else.

Nothing here reads a file's content beyond hashing it, follows a link, or deletes anything.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from crosscheck.contracts import by_department
from crosscheck.settings import DEPARTMENTS, Settings

# The extension may be upper case (Windows users save RESIDENTS_20261128.CSV); the extract may not.
FILE_NAME = re.compile(r"^(?P<extract>[a-z_]+)_(?P<date>\d{8})\.(?P<ext>(?i:csv|xlsx|parquet))$")
FORMATS = {"csv": "csv", "xlsx": "xlsx", "parquet": "parquet"}
DONE_SUFFIX = ".done"
MAX_NAME_LENGTH = 120


@dataclass
class Drop:
    """One entry of a drop folder and what pick-up decided about it."""

    department: str
    path: Path
    state: str  # ready | waiting | rejected
    extract: str | None = None
    as_of: date | None = None
    format: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    reason: str | None = None  # Chinese, for the receipt, when rejected or waiting
    note: str | None = None  # Chinese, for the receipt of a file that won over another of its date

    @property
    def name(self) -> str:
        return self.path.name


def safe_display_name(name: str) -> str:
    """A file name fit for a receipt or a log line: control characters shown as escapes, length capped."""
    shown = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in name)
    return shown if len(shown) <= MAX_NAME_LENGTH else shown[:MAX_NAME_LENGTH] + "…"


def _size(n: int) -> str:
    """A size for a clerk; ':.0f MB' showed a 600 KB file as '1 MB 超过上限 0 MB'."""
    return f"{n / 1048576:.1f} MB" if n >= 1048576 else f"{n / 1024:.0f} KB"


def date_window(settings: Settings, now: float, night: date | None = None) -> tuple[date, date]:
    """The file dates that are plausible: from as_of_max_age_days before today (or before the night
    being run, when that is earlier: a replayed night) to as_of_max_future_days after today (or after
    the night, when that is later). 9999-12-31 or 0001-01-01 is a typo, never a snapshot."""
    today = date.fromtimestamp(now)
    night = night or today
    return (min(today, night) - timedelta(days=settings.as_of_max_age_days),
            max(today, night) + timedelta(days=settings.as_of_max_future_days))


def unsafe_entry_reason(name: str, st: os.stat_result) -> str | None:
    """Why an entry of a drop folder (landing, feedback) is not taken as a file, from its lstat: links
    are never followed, folders and special files never read; None when it is a plain file."""
    if stat.S_ISLNK(st.st_mode):
        return "这是一个符号链接（快捷方式），系统不会跟随链接读取，请直接放入文件本身"
    if stat.S_ISDIR(st.st_mode):
        return "这是一个文件夹，请只放入数据文件，不要建立子文件夹"
    if not stat.S_ISREG(st.st_mode):
        return "这不是普通文件，无法接收"
    if st.st_nlink > 1:
        return "该文件是硬链接（同一文件有多个名字），为防止被他处修改，请复制一份真实文件放入"
    if len(name) > MAX_NAME_LENGTH or any(not ch.isprintable() for ch in name):
        return "文件名过长或含有控制字符"
    return None


def oversize_reason(size: int, settings: Settings) -> str | None:
    if size > settings.max_file_bytes:
        return (f"文件大小 {_size(size)} 超过上限 {_size(settings.max_file_bytes)}，"
                "请拆分后分别报送或联系数据管理员")
    return None


def _classify(department: str, path: Path, settings: Settings, now: float,
              night: date | None = None) -> Drop | None:
    name = path.name
    drop = Drop(department, path, "rejected")
    try:
        st = path.lstat()
    except FileNotFoundError:  # vanished between listing and looking
        return None
    drop.size, drop.mtime_ns = st.st_size, st.st_mtime_ns
    if reason := unsafe_entry_reason(name, st):
        drop.reason = reason + ("，请按“数据项_YYYYMMDD.csv”命名" if reason.startswith("文件名") else "")
        return drop
    match = FILE_NAME.match(name)
    allowed = {c.extract: c for c in by_department(department)}
    expected = "、".join(f"{e}_YYYYMMDD.csv/.xlsx/.parquet" for e in allowed)
    if not match:
        drop.reason = f"文件名或扩展名不符合约定，应为：{expected}"
        return drop
    if match["extract"] not in allowed:
        drop.reason = f"“{match['extract']}”不是本部门报送的数据项，本部门应报送：{expected}"
        return drop
    try:
        drop.as_of = datetime.strptime(match["date"], "%Y%m%d").date()
    except ValueError:
        drop.reason = f"文件名中的日期 {match['date']} 不是有效日期（应为YYYYMMDD）"
        return drop
    earliest, latest = date_window(settings, now, night)
    if not earliest <= drop.as_of <= latest:
        drop.reason = (f"文件名中的数据日期 {drop.as_of:%Y-%m-%d} 不在合理范围内（应在 {earliest:%Y-%m-%d} 至 "
                       f"{latest:%Y-%m-%d} 之间），可能是日期写错，请核对文件名中的日期后重新报送")
        return drop
    drop.extract, drop.format = match["extract"], FORMATS[match["ext"].lower()]
    if reason := oversize_reason(st.st_size, settings):
        drop.reason = reason
        return drop
    done_marker = path.with_name(name + DONE_SUFFIX)
    if done_marker.is_file() and not done_marker.is_symlink():
        drop.state = "ready"
    elif now - st.st_mtime >= settings.quiet_period_seconds:
        drop.state = "ready"
    else:
        drop.state = "waiting"
        drop.reason = "文件可能仍在写入，等待其大小和修改时间稳定后再接收"
    return drop


def scan(landing_dir: Path, settings: Settings, departments=DEPARTMENTS, now: float | None = None,
         night: date | None = None) -> list[Drop]:
    """Every entry of landing/<dept>/ for the given departments, classified. Sorted for determinism.
    ``night``: the night being run, if any (it widens the plausible date window, see date_window)."""
    now = time.time() if now is None else now
    drops = []
    for department in departments:
        folder = landing_dir / department
        if not folder.is_dir() or folder.is_symlink():
            continue
        for path in sorted(folder.iterdir(), key=lambda p: p.name):
            if path.name.endswith(DONE_SUFFIX) and not path.is_symlink() and path.is_file():
                continue  # markers are read with their data file
            if path.name.startswith("."):
                continue  # hidden files: editors' and copy tools' temporary files
            drop = _classify(department, path, settings, now, night)
            if drop is not None:
                drops.append(drop)
    _settle_conflicts(drops)
    return drops


# Which of several files of one extract and date counts when their modification times are equal: the
# typed format first (no Excel damage, no encoding guess).
FORMAT_RANK = {"parquet": 2, "xlsx": 1, "csv": 0}


def _settle_conflicts(drops: list[Drop]) -> None:
    """Several files for the same extract and date in the drop folder (e.g. a CSV and a Parquet): the
    newest by modification time counts, ties broken by FORMAT_RANK, then the name sorting last. The others are refused, each
    receipt naming the file that counts, whose receipt names them — whatever order they are read in."""
    groups: dict[tuple, list[Drop]] = {}
    for drop in drops:
        if drop.state != "rejected" and drop.extract:
            groups.setdefault((drop.department, drop.extract, drop.as_of), []).append(drop)
    for group in groups.values():
        if len(group) < 2:
            continue
        group.sort(key=lambda d: (d.mtime_ns, FORMAT_RANK[d.format], d.name))
        winner = group[-1]

        def shown(d: Drop) -> str:
            return f"{safe_display_name(d.name)}（修改时间 {datetime.fromtimestamp(d.mtime_ns / 1e9):%Y-%m-%d %H:%M:%S}）"

        rule = "同一数据项同一日期收到多个文件时，以修改时间最新的文件为准（时间相同时依次优先 Parquet、XLSX、CSV，再按文件名排序在后者）"
        for loser in group[:-1]:
            loser.state = "rejected"
            loser.reason = f"同一数据日期还收到了 {shown(winner)}。{rule}，本文件未入库。如本文件才是正确的，请重新报送本文件"
        winner.note = f"同一数据日期还收到了 {'、'.join(shown(d) for d in group[:-1])}。{rule}，该日期以本文件为准"


def archive(drop: Drop, archive_dir: Path) -> tuple[str, Path]:
    """Copy the file into the content-addressed archive (read-only); return (sha256, archive path).

    The copy is hashed while it is written, so what is archived is exactly what was hashed, even if
    the sender touches the landing file meanwhile.
    """
    archive_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    tmp = archive_dir / f".incoming-{os.getpid()}-{drop.path.name[:60]}"
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(drop.path, flags)
    try:
        with os.fdopen(fd, "rb") as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                dst.write(chunk)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a read error half-way must not leave a partial copy behind
        raise
    sha = digest.hexdigest()
    target = archive_dir / sha[:2] / f"{sha}.{drop.format or 'bin'}"
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        tmp.unlink()
    else:
        os.chmod(tmp, 0o444)
        shutil.move(tmp, target)
    return sha, target
