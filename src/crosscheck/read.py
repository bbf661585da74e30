"""Reading a drop file (CSV, XLSX, Parquet) into Arrow record batches, streaming, with the contract's headers.

``open_extract(path, contract)`` inspects the file (format, encoding, sheet, header row, header mapping)
and raises ``FileRejected`` (Chinese ``reason`` for the receipt, ``details`` dict) for file-level
problems. ``Extract.batches()`` then yields ``pyarrow.RecordBatch`` es with one string column per
contract column (canonical names, contract order; null when empty or when an optional column is
absent) plus ``_row`` (int64), the row number a clerk sees:

* CSV: the 1-based physical line number in the file (quoted fields spanning several lines are counted;
  a record spanning lines gets the number of its first line);
* XLSX: the Excel row number;
* Parquet: the 1-based data row index + 1 (as if a header occupied line 1).

Values are the raw strings as received. XLSX cells are turned into strings the normaliser understands:
date cells -> ``YYYY-MM-DD`` (``YYYY-MM-DD HH:MM:SS`` if there is a time), integer numbers -> digits,
other numbers -> ``repr``; a number of 16+ digits in an ``id_number`` column is kept in its damaged
float form (``5.00151199001011e+17``) so that ``normalise_id`` reports ID02.

Fully blank rows (blank lines, ``,,,,`` rows, empty Excel rows) are skipped. CSV rows whose number of
fields does not match the header are never lost: rows whose surplus/missing fields are only
unmapped/blank ones are repaired and yielded (at the end, with their true line number); the others
are collected in ``Extract.invalid_rows`` (complete once ``batches()`` has been exhausted).
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import re
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crosscheck.contracts import Contract
from crosscheck.settings import get_settings

ROW_COLUMN = "_row"
HEADER_SEARCH_ROWS = 20
MAX_MEMBER_RATIO = 250  # XLSX zip members compressed more than this (and above 1 MiB) look like a bomb
_CHUNK = 1 << 20
_TRUNCATED = "该行列数不对（可能文件被截断）"


class FileRejected(Exception):
    """A file-level rejection: ``reason`` (Chinese, for the receipt) and ``details`` (machine-readable)."""

    def __init__(self, reason: str, details: dict | None = None):
        super().__init__(reason)
        self.reason = reason
        self.details = details or {}


class InvalidRow(NamedTuple):
    """A CSV row that could not be parsed (wrong number of fields); a tuple (row, reason, raw)."""

    row: int | None  # line number a clerk sees (None if unknown)
    reason: str
    raw: str


# ------------------------------------------------------------------------------------------- headers

_HEADER_DROP = re.compile(r"[\s\u200b\u200c\u200d\u2060\ufeff]+")
_BRACKETS = str.maketrans(
    {"【": "(", "】": ")", "[": "(", "]": ")", "〔": "(", "〕": ")", "{": "(", "}": ")"}
)


def header_key(header: Any) -> str:
    """Matching form of a header: NFKC (full-width -> half-width, （）-> ()), no whitespace, any bracket -> ()."""
    if header is None:
        return ""
    s = unicodedata.normalize("NFKC", str(header))
    return _HEADER_DROP.sub("", s).translate(_BRACKETS).casefold()


@dataclass
class _Match:
    mapping: dict[str, int]
    found: list[tuple[str, str]]  # (header as found, canonical name)
    missing_required: list[str]  # contract headers
    extras: list[str]
    duplicates: list[str]


def _match(headers: list[Any], contract: Contract) -> _Match:
    keys = {}
    for col in contract.columns:
        for h in col.headers:
            keys.setdefault(header_key(h), col.name)
    mapping: dict[str, int] = {}
    extras, duplicates = [], []
    for i, h in enumerate(headers):
        k = header_key(h)
        if not k:
            continue
        name = keys.get(k)
        if name is None:
            extras.append(str(h).strip())
        elif name in mapping:
            duplicates.append(str(h).strip())
        else:
            mapping[name] = i
    missing = [c.header for c in contract.columns if c.required and c.name not in mapping]
    found = [(str(headers[i]), name) for name, i in sorted(mapping.items(), key=lambda kv: kv[1])]
    return _Match(mapping, found, missing, extras, duplicates)


def _closest(missing: list[str], contract: Contract, headers: list[Any]) -> dict[str, list[str]]:
    present = [str(h).strip() for h in headers if header_key(h)]
    by_key = {header_key(h): h for h in present}
    out = {}
    for header in missing:
        col = next(c for c in contract.columns if c.header == header)
        scores: dict[str, float] = {}
        for alias in col.headers:
            for k, h in by_key.items():
                r = difflib.SequenceMatcher(None, header_key(alias), k).ratio()
                scores[h] = max(scores.get(h, 0.0), r)
        best = sorted((h for h, r in scores.items() if r >= 0.4), key=lambda h: -scores[h])[:3]
        out[header] = best
    return out


def _reject_missing(m: _Match, contract: Contract, headers: list[Any], where: str = "") -> FileRejected:
    closest = _closest(m.missing_required, contract, headers)
    hints = []
    for header in m.missing_required:
        if closest[header]:
            hints.append(f"「{header}」最接近的列名：{'、'.join('「' + h + '」' for h in closest[header])}")
    reason = f"{where}缺少必需的列：{'、'.join(m.missing_required)}。"
    if hints:
        reason += "；".join(hints) + "。"
    reason += "请按约定的列名重新导出。"
    return FileRejected(
        reason,
        {
            "missing_columns": m.missing_required,
            "closest_headers": closest,
            "headers_found": [str(h).strip() for h in headers if header_key(h)],
        },
    )


def match_headers(headers: list[str], contract: Contract) -> dict[str, int]:
    """Map canonical column name -> source index; FileRejected when a required column is missing."""
    m = _match(headers, contract)
    if m.missing_required:
        raise _reject_missing(m, contract, headers)
    return m.mapping


def _header_warnings(m: _Match) -> list[str]:
    out = []
    if m.extras:
        out.append(f"已忽略约定之外的列：{'、'.join(m.extras)}")
    if m.duplicates:
        out.append(f"以下列重复出现，只使用第一次出现的列：{'、'.join(m.duplicates)}")
    return out


def _find_header(rows: list[list[Any]], contract: Contract) -> tuple[int, _Match]:
    """Index of the first row (within the first rows given) that has every required column."""
    best: tuple[int, int, _Match] | None = None
    for i, row in enumerate(rows):
        m = _match(row, contract)
        if not m.missing_required:
            return i, m
        if m.mapping and (best is None or len(m.mapping) > best[1]):
            best = (i, len(m.mapping), m)
    if best is None:
        row = next((r for r in rows if any(header_key(v) for v in r)), [])
        m = _match(row, contract)
        raise _reject_missing(m, contract, row, "找不到表头行，")
    i, _, m = best
    raise _reject_missing(m, contract, rows[i])


# ------------------------------------------------------------------------------------------- extract


@dataclass
class Extract:
    path: Path
    contract: Contract
    format: str  # 'csv' | 'xlsx' | 'parquet'
    header_row: int  # 1-based line (CSV) / row (XLSX) of the header; 1 for Parquet
    header_mapping: list[tuple[str, str]]  # (header as found, canonical name)
    encoding: str | None = None  # CSV only: 'utf-8', 'utf-8-sig' or 'gb18030'
    sheet: str | None = None  # XLSX only
    warnings: list[str] = field(default_factory=list)
    invalid_rows: list[InvalidRow] = field(default_factory=list)
    _mapping: dict[str, int] = field(default_factory=dict, repr=False)
    _ncols: int = 0  # CSV: number of header fields
    _record_offset: int = 0  # CSV: physical lines minus logical records before the first data record
    _workbook: Any = field(
        default=None, repr=False
    )  # XLSX: the workbook (_CalamineBook or _OpenpyxlBook) opened by open_extract (reused once)

    @property
    def columns(self) -> list[str]:
        return [*self.contract.column_names, ROW_COLUMN]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(
            [*(pa.field(n, pa.string()) for n in self.contract.column_names), (ROW_COLUMN, pa.int64())]
        )

    def close(self) -> None:
        """Release the XLSX workbook kept open by open_extract (batches() closes it when exhausted)."""
        wb, self._workbook = self._workbook, None
        if wb is not None:
            wb.close()

    def __enter__(self) -> Extract:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def batches(self, batch_size: int = 100_000) -> Iterator[pa.RecordBatch]:
        """Stream the rows (once for CSV invalid rows: ``invalid_rows`` is complete after exhaustion)."""
        if self.format == "csv":
            return self._csv_batches(batch_size)
        if self.format == "xlsx":
            return self._xlsx_batches(batch_size)
        return self._parquet_batches(batch_size)

    # -- helpers
    def _assemble(self, source: dict[str, pa.Array], rows: pa.Array, length: int) -> pa.RecordBatch:
        arrays = []
        for name in self.contract.column_names:
            arr = source.get(name)
            arrays.append(arr if arr is not None else pa.nulls(length, pa.string()))
        arrays.append(rows)
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    # -- CSV
    def _csv_batches(self, batch_size: int) -> Iterator[pa.RecordBatch]:
        import pyarrow.csv as pacsv

        names = [f"f{i}" for i in range(self._ncols)]
        pending: list[tuple[int, str]] = []  # (logical record number, text) of invalid rows

        def on_invalid(row) -> str:
            pending.append((row.number if row.number is not None else -1, row.text))
            return "skip"

        reader = pacsv.open_csv(
            self.path,
            read_options=pacsv.ReadOptions(
                encoding="utf8" if self.encoding in ("utf-8", "utf-8-sig") else self.encoding,
                skip_rows=self.header_row_records,
                column_names=names,
                use_threads=False,  # row numbers of invalid rows are only known single-threaded
                block_size=8 << 20,
            ),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=True, ignore_empty_lines=False, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=True,
                null_values=[""],
                quoted_strings_can_be_null=True,
            ),
        )
        sel = {name: f"f{i}" for name, i in self._mapping.items()}
        next_record = self.header_row_records + 1  # logical record number (1-based) of the next record
        extra = self._record_offset  # physical lines - logical records so far
        salvaged: list[tuple[int, list[str]]] = []

        def take_invalid(number: int, text: str) -> None:
            nonlocal extra
            line = number + extra
            extra += text.count("\n")
            self._invalid(line, text, salvaged)

        for batch in reader:
            n = batch.num_rows
            if n == 0:
                continue
            cols = batch.columns
            nl = None
            for c in cols:
                if c.null_count < n and pc.any(pc.match_substring(c, "\n")).as_py():
                    counts = pc.fill_null(pc.count_substring(c, "\n"), 0).to_numpy(zero_copy_only=False)
                    nl = counts if nl is None else nl + counts
            pending.sort()
            first_window = [p for p in pending if 0 < p[0] < next_record + n + len(pending)]
            if not first_window:
                records = np.arange(next_record, next_record + n, dtype=np.int64)
                if nl is None:
                    lines = records + extra
                else:
                    lines = records + extra + (np.cumsum(nl) - nl)
                    extra += int(nl.sum())
                next_record += n
            else:  # interleave the skipped invalid rows (slow path; rare)
                lines = np.empty(n, dtype=np.int64)
                inv = {p[0]: p[1] for p in pending if p[0] > 0}
                for k in range(n):
                    while next_record in inv:
                        take_invalid(next_record, inv.pop(next_record))
                        next_record += 1
                    lines[k] = next_record + extra
                    if nl is not None:
                        extra += int(nl[k])
                    next_record += 1
                pending[:] = [p for p in pending if p[0] <= 0 or p[0] in inv]
            # drop fully blank rows (blank lines, ",,,,")
            valid = None
            for c in cols:
                if c.null_count < n:
                    v = pc.is_valid(c)
                    valid = v if valid is None else pc.or_(valid, v)
            if valid is None:
                continue
            rows = pa.array(lines, pa.int64())
            source = {name: batch.column(f) for name, f in sel.items()}
            out = self._assemble(source, rows, n)
            if valid.false_count:
                out = out.filter(valid)
            if out.num_rows:
                yield from _split(out, batch_size)
        for number, text in sorted(pending):
            if number > 0:
                take_invalid(number, text)
            else:
                self._invalid(None, text, salvaged)
        if salvaged:
            yield from _split(self._rows_to_batch(salvaged), batch_size)

    @property
    def header_row_records(self) -> int:
        """Logical CSV records up to and including the header (skip_rows for Arrow)."""
        return self.header_row - self._record_offset

    def _invalid(self, line: int | None, text: str, salvaged: list[tuple[int, list[str]]]) -> None:
        """A CSV row with the wrong number of fields: repair it when only blank/unmapped fields differ."""
        stripped = text.strip()
        if not stripped or not stripped.strip(","):
            return  # blank
        try:
            fields = next(csv.reader(io.StringIO(text)), [])
        except csv.Error:
            fields = []
        used = max(self._mapping.values(), default=-1) + 1
        surplus = fields[self._ncols :]
        if fields and len(fields) >= used and not any(f.strip() for f in surplus):
            if line is not None:
                salvaged.append((line, fields[: self._ncols]))
                return
        self.invalid_rows.append(
            InvalidRow(
                line,
                f"第{line}行{_TRUNCATED}：应有{self._ncols}列，实际{len(fields)}列" if line else _TRUNCATED,
                text,
            )
        )

    def _rows_to_batch(self, rows: list[tuple[int, list[Any]]]) -> pa.RecordBatch:
        source = {}
        for name, i in self._mapping.items():
            source[name] = pa.array(
                [(r[i] if i < len(r) and r[i] != "" else None) for _, r in rows], pa.string()
            )
        return self._assemble(source, pa.array([n for n, _ in rows], pa.int64()), len(rows))

    # -- XLSX
    def _xlsx_batches(self, batch_size: int) -> Iterator[pa.RecordBatch]:
        # loading a workbook parses its shared strings (seconds for big files): reuse the one from open_extract
        book, self._workbook = self._workbook, None
        if book is None:
            book = _open_book(self.path)
        try:
            if isinstance(book, _CalamineBook):
                try:  # read whole before the first batch is yielded: a value it reads differently may come last
                    batches = list(self._xlsx_read(book, batch_size))
                except _NotAlike:
                    book.close()
                    book = _OpenpyxlBook(self.path)
                else:
                    yield from batches
                    return
            yield from self._xlsx_read(book, batch_size)
        finally:
            book.close()

    def _xlsx_read(self, book, batch_size: int) -> Iterator[pa.RecordBatch]:
        conv = {i: _cell_converter(self.contract.column(name).type) for name, i in self._mapping.items()}
        names = {i: name for name, i in self._mapping.items()}
        buf: dict[int, list] = {i: [] for i in names}
        rownums: list[int] = []
        for r, row in book.rows(self.sheet, self.header_row + 1):
            if not any(v is not None and (not isinstance(v, str) or v.strip()) for v in row):
                continue
            width = len(row)
            for i, f in conv.items():
                buf[i].append(f(row[i]) if i < width else None)
            rownums.append(r)
            if len(rownums) >= batch_size:
                yield self._xlsx_batch(buf, names, rownums)
                buf = {i: [] for i in names}
                rownums = []
        if rownums:
            yield self._xlsx_batch(buf, names, rownums)

    def _xlsx_batch(self, buf: dict[int, list], names: dict[int, str], rownums: list[int]) -> pa.RecordBatch:
        source = {names[i]: pa.array(vals, pa.string()) for i, vals in buf.items()}
        return self._assemble(source, pa.array(rownums, pa.int64()), len(rownums))

    # -- Parquet
    def _parquet_batches(self, batch_size: int) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(self.path)
        names = pf.schema_arrow.names
        wanted = {name: names[i] for name, i in self._mapping.items()}
        start = 0
        for batch in pf.iter_batches(batch_size=batch_size, columns=sorted(set(wanted.values()))):
            n = batch.num_rows
            source = {name: _to_string(batch.column(src)) for name, src in wanted.items()}
            rows = pa.array(np.arange(start + 2, start + 2 + n, dtype=np.int64))
            start += n
            out = self._assemble(source, rows, n)
            valid = None
            for arr in source.values():
                v = pc.is_valid(arr)
                valid = v if valid is None else pc.or_(valid, v)
            if valid is not None and valid.false_count:
                out = out.filter(valid)
            if out.num_rows:
                yield out


def _split(batch: pa.RecordBatch, size: int) -> Iterator[pa.RecordBatch]:
    if batch.num_rows <= size:
        yield batch
        return
    for off in range(0, batch.num_rows, size):
        yield batch.slice(off, size)


def _to_string(arr: pa.Array) -> pa.Array:
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
        t = arr.type
    if pa.types.is_timestamp(t):
        arr = arr.cast(pa.date32())
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    if pc.min(pc.binary_length(arr)).as_py() != 0:  # no empty string (the usual): no copy of the column
        return arr
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


def _cell_converter(column_type: str):
    def conv(v: Any) -> str | None:
        if v is None:
            return None
        if isinstance(v, str):
            return v if v != "" else None
        if isinstance(v, bool):
            return "True" if v else "False"
        if isinstance(v, datetime):
            if v.time() == time(0):
                return v.date().isoformat()
            return v.isoformat(sep=" ")
        if isinstance(v, date):
            return v.isoformat()
        if isinstance(v, time):
            return v.isoformat()
        if isinstance(v, int | float | Decimal):
            if isinstance(v, float) and v != v:
                return None
            if column_type == "id_number" and abs(v) >= 1e15:
                return repr(float(v))  # damaged: an ID stored as a number (ID02)
            if v == int(v) and abs(v) < 1e15:
                return str(int(v))
            return repr(v) if isinstance(v, float) else str(v)
        return str(v)

    return conv


# ---------------------------------------------------------------------------------------------- open


def open_extract(path: Path, contract: Contract, max_xlsx_uncompressed_bytes: int | None = None) -> Extract:
    """Inspect a drop file; FileRejected for any file-level problem.

    ``max_xlsx_uncompressed_bytes``: the caller's limit (its Settings); default the configured one."""
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix == "csv":
        return _open_csv(path, contract)
    if suffix == "xlsx":
        return _open_xlsx(path, contract, max_xlsx_uncompressed_bytes)
    if suffix == "parquet":
        return _open_parquet(path, contract)
    raise FileRejected(
        f"不支持的文件类型「.{suffix}」，只接受csv、xlsx或parquet文件", {"suffix": suffix, "file": path.name}
    )


