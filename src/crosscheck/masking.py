"""Personal data in what people read: one masking policy, and spreadsheet safety.

Everything written for people other than the analysts (report.html, work lists, the Airflow report
pages, Data Docs, logs, notifications) goes through ``for_people`` (a text) or ``row_for_people`` (a row
of a table).
``mismatches.csv`` is the analysts' file and keeps IDs in full; a department's own receipt may quote
its own rows back to it.

The policy, for any text:

1. ID-like runs are found on a folded copy of the text: digits of any script (full-width too) as ASCII,
   ``x``/``Ｘ`` as ``X``, spaces, dashes, dots, commas and underscores inside a run ignored. A run of an
   ID's length (15, 17, 18, 19 digits: a legacy ID, an 18-character one, a damaged one), or a longer or
   16-digit one with a birth date where an ID would carry it (an ID inside a longer number), keeps its
   first six digits (the region code) and its last four (three when shorter than 18); the rest, where
   any embedded ID's birth date lies, becomes ``*``. (A 16-digit payment serial number stays.)
2. The birth date of every ID of the row (the ID columns and every ID-like run in any of its texts, read
   at each place an ID could start) is removed from every text of the row in every spelling: ``19900101``,
   ``1990-01-01``, ``1990/1/1``, ``1990年1月1日``, ``900101``, ``01/01/1990``. Otherwise the masked
   digits of ``510224********5478`` could be read next to it and the whole ID rebuilt.
3. A stated check character (``校验位错误（最后一位应为7）``) is masked: with it the region, sequence
   and check character narrow the birth date down to a few candidates.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import date
from functools import lru_cache

ID_COLUMNS = ("id_number",)
ID_RUN_DIGITS = 15  # the shortest ID (legacy); shorter runs cannot hold region, birth date and sequence
ID_LENGTHS = (15, 17, 18, 19)  # an ID, one missing its check character, one with a stray digit: always masked


class _Fold(dict):
    """str.translate table folding each character to exactly one character (so spans map back 1:1)."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        folded = unicodedata.normalize("NFKC", ch)
        if len(folded) == 1 and folded in "0123456789":
            out = folded
        elif (value := unicodedata.decimal(ch, None)) is not None:
            out = str(value)
        elif folded in ("X", "x"):
            out = "X"
        elif ch in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029":
            out = "\n"  # a line break ends a number
        elif ch.isspace() or unicodedata.category(ch) in ("Zs", "Pd") or folded in (".", ",", "_", "·", "・"):
            out = " "  # separators people and spreadsheets put inside long numbers
        else:
            out = ch
        self[code] = out
        return out


_FOLD = _Fold()
# On the folded text: digits with at most a few separators between them, optionally a trailing X.
_RUN = re.compile(r"[0-9](?: {0,3}[0-9])*(?: {0,3}X)?")
# Dates, found at every position (a lookahead, so overlapping ones too) and not only where a number starts
# or ends: a birth date glued to other digits (``01/01/200001``) still reads as one.
_DATE_YMD = re.compile(r"(?=(?P<all>([0-9]{4}|[0-9]{2}) ?(?:[ /]|年) ?([0-9]{1,2}) ?(?:[ /]|月) ?([0-9]{1,2})"
                       r"(?:日|号)?))")
_DATE_DMY = re.compile(r"(?=(?P<all>([0-9]{1,2}) ?[ /] ?([0-9]{1,2}) ?[ /] ?([0-9]{4})))")
# A check character stated after the words that introduce it (校验位/校验码/最后一位/末位 … 为 7).
_CHECK_CLAIM = re.compile(r"(?:校验[位码]?|最后一位|末位|check (?:character|digit))[^0-9X。；;\n]{0,12}?"
                          r"(?:[为是:：]|should be|is) ?([0-9X])(?![0-9])", re.IGNORECASE)
_ANY_DIGIT = re.compile(r"\d")  # \d: decimal digits of every script, full-width included
_CLAIM_WORD = re.compile(r"校验|最后一位|末位|check", re.IGNORECASE)


def _fold(text: str) -> str:
    return text.translate(_FOLD)


def _digits(run: str) -> str:
    return run.replace(" ", "")


def _mask_run(run: str) -> str:
    chars = _digits(run)
    digits = chars.rstrip("X")
    if len(digits) < ID_RUN_DIGITS:
        return run
    if len(digits) not in ID_LENGTHS and not _date_windows(digits):
        return run  # e.g. a 16-digit payment serial number: no birth date where an ID would carry one
    tail = 4 if len(chars) >= 18 else 3
    return chars[:6] + "*" * (len(chars) - 6 - tail) + chars[-tail:]


