"""Returned work lists (核查结论): guarded, checked row by row, stored, and answered with a receipt.

A work list (crosscheck.worklists) carries, in a very hidden sheet, its town, its night and the ids of
its findings with a keyed digest (HMAC-SHA256) of the three. The key is a deployment secret: the
environment variable ``CROSSCHECK_FEEDBACK_KEY``, else ``<var>/feedback.key``, created with mode 0600
on first use. A returned file is taken as follows:

1. **Guards**, the same as ingest's: a plain file (no link, folder or hard link), within
   ``max_file_bytes``, an .xlsx that is a real workbook within ``max_xlsx_uncompressed_bytes`` and
   without a zip-bomb member (crosscheck.pickup / crosscheck.read). Otherwise the file is refused whole.
2. **Digest**: a file without the hidden sheet, or whose town, night or ids no longer match their
   digest, is refused whole (the sheet can be unhidden and edited, but not re-signed without the key).
3. **Rows** with a 核查结论 are taken only when the 问题编号 is one of the list's own findings, the
   finding is still one of that town's findings of that night in the warehouse, and the row's rule,
   ID number and name still read as the work list wrote them; a finding with two verdicts in one
   file is refused in both rows. Everything else is refused row by row.

Each file gets a feedback receipt (HTML for the town, JSON twin) in ``<outbox>/feedback/``; ID
numbers appear in it masked only. ``apply_feedback_folder`` moves a file refused whole into
``<feedback>/rejected/`` so that it never stops a night; accepted files stay and are read again
(storing is idempotent per file).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path

import jinja2

from crosscheck.masking import for_people, mask_id, row_for_people
from crosscheck.outputs import VERDICTS, WORKLIST_COLUMNS
from crosscheck.pickup import oversize_reason, safe_display_name, unsafe_entry_reason
from crosscheck.read import FileRejected, _check_zip, _load_workbook
from crosscheck.settings import INCLUDE_DIR, Settings
from crosscheck.warehouse import Warehouse

log = logging.getLogger(__name__)

KEY_ENV = "CROSSCHECK_FEEDBACK_KEY"
KEY_FILE = "feedback.key"
SEAL_SHEET = "校验"
SEAL_VERSION = "crosscheck-worklist-v1"
REJECTED_DIR = "rejected"
RECEIPT_DIR = "feedback"
HEADER = dict(WORKLIST_COLUMNS)
CHECKED = ("rule_code", "id_number", "name")  # the visible columns a row must still show as written
MAX_FINDING_ID = 2**63 - 1  # bigint: a larger number is no finding (and must not reach PostgreSQL)
HEADER_SEARCH_ROWS = 60
MAX_NOTE = 2000  # characters of a 备注 kept  # the table's header is below the title and the rules' explanations


class FeedbackRefused(Exception):
    """A returned file refused whole; the message is the reason in Chinese, for the receipt."""


# ------------------------------------------------------------------------------------------- key


def feedback_key(settings: Settings) -> bytes:
    """The deployment's key: the environment's, else the key file under var/ (created once, 0600)."""
    if env := os.environ.get(KEY_ENV, "").strip():
        return env.encode("utf-8")
    path = settings.var_dir / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written under a private name and linked into place: two processes creating the key at once
        # agree on the first one, and nobody reads a half-written key.
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
            try:
                os.link(tmp, path)
                log.info("created the feedback key file under the var folder (mode 0600)")
            except FileExistsError:
                pass
        finally:
            tmp.unlink()
    if path.stat().st_mode & 0o077:
        log.warning("the feedback key file is readable by others than its owner: chmod 600 it")
    return path.read_text(encoding="ascii").strip().encode("ascii")


def _digest(key: bytes, town: str, as_of: str, finding_ids) -> str:
    message = "\x1f".join([SEAL_VERSION, town, as_of, ",".join(str(i) for i in sorted(finding_ids))])
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def seal_workbook(book, town: str, as_of: date, finding_ids, settings: Settings) -> None:
    """Add the very hidden sheet: A1 version, B1 town (as JSON, so no text is read as a formula),
    C1 night, D1 digest; the finding ids in column A from row 2."""
    sheet = book.create_sheet(SEAL_SHEET)
    ids = sorted(int(i) for i in finding_ids)
    sheet.append([SEAL_VERSION, json.dumps(town, ensure_ascii=False), as_of.isoformat(),
                  _digest(feedback_key(settings), town, as_of.isoformat(), ids)])
    for finding_id in ids:
        sheet.append([finding_id])
    sheet.sheet_state = "veryHidden"


# ---------------------------------------------------------------------------------------- reading


@dataclass
class Row:
    sheet: str
    row: int
    finding_id: str  # as written
    verdict: str
    note: str | None
    cells: dict[str, str]  # the checked columns as written
    taken: bool = False
    known: bool = False  # the 问题编号 is one of the list's own
    reason: str = ""
    rule_code: str = ""
    id_masked: str = ""


@dataclass
class FeedbackResult:
    file_name: str
    sha256: str | None
    received_at: str
    status: str = "refused"  # accepted | refused (the whole file)
    reason: str = ""
    town: str | None = None
    as_of: str | None = None
    rows: list[Row] = field(default_factory=list)
    unanswered: int = 0  # rows of the list without a verdict
    stored: int = 0
    receipt: Path | None = None

    @property
    def taken(self) -> int:
        return sum(r.taken for r in self.rows)

    @property
    def refused(self) -> int:
        return sum(not r.taken for r in self.rows)

    def summary(self) -> str:
        if self.status == "refused":
            return f"{safe_display_name(self.file_name)}: 整份文件未采用 / file refused: {self.reason}"
        return (f"{safe_display_name(self.file_name)}: {self.taken} 条结论采用、{self.refused} 条未采用 / "
                f"{self.taken} verdicts taken, {self.refused} refused")


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _note(text: str) -> str | None:
    """备注 as stored: control characters dropped (PostgreSQL text cannot hold NUL), length capped."""
    text = "".join(ch for ch in text if ch in "\n\t" or ch.isprintable())
    return text[:MAX_NOTE] or None


def _finding_id(text: str) -> int | None:
    """The 问题编号 as written → an id, or None (not a whole number, or beyond any finding)."""
    try:
        number = int(text)
    except ValueError:
        return None
    return number if 0 < number <= MAX_FINDING_ID else None


def _guard(path: Path, settings: Settings) -> None:
    """Ingest's guards (crosscheck.pickup, crosscheck.read): raise FeedbackRefused with the reason."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        raise FeedbackRefused("文件不存在") from None
    except OSError as exc:
        raise FeedbackRefused(f"无法读取文件（{exc.strerror}）") from None
    reason = unsafe_entry_reason(path.name, st) or oversize_reason(st.st_size, settings)
    if reason is None and path.suffix.lower() != ".xlsx":
        reason = "交回的清单应为本系统下发的.xlsx文件（请勿另存为其他格式）"
    if reason:
        raise FeedbackRefused(reason)
    try:
        _check_zip(path, settings.max_xlsx_uncompressed_bytes)
    except FileRejected as exc:
        raise FeedbackRefused(str(exc)) from None