def detect_encoding(path: Path) -> str:
    """'utf-8-sig' (BOM), 'utf-8' (whole file valid UTF-8) or 'gb18030' (whole file valid GB18030)."""
    with open(path, "rb") as f:
        head = f.read(3)
    if head == codecs.BOM_UTF8:
        if _decodes(path, "utf-8-sig"):
            return "utf-8-sig"
        raise FileRejected(
            "文件以UTF-8标记开头，但内容不是有效的UTF-8编码（可能已损坏），请重新导出为UTF-8或GBK编码的CSV",
            {"encoding": "utf-8-sig"},
        )
    if _decodes(path, "utf-8"):
        return "utf-8"
    if _decodes(path, "gb18030"):
        return "gb18030"
    raise FileRejected(
        "无法识别文件的字符编码（既不是UTF-8也不是GBK/GB18030），请重新导出为UTF-8或GBK编码的CSV",
        {"encoding": None},
    )


def _decodes(path: Path, encoding: str) -> bool:
    dec = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                dec.decode(chunk)
            dec.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _open_csv(path: Path, contract: Contract) -> Extract:
    encoding = detect_encoding(path)
    # the first records, decoded, to find the header row (title rows may come first)
    dec = codecs.getincrementaldecoder(encoding)(errors="replace")
    text = ""
    with open(path, "rb") as f:
        while text.count("\n") <= HEADER_SEARCH_ROWS + 1:
            chunk = f.read(64 * 1024)
            if not chunk:
                text += dec.decode(b"", final=True)
                break
            text += dec.decode(chunk)
    reader = csv.reader(io.StringIO(text, newline=""))
    rows, ends = [], []
    try:
        for row in reader:
            rows.append(row)
            ends.append(reader.line_num)
            if len(rows) >= HEADER_SEARCH_ROWS:
                break
    except csv.Error as exc:
        if not rows:
            raise FileRejected(f"CSV文件格式错误，无法读取表头：{exc}", {"error": str(exc)}) from None
    if not rows:
        raise FileRejected("文件是空的（没有表头和数据）", {})
    idx, m = _find_header(rows, contract)
    header = rows[idx]
    ext = Extract(
        path=path,
        contract=contract,
        format="csv",
        encoding=encoding,
        header_row=ends[idx],
        header_mapping=m.found,
        warnings=_header_warnings(m),
        _mapping=m.mapping,
        _ncols=len(header),
        _record_offset=ends[idx] - (idx + 1),
    )
    if idx:
        ext.warnings.append(f"表头在第{ext.header_row}行，已跳过上方的标题行")
    return ext