def _plausible(y: int, m: int, d: int) -> date | None:
    try:
        day = date(y, m, d)
    except ValueError:
        return None
    return day if 1880 <= y <= 2100 else None


@lru_cache(maxsize=65536)
def _date_windows(d: str) -> frozenset[str]:
    """The birth dates a run of digits may carry, wherever in it an ID could start (a run may hold an ID
    and more digits): every 8 digits that read as a date where an 18-digit ID carries its birth date,
    every 6 that read as one where a legacy 15-digit ID does (with its 19YYMMDD)."""
    out: set[str] = set()
    for k in range(-1, len(d) - 13):  # -1: a run missing its first digit
        eight, six = d[k + 6:k + 14], d[k + 6:k + 12]
        if len(eight) == 8 and _plausible(int(eight[:4]), int(eight[4:6]), int(eight[6:])):
            out.add(eight)
        if len(six) == 6 and _plausible(1900 + int(six[:2]), int(six[2:4]), int(six[4:])):
            out |= {six, "19" + six}
    return frozenset(out)


def _birth_fragments(runs: Iterable[str]) -> set[str]:
    """Digit strings that spell a birth date of an ID inside these runs: the plausible ones, and for a
    run of an ID's length the raw 8 at its birth-date place (an impossible date is quoted back too)."""
    out: set[str] = set()
    for run in runs:
        d = _digits(run).rstrip("X")
        if len(d) < ID_RUN_DIGITS:
            continue
        if len(d) in ID_LENGTHS:
            out.add(d[6:14])
        out |= _date_windows(d)
    return out


def _id_runs(folded: str) -> list[str]:
    return [m.group(0) for m in _RUN.finditer(folded) if len(_digits(m.group(0)).rstrip("X")) >= ID_RUN_DIGITS]


def _date_key(y: str, m: str, d: str) -> list[str]:
    years = [int(y)] if len(y) == 4 else [1900 + int(y), 2000 + int(y)]
    keys = []
    for year in years:
        if _plausible(year, int(m), int(d)):
            keys.append(f"{year:04d}{int(m):02d}{int(d):02d}")
    return keys


def _star_digits(text: str) -> str:
    return "".join("*" if _FOLD[ord(ch)] in "0123456789" else ch for ch in text)