def _read_seal(book, settings: Settings) -> tuple[str, str, set[int]]:
    if SEAL_SHEET not in book.sheetnames:
        raise FeedbackRefused("文件中没有本系统下发清单的校验信息（不是本系统下发的工作清单，或校验页被删除），"
                              "请使用下发的清单填写后交回")
    rows = list(book[SEAL_SHEET].iter_rows(values_only=True))
    try:
        version, town_json, as_of, digest = (_text(v) for v in rows[0][:4])
        town = json.loads(town_json)
        ids = {int(_text(r[0])) for r in rows[1:] if r and r[0] is not None}
        date.fromisoformat(as_of)
    except (IndexError, ValueError, TypeError):
        raise FeedbackRefused("清单的校验信息已损坏，整份文件未采用，请使用下发的清单重新填写") from None
    if version != SEAL_VERSION or not isinstance(town, str) or not hmac.compare_digest(
            digest.encode("utf-8"), _digest(feedback_key(settings), town, as_of, ids).encode("ascii")):
        raise FeedbackRefused("清单的校验信息与内容不符（问题编号、镇街或日期被改动，或不是本系统下发的清单），"
                              "整份文件未采用")
    return town, as_of, ids


def _read_rows(book) -> tuple[list[Row], int]:
    """The rows with a 核查结论 of every sheet with the 问题编号 and 核查结论 headers; and how many
    rows have none."""
    rows, unanswered = [], 0
    for sheet in book.worksheets:
        if sheet.title == SEAL_SHEET:
            continue
        columns = None
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [_text(v) for v in values]
            if columns is None:
                if HEADER["finding_id"] in cells and HEADER["verdict"] in cells:
                    columns = {h: i for i, h in enumerate(cells) if h}
                elif number > HEADER_SEARCH_ROWS:
                    break
                continue

            def cell(key, cells=cells, columns=columns):
                index = columns.get(HEADER[key])
                return cells[index] if index is not None and index < len(cells) else ""

            if not cell("verdict"):
                unanswered += bool(cell("finding_id"))
                continue
            rows.append(Row(sheet.title, number, cell("finding_id"), cell("verdict"), _note(cell("note")),
                            {key: cell(key) for key in CHECKED}))
    return rows, unanswered