def _check_zip(path: Path, limit: int | None = None) -> None:
    with open(path, "rb") as f:
        magic = f.read(8)
    if magic.startswith(b"\xd0\xcf\x11\xe0"):
        raise FileRejected(
            "文件扩展名为.xlsx，但实际是旧版.xls或加密（设置了密码）的Excel文件，请另存为不加密的.xlsx后重新报送",
            {"magic": magic.hex()},
        )
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise FileRejected(
            "文件扩展名为.xlsx，但内容不是Excel工作簿（可能是改了扩展名的CSV或其他文件），"
            "请用Excel另存为.xlsx，或直接以.csv报送",
            {"magic": magic.hex()},
        ) from None
    with zf:
        infos = zf.infolist()
        names = {i.filename for i in infos}
        if "xl/workbook.xml" not in names:
            raise FileRejected(
                "文件扩展名为.xlsx，但内容不是Excel工作簿（压缩包中没有工作簿），请用Excel另存为.xlsx后重新报送",
                {"members": sorted(names)[:20]},
            )
        total = sum(i.file_size for i in infos)
        limit = limit or get_settings().max_xlsx_uncompressed_bytes
        if total > limit:
            raise FileRejected(
                f"Excel文件解压后过大（{total // (1024 * 1024)} MB，上限{limit // (1024 * 1024)} MB），"
                "请拆分文件或改用CSV报送",
                {"uncompressed_bytes": total, "limit": limit},
            )
        for i in infos:
            if i.file_size > (1 << 20) and i.file_size > MAX_MEMBER_RATIO * max(i.compress_size, 1):
                raise FileRejected(
                    "Excel文件的压缩比异常（疑似压缩炸弹），已拒收，请重新导出后报送",
                    {"member": i.filename, "file_size": i.file_size, "compress_size": i.compress_size},
                )