def _edit(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Replace spans of text; of overlapping spans the one starting first (the longest of equals) wins."""
    if not edits:
        return text
    out, pos = [], 0
    for start, end, replacement in sorted(edits, key=lambda e: (e[0], -(e[1] - e[0]))):
        if start < pos:
            continue
        out += [text[pos:start], replacement]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _claims(text: str) -> str:
    """3. stated check characters"""
    if not _CLAIM_WORD.search(text):
        return text
    return _edit(text, [(m.start(1), m.end(1), "*") for m in _CHECK_CLAIM.finditer(_fold(text))])


def _apply(text: str, fragments: set[str], own_runs: bool = True) -> str:
    """``own_runs``: add the birth dates of the text's own IDs (a row's were gathered from all its texts)."""
    if len(_ANY_DIGIT.findall(text)) < 4:
        return _claims(text)  # too few digits for an ID or a date
    folded = _fold(text)
    if own_runs:
        fragments = fragments | _birth_fragments(_id_runs(folded))
    # 1. ID-like runs
    edits = [(m.start(), m.end(), masked) for m in _RUN.finditer(folded)
             if (masked := _mask_run(m.group(0))) != m.group(0)]
    if edits:
        text = _edit(text, edits)
        folded = _fold(text)
    # 2. birth dates, on what step 1 left (a kept tail may now read as a date with what follows it)
    if fragments:
        edits = []
        for m in _RUN.finditer(folded):
            digits = _digits(m.group(0))
            if any(f in digits for f in fragments):  # written as one number: 19900101, 900101, 1990 0101
                edits.append((m.start(), m.end(), _star_digits(text[m.start():m.end()])))
        # a date spelling holds the year's last two digits: without any of them, no pattern can match
        spelled = any(f[-6:-4] in folded for f in fragments)
        for pattern, order in ((_DATE_YMD, (2, 3, 4)), (_DATE_DMY, (4, 3, 2)), (_DATE_DMY, (4, 2, 3))):
            if not spelled:
                break
            for m in pattern.finditer(folded):
                y, mo, d = (m.group(i) for i in order)
                # a day glued to a following digit (``2000-1-10``) may be a 1-digit day
                keys = _date_key(y, mo, d) + (_date_key(y, mo, d[0]) if pattern is _DATE_YMD and len(d) == 2 else [])
                if any(k in fragments for k in keys):
                    start, end = m.span("all")
                    edits.append((start, end, _star_digits(text[start:end])))
        text = _edit(text, edits)
    return _claims(text)


def for_people(text, ids: Iterable[str] = ()):
    """A text fit for wide distribution under the policy above; ``ids``: IDs belonging to the text (e.g. the
    row's ID column) whose birth dates must go too. Anything that is not a string is returned as it is."""
    if not isinstance(text, str) or not text:
        return text
    fragments = _birth_fragments(_id_runs(_fold("\n".join(i for i in ids if isinstance(i, str)))))
    if not fragments and not _ANY_DIGIT.search(text):
        return text  # no digit: nothing to mask (most names, towns, villages)
    return _apply(text, fragments)


def row_for_people(row: Mapping, id_columns: Iterable[str] = ID_COLUMNS, mask_ids: bool = True) -> dict:
    """A row of a table for people: every text under ``for_people`` with the birth dates of every ID of the
    whole row, the ID columns masked (left whole when ``mask_ids`` is off: ``worklist_mask_ids`` for trusted
    deployments). Values that are not text (dates, amounts) are kept."""
    id_columns = tuple(id_columns)
    digits = {k: len(_ANY_DIGIT.findall(v)) for k, v in row.items() if isinstance(v, str)}
    # only a text with enough digits can hold an ID whose birth date must leave the whole row
    fragments = _birth_fragments(_id_runs(_fold("\n".join(row[k] for k, n in digits.items()
                                                          if n >= ID_RUN_DIGITS))))
    out = {}
    for key, value in row.items():
        if key in id_columns and isinstance(value, str):
            out[key] = mask_id(value) if mask_ids else value
        elif key in digits:
            out[key] = _apply(value, fragments, own_runs=False) if digits[key] else _claims(value)
        else:
            out[key] = value
    return out


def mask_id(value: str | None) -> str | None:
    """An ID column's value: ``500151199001011234`` → ``500151********1234``.

    An ID-like value (spaces, full-width digits, 15, 17 or 19 digits) is masked as in a text; anything
    else (a damaged one as received, ``5.00151E+17``) keeps at most its first six and last four
    characters, so no full number leaks whatever its shape.
    """
    if value is None:
        return None
    text = str(value)
    masked = for_people(text)
    if masked != text:
        return masked
    if len(text) <= 10:
        return "*" * len(text)
    return text[:6] + "*" * (len(text) - 10) + text[-4:]


class RedactingFilter(logging.Filter):
    """Puts a log record's message (and traceback text) through ``for_people``."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    if getattr(record, "_crosscheck_redacted", False):
        return record
    try:
        message = record.getMessage()
    except Exception:  # a malformed record is the logging module's to report
        return record
    record.msg, record.args = for_people(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = for_people(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = for_people(record.exc_text)
    record._crosscheck_redacted = True
    return record


def install_log_redaction() -> None:
    """Redact every log record of this process when it is made, once: handlers configured later (Airflow's
    task log handler, a test's capture) then never see an unredacted message."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "_crosscheck_redacting", False):
        return
    log_filter = RedactingFilter()

    def make_record(*args, **kwargs):
        record = factory(*args, **kwargs)
        log_filter.filter(record)
        return record

    make_record._crosscheck_redacting = True
    logging.setLogRecordFactory(make_record)
    _redact_structlog_output()


def _redact_structlog_output() -> None:
    """Airflow writes some task-log lines itself through structlog, not through the standard library's
    records (a task's return value, the task instance with its map index): the line its renderer makes
    goes through ``for_people`` too."""
    try:
        import structlog
    except ImportError:
        return
    processors = list(structlog.get_config().get("processors") or [])
    if not processors or getattr(processors[-1], "_crosscheck_redacting", False):
        return
    render = processors[-1]

    def render_for_people(logger, method_name, event_dict):
        line = render(logger, method_name, event_dict)
        if isinstance(line, str):
            return for_people(line)
        if isinstance(line, bytes):
            return for_people(line.decode("utf-8", "replace")).encode("utf-8")
        return line

    render_for_people._crosscheck_redacting = True
    structlog.configure(processors=[*processors[:-1], render_for_people])


def hide_from_airflow_logs(*texts) -> None:
    """Register each text that carries an ID number (a dropped file's name, say) with Airflow's own log
    masking, which is applied to every line of a task's log: our record factory only reaches the standard
    library's records, while Airflow writes some lines itself through structlog (a task's return value,
    its map index). Airflow shows such a text as ***. Outside Airflow this does nothing."""
    sensitive = [t for t in texts if isinstance(t, str) and t and for_people(t) != t]
    if not sensitive:
        return
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:
        return
    for text in sensitive:
        mask_secret(text)


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value):
    """A text cell that a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value