def _check_rows(conn, rows: list[Row], town: str, as_of: str, ids: set[int], settings: Settings) -> None:
    """Mark each row taken or refused with its reason (see the module's docstring, step 3)."""
    from crosscheck.worklists import row_cells, town_bucket

    keys = [k for k, _ in WORKLIST_COLUMNS]
    parsed = {id(r): _finding_id(r.finding_id) for r in rows}
    wanted = sorted({i for i in parsed.values() if i in ids})
    cur = conn.execute(
        "SELECT f.*, EXISTS (SELECT 1 FROM mart.finding_nights n WHERE n.finding_id = f.finding_id "
        " AND n.as_of = %s AND n.status IN ('new', 'open')) AS on_list "
        "FROM mart.findings f WHERE f.finding_id = ANY(%s)", (as_of, wanted))
    names = [d.name for d in cur.description]
    found = {r["finding_id"]: r for r in (dict(zip(names, v, strict=True)) for v in cur.fetchall())}
    answers: dict[int, int] = {}
    for r in rows:
        if parsed[id(r)] is not None:
            answers[parsed[id(r)]] = answers.get(parsed[id(r)], 0) + 1
    for r in rows:
        finding_id, finding = parsed[id(r)], found.get(parsed[id(r)])
        r.known = finding_id in ids
        if finding:
            r.rule_code, r.id_masked = finding["rule_code"], mask_id(finding["id_number"]) or ""
        else:
            r.rule_code, r.id_masked = r.cells["rule_code"][:8], mask_id(r.cells["id_number"]) or ""
        if r.verdict not in VERDICTS:
            r.reason = f"核查结论不是“{'、'.join(VERDICTS)}”之一"
        elif finding_id is None:
            r.reason = "问题编号无效"
        elif finding_id not in ids:
            r.reason = "该问题不在本清单中：只能对本镇街本期清单中的问题给出结论"
        elif answers[finding_id] > 1:
            r.reason = f"同一问题在本文件中有{answers[finding_id]}条核查结论，均未采用，请只保留一条后重新交回"
        elif finding is None or not finding["on_list"] or town_bucket(finding["town"]) != town:
            r.reason = f"该问题已不是{town}（{as_of}）清单中的问题"
        else:
            written = {mask: dict(zip(keys, (_text(v) for v in row_cells(finding, mask)), strict=True))
                       for mask in (True, False)}
            changed = [HEADER[k] for k in CHECKED
                       if r.cells[k] != written[True][k] and r.cells[k] != written[False][k]]
            if changed:
                r.reason = "、".join(changed) + "与下发的清单不符（内容被改动），未采用"
            else:
                r.taken, r.reason = True, "已采用"