def _load_workbook(path: Path):
    from openpyxl import load_workbook

    try:
        return load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds on broken files
        raise FileRejected(
            "Excel文件已损坏或格式不正确，无法打开，请重新导出后报送",
            {"error": f"{type(exc).__name__}: {exc}"},
        ) from None


# XLSX readers. python-calamine (Rust) reads a big sheet some ten times faster than openpyxl's read-only
# mode (docs/benchmark.md, session 6), but reads a few things differently: an error cell (#N/A) comes back
# empty, _xHHHH_ escapes are decoded, number formats are judged dates by its own rules, every number is a
# float (an integer of 16+ digits loses its last digits), and the whole sheet is held in memory. So a
# workbook is read with calamine only when it holds none of those — checked on the zip's XML before
# (_calamine_reads_alike) and on the values while reading (_CalamineBook.rows) — and with openpyxl, as
# before, otherwise. tests/test_read.py checks that both readers give the same rows.

_ALIKE_MAX_XML_BYTES = 256 << 20  # above this, openpyxl streams the sheet instead of holding it
# XML that calamine reads differently: error and ISO-date cells, _xHHHH_ escapes, phonetic runs, a CR in
# text (expat makes it a line feed; a CR between tags, as after Excel's XML declaration, is dropped
# before the search), and UTF-16 (its NUL bytes)
_UNLIKE_XML = (b't="e"', b"t='e'", b't="d"', b"t='d'", b"_x", b"<rPh", b"\r", b"\x00")
# number formats (cellXfs) that both read alike, as tests/test_read.py checks: built-in ids, format codes
_ALIKE_BUILTIN_FORMATS = {0, 1, 2, 3, 4, 14, 49}
_ALIKE_DATE_FORMATS = {"yyyy-mm-dd", "yyyy/m/d", "yyyy-mm-dd h:mm:ss", 'yyyy"年"m"月"d"日"'}
_MAX_SERIAL_DATE = 2958465  # 9999-12-31: a larger number in a date cell is an error to openpyxl
_SPREADSHEET_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


