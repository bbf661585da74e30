"""Publishing a night's outputs whole or not at all.

The out path (``reports/<date>/`` or ``--out DIR``) is a symlink onto a sibling folder, a *set*,
named ``.<name>~<UTC time>-<random>``. A night is written into a fresh set, and only when every file
is in place is the link switched with one ``os.replace`` of a new link: a reader (the bureau, the
Airflow report page) opens the previous night's set or the new one, never a mix, and a run killed
while writing leaves the previous set as it was. The link is relative, so the reports folder can
be moved or mounted elsewhere. After a switch, sets older than the new one are removed, except the
one just replaced (kept for a reader that opened it a moment ago); newer sets are a concurrent
publish in progress and are left alone.

The out path is checked before any work starts (``check_out``): it may not be a file, a symlink
not made here, a folder holding anything but a night's outputs, inside the landing folder, or
in a folder this process cannot write.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

# What a night writes into its folder (interface.md, README); a real folder holding only these is
# a night published before sets existed, and is adopted as a set.
OUTPUT_NAMES = frozenset({"mismatches.csv", "kpis.csv", "report.html", "worklists", "districts"})
_STAMP = re.compile(r"^\d{8}T\d{12}-[0-9a-f]{8}$")


class PublishError(Exception):
    """The out path cannot take a night's outputs; the message is one line (Chinese / English)."""


def _absolute(out: Path) -> Path:
    return Path(os.path.abspath(out))  # not resolve(): that would follow the link to the current set


def _prefix(out: Path) -> str:
    # "~", not ".": a date-named out path and the stamp would read as one long number ("2026-11-28.2026…"),
    # which the masking policy of the logs takes for an ID
    return f".{out.name}~"


def _set_name(out: Path, stamp: str) -> str:
    return _prefix(out) + stamp


def sets(out: Path) -> list[Path]:
    """The sets of an out path, oldest first (their names sort by creation time)."""
    out = _absolute(out)
    prefix = _prefix(out)
    if not out.parent.is_dir():
        return []
    found = [p for p in out.parent.iterdir()
             if p.name.startswith(prefix) and _STAMP.match(p.name[len(prefix):]) and p.is_dir()
             and not p.is_symlink()]
    return sorted(found, key=lambda p: p.name)


def is_set_of(out: Path, folder: Path) -> bool:
    out = _absolute(out)
    prefix = _prefix(out)
    return (folder.parent == out.parent and folder.name.startswith(prefix)
            and bool(_STAMP.match(folder.name[len(prefix):])))


def current(out: Path) -> Path | None:
    """The set the out path points at now (None: nothing published yet, or not a link of ours)."""
    out = _absolute(out)
    if not out.is_symlink():
        return None
    target = out.parent / os.readlink(out)
    return target if is_set_of(out, target) else None


def check_out(out: Path, landing: Path | None = None) -> Path:
    """Refuse an out path that cannot take a night, before any work starts; return it absolute."""
    out = _absolute(out)
    shown = str(out)
    if landing is not None:
        landing = Path(os.path.abspath(landing))
        real, real_landing = Path(os.path.realpath(out.parent)) / out.name, landing.resolve()
        if any(a.is_relative_to(b) or b.is_relative_to(a) for a, b in ((out, landing), (real, real_landing))):
            raise PublishError(f"输出目录不能在接收目录中 / --out {shown} is inside (or holds) the landing folder {landing}")
    if out.is_symlink():
        if current(out) is None:
            raise PublishError(f"输出路径是一个不由 crosscheck 建立的链接 / --out {shown} is a symlink crosscheck did not make")
    elif out.exists():
        if not out.is_dir():
            raise PublishError(f"输出路径已存在且是文件 / --out {shown} exists and is not a folder")
        foreign = sorted(p.name for p in out.iterdir() if p.name not in OUTPUT_NAMES)
        if foreign:
            raise PublishError(f"输出目录中有其他文件（{', '.join(foreign[:3])}），不会覆盖 / --out {shown} holds "
                               f"files that are not a night's outputs ({', '.join(foreign[:3])}); choose another folder")
    parent = out.parent
    while not parent.exists():  # the folders to be made must be makeable by us
        parent = parent.parent
    if not parent.is_dir():
        raise PublishError(f"输出目录的上级不是文件夹 / --out {shown}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PublishError(f"没有写入权限 / --out {shown}: cannot write in {parent}")
    return out


def new_set(out: Path) -> Path:
    """A fresh, empty set beside the out path (not yet visible through it)."""
    out = _absolute(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{secrets.token_hex(4)}"
    folder = out.parent / _set_name(out, stamp)
    folder.mkdir()
    return folder


def set_for(out: Path, name: str) -> Path:
    """The set of the out path with that name (as passed between Airflow tasks); refuses anything else."""
    folder = _absolute(out).parent / name
    if "/" in name or not is_set_of(out, folder) or not folder.is_dir():
        raise PublishError(f"没有这个输出集 / no publish set {name!r} for {out}")
    return folder


def _adopt_legacy(out: Path) -> Path | None:
    """A real folder at the out path (an empty one, or a night published before sets): make it a set,
    so the link can take its place; return that set. The path is missing for a moment, once."""
    if not out.is_dir() or out.is_symlink():
        return None
    if not any(out.iterdir()):
        out.rmdir()
        return None
    adopted = out.parent / _set_name(out, f"00000000T000000000000-{secrets.token_hex(4)}")  # the oldest set
    os.rename(out, adopted)
    return adopted


def switch(out: Path, folder: Path) -> Path | None:
    """Point the out path at ``folder`` (a set of it) in one step; return the set it pointed at before.
    Sets older than ``folder`` are removed, except that previous one."""
    out = _absolute(out)
    if not is_set_of(out, folder):
        raise PublishError(f"{folder} is not a publish set of {out}")
    _fsync_set(folder)  # the link must never outlive, after a power cut, the contents it points at
    previous = _adopt_legacy(out) or current(out)
    link = out.parent / f"{_prefix(out)}link-{secrets.token_hex(4)}"
    os.symlink(folder.name, link)
    try:
        os.replace(link, out)  # rename(2): atomic; readers see the old target or the new one
    except OSError:
        link.unlink(missing_ok=True)
        raise
    _fsync_dir(out.parent)
    for old in sets(out):
        if old.name < folder.name and old != previous:
            shutil.rmtree(old, ignore_errors=True)
    log.info("published %s (the link now points at its new set)", out)  # the set's stamp reads as a long number: masked in logs
    return previous


def _fsync_set(folder: Path) -> None:
    """Every file and folder of a set on disk: its files were written moments ago and may still be only in
    the page cache; a switch made durable before them could show empty or truncated files after a crash."""
    for path in sorted(folder.rglob("*"), reverse=True):  # files before the folders that hold them
        if path.is_symlink():
            continue
        if path.is_dir():
            _fsync_dir(path)
        else:
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    """Make the switch durable: the new link must not vanish again with a power cut."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def publishing(out: Path) -> Iterator[Path]:
    """Write into the yielded fresh set; on success the out path is switched to it, on an error the
    set is removed and the out path still shows the previous night's set."""
    folder = new_set(out)
    try:
        yield folder
    except BaseException:
        discard(folder)
        raise
    switch(out, folder)


def visible(out: Path, path: Path, folder: Path) -> Path:
    """A path written into ``folder`` as readers will reach it, through the out path."""
    return _absolute(out) / Path(path).relative_to(folder)