def apply_feedback(warehouse: Warehouse, xlsx_path: Path, settings: Settings) -> FeedbackResult:
    """Check and store the 核查结论 of one returned work list; write its feedback receipt.

    Storing is idempotent per file (same bytes, same name). A file refused whole is not moved here
    (see apply_feedback_folder); database errors propagate.
    """
    path = Path(xlsx_path)
    result = FeedbackResult(path.name, None, f"{datetime.now():%Y-%m-%d %H:%M:%S}")
    try:
        _guard(path, settings)
        data = path.read_bytes()
        result.sha256 = hashlib.sha256(data).hexdigest()
        try:
            book = _load_workbook(path)
        except FileRejected as exc:
            raise FeedbackRefused(str(exc)) from None
        try:
            town, as_of, ids = _read_seal(book, settings)
            result.town, result.as_of = town, as_of
            result.rows, result.unanswered = _read_rows(book)
        except FeedbackRefused:
            raise
        except Exception as exc:  # openpyxl parses sheets lazily: a damaged sheet fails only here
            log.warning("%s: cannot read: %s", safe_display_name(path.name), str(exc).splitlines()[0][:200])
            raise FeedbackRefused("Excel文件已损坏或格式不正确，无法读取，请重新填写下发的清单后交回") from None
        finally:
            book.close()
    except FeedbackRefused as exc:
        result.reason = str(exc)
        write_feedback_receipt(result, settings)
        log.warning("feedback %s", result.summary())
        return result
    result.status = "accepted"
    source = f"{path.name}#{result.sha256[:16]}"
    with warehouse.transaction() as conn:
        _check_rows(conn, result.rows, town, as_of, ids, settings)
        taken = [(r.verdict, r.note, source, int(r.finding_id)) for r in result.rows if r.taken]
        with conn.cursor() as cur:  # one round trip per batch, not per verdict
            cur.executemany(
                "INSERT INTO mart.feedback (finding_id, verdict, note, data_hash, source_file) "
                "SELECT finding_id, %s, %s, data_hash, %s FROM mart.findings WHERE finding_id = %s "
                "ON CONFLICT (finding_id, source_file) DO NOTHING", taken)
        result.stored = len(taken)
    write_feedback_receipt(result, settings)
    log.info("feedback %s", result.summary())
    return result


def apply_feedback_folder(warehouse: Warehouse, settings: Settings) -> list[FeedbackResult]:
    """Every returned work list in the feedback folder; a file refused whole is moved into
    ``rejected/`` (with its receipt in the outbox), so that it never stops this or a later night."""
    folder = settings.feedback_dir
    if not folder.is_dir():
        return []
    results = []
    for path in sorted(folder.iterdir()):
        if path.name == REJECTED_DIR or path.name.startswith(("~$", ".")):
            continue  # ours; Excel's lock files and hidden files
        result = apply_feedback(warehouse, path, settings)
        if result.status == "refused":
            _move_aside(path, folder / REJECTED_DIR, result.sha256)
        results.append(result)
    return results


def _move_aside(path: Path, rejected: Path, sha256: str | None) -> None:
    rejected.mkdir(exist_ok=True)
    target = rejected / path.name
    if target.exists() or target.is_symlink():
        target = rejected / f"{path.name}.{(sha256 or secrets.token_hex(8))[:16]}"
    shutil.move(str(path), str(target))  # a link is moved as a link, never followed


# ---------------------------------------------------------------------------------------- receipt


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(INCLUDE_DIR / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    return env.get_template("feedback_receipt.html.j2")


def receipt_data(result: FeedbackResult) -> dict:
    """What the receipt says: no cell is quoted back but the verdict, and the ID only masked."""
    rows = [row_for_people({"sheet": r.sheet, "row": r.row,
             # a 问题编号 is shown; anything longer typed there (an ID number?) only masked
             "finding_id": r.finding_id if r.known or (_finding_id(r.finding_id) and len(r.finding_id) <= 12)
             else mask_id(r.finding_id[:24]) or "",
             "rule_code": r.rule_code, "id_number": r.id_masked,
             "verdict": r.verdict if r.verdict in VERDICTS else mask_id(r.verdict[:24]) or "",
             "taken": r.taken, "reason": r.reason})  # the receipt goes to a town: the masking policy
            for r in result.rows]
    return {"file_name": for_people(safe_display_name(result.file_name)), "sha256": result.sha256,
            "received_at": result.received_at, "status": result.status,
            "status_zh": "已接收" if result.status == "accepted" else "整份文件未采用",
            "reason": result.reason, "town": result.town, "as_of": result.as_of,
            "taken": result.taken, "refused": result.refused, "unanswered": result.unanswered,
            "stored": result.stored, "rows": rows}


def write_feedback_receipt(result: FeedbackResult, settings: Settings) -> Path:
    """``<outbox>/feedback/<file>.<sha256[:12]>.receipt.{html,json}``; return the HTML path."""
    from crosscheck.receipts import _stem

    data = receipt_data(result)
    folder = settings.outbox_dir / RECEIPT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stem = _stem(safe_display_name(result.file_name), (result.sha256 or "0" * 12)[:12])
    (folder / f"{stem}.json").write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    result.receipt = folder / f"{stem}.html"
    result.receipt.write_text(_template().render(r=data), encoding="utf-8")
    return result.receipt


__all__ = ["FeedbackRefused", "FeedbackResult", "apply_feedback", "apply_feedback_folder", "feedback_key",
           "seal_workbook", "write_feedback_receipt"]