class _NotAlike(Exception):
    """calamine would read this workbook differently from openpyxl: read it with openpyxl."""


def _calamine_reads_alike(path: Path) -> bool | None:
    """None when calamine may read the workbook differently from openpyxl; else whether it has date formats."""
    from xml.etree import ElementTree

    with zipfile.ZipFile(path) as zf:
        infos = [i for i in zf.infolist() if i.filename.endswith(".xml") and not i.filename.startswith("xl/theme/")]
        if sum(i.file_size for i in infos) > _ALIKE_MAX_XML_BYTES:
            return None
        has_dates = False
        if "xl/styles.xml" in zf.namelist():
            styles = ElementTree.fromstring(zf.read("xl/styles.xml"))
            codes = {f.get("numFmtId"): f.get("formatCode") for f in styles.iter(f"{_SPREADSHEET_NS}numFmt")}
            xfs = styles.find(f"{_SPREADSHEET_NS}cellXfs")
            for xf in xfs if xfs is not None else ():
                number_format = xf.get("numFmtId", "0")
                if number_format in codes:
                    if codes[number_format] not in _ALIKE_DATE_FORMATS:
                        return None
                    has_dates = True
                elif not number_format.isdigit() or int(number_format) not in _ALIKE_BUILTIN_FORMATS:
                    return None
                else:
                    has_dates |= number_format == "14"
        for info in infos:
            with zf.open(info) as member:
                tail = b""
                while chunk := member.read(_CHUNK):
                    data = (tail + chunk).replace(b">\r\n<", b"><")
                    if any(mark in data for mark in _UNLIKE_XML):
                        return None
                    tail = chunk[-8:]
    return has_dates


class _OpenpyxlBook:
    """A workbook read with openpyxl (read-only, streaming): any workbook."""

    def __init__(self, path: Path):
        self._book = _load_workbook(path)
        self.sheetnames = self._book.sheetnames

    def rows(self, sheet: str, first: int, last: int | None = None) -> Iterator[tuple[int, tuple]]:
        """(Excel row number, cell values) from row ``first`` to ``last`` (or the end), empty rows too."""
        return enumerate(self._book[sheet].iter_rows(min_row=first, max_row=last, values_only=True), first)

    def close(self) -> None:
        self._book.close()


class _CalamineBook:
    """A workbook read with python-calamine; its values as openpyxl gives them, or _NotAlike."""

    def __init__(self, path: Path, has_dates: bool):
        from python_calamine import CalamineWorkbook

        try:
            self._book = CalamineWorkbook.from_path(path)
        except Exception:  # a damaged file: openpyxl words the rejection, as before
            raise _NotAlike from None
        self.sheetnames = self._book.sheet_names
        self._has_dates = has_dates
        self._sheets: dict[str, list[list[Any]]] = {}

    def rows(self, sheet: str, first: int, last: int | None = None) -> Iterator[tuple[int, tuple]]:
        if sheet not in self._sheets:
            try:  # rows from A1 on, as openpyxl numbers them
                self._sheets[sheet] = self._book.get_sheet_by_name(sheet).to_python(skip_empty_area=False)
            except Exception:
                raise _NotAlike from None
        data = self._sheets[sheet]
        for number in range(first, min(len(data), last or len(data)) + 1):
            yield number, tuple(map(self._as_openpyxl, data[number - 1]))

    def _as_openpyxl(self, value: Any) -> Any:
        if type(value) is float:
            if abs(value) >= 1e15 or (self._has_dates and not 0 <= value <= _MAX_SERIAL_DATE):
                raise _NotAlike  # openpyxl has its exact digits, or an error / a date before 1900 of a date cell
            return int(value) if value.is_integer() else value  # openpyxl: a number without a point is an int
        if isinstance(value, time | timedelta):
            raise _NotAlike  # times of day and durations: openpyxl rounds them its own way
        if type(value) is date:  # openpyxl gives a date cell as a datetime, midnight for a date alone
            return datetime(value.year, value.month, value.day)
        return None if value == "" else value  # an empty cell

    def close(self) -> None:
        book, self._book = self._book, None
        if book is not None:
            book.close()


def _open_book(path: Path):
    """The workbook with calamine when it reads it as openpyxl would, else with openpyxl."""
    try:
        has_dates = _calamine_reads_alike(path)
    except Exception:  # a damaged zip member or XML: openpyxl words the rejection, as before
        has_dates = None
    if has_dates is not None:
        try:
            return _CalamineBook(path, has_dates)
        except _NotAlike:
            pass
    return _OpenpyxlBook(path)


def _open_xlsx(path: Path, contract: Contract, max_uncompressed: int | None = None) -> Extract:
    _check_zip(path, max_uncompressed)
    book = _open_book(path)
    try:
        try:
            ext = _inspect_xlsx(path, contract, book)
        except _NotAlike:
            book.close()
            book = _OpenpyxlBook(path)
            ext = _inspect_xlsx(path, contract, book)
    except BaseException:
        book.close()
        raise
    ext._workbook = book
    return ext


def _inspect_xlsx(path: Path, contract: Contract, wb) -> Extract:
    """The sheet, header row and mapping of an opened workbook."""
    wanted = {header_key(contract.extract), header_key(contract.title)}
    sheet = next((n for n in wb.sheetnames if header_key(n) in wanted), None)
    warnings = []
    if sheet is None:
        if not wb.sheetnames:
            raise FileRejected("Excel文件中没有工作表", {})
        sheet = wb.sheetnames[0]
        if len(wb.sheetnames) > 1:
            warnings.append(f"工作簿有{len(wb.sheetnames)}个工作表，使用第一个「{sheet}」")
    rows = [list(row) for _, row in wb.rows(sheet, 1, HEADER_SEARCH_ROWS)]
    if not rows:
        raise FileRejected(f"工作表「{sheet}」是空的", {"sheet": sheet})
    try:
        idx, m = _find_header(rows, contract)
    except FileRejected as exc:
        exc.details["sheet"] = sheet
        raise
    ext = Extract(
        path=path,
        contract=contract,
        format="xlsx",
        sheet=sheet,
        header_row=idx + 1,
        header_mapping=m.found,
        warnings=warnings + _header_warnings(m),
        _mapping=m.mapping,
    )
    if idx:
        ext.warnings.append(f"表头在第{idx + 1}行，已跳过上方的标题行")
    return ext


def _open_parquet(path: Path, contract: Contract) -> Extract:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
    except Exception as exc:
        raise FileRejected(
            "Parquet文件已损坏或格式不正确，无法读取，请重新导出后报送",
            {"error": f"{type(exc).__name__}: {exc}"},
        ) from None
    m = _match(names, contract)
    if m.missing_required:
        raise _reject_missing(m, contract, names)
    return Extract(
        path=path,
        contract=contract,
        format="parquet",
        header_row=1,
        header_mapping=m.found,
        warnings=_header_warnings(m),
        _mapping=m.mapping,
    )
