"""Writing the drop folder: every file format and every kind of mess extracts.md allows.

Each extract has a fixed style (format, encoding, header aliases, date/month/amount/yes-no spelling,
trailing columns, blank lines, .done marker); on top of it a fraction of rows gets value mess (IDs in
full-width digits, lower-case x, spaces, 15-digit legacy form; names with spaces or other dots; dates
and months in another spelling; amounts with thousands separators). Large extracts are rendered and
written in chunks with pyarrow, XLSX with openpyxl's write-only mode. Output is byte-identical for
the same arguments (fixed XLSX metadata and zip timestamps, no clocks anywhere).
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from crosscheck.generate.people import World, crc
from crosscheck.generate.tables import Cat, Table

CHUNK = 200_000
FIXED_TIME = dt.datetime(2020, 1, 1, 0, 0, 0)

DATE_FORMATS = {"iso": "%Y-%m-%d", "slash": "%Y/%m/%d", "compact": "%Y%m%d", "cn": "%Y年%m月%d日"}
MONTH_FORMATS = {"compact": "%Y%m", "dash": "%Y-%m", "cn": "%Y年%m月"}
YESNO = {"cn": ("是", "否"), "yn": ("Y", "N"), "10": ("1", "0"), "pass": ("合格", "不合格")}
DOTS = ("·", "•", "・", ".", "．", "∙")
FULLWIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")


@dataclass(frozen=True)
class Style:
    fmt: str  # csv | xlsx | parquet
    encoding: str = "utf-8"  # csv: utf-8 | utf-8-sig | gb18030
    quoting: str = "none"  # csv: none | needed | all_valid
    date: str = "iso"  # text spelling of dates; xlsx: also "cell" or "serial"
    month: str = "compact"
    amount: str = "plain"  # plain (1234.5 / 1234) | fixed (1234.50)
    yesno: str = "cn"
    aliases: tuple[str, ...] = ()  # canonical columns written under their first alias
    header_mess: tuple[str, ...] = ()  # columns whose header gets spaces / half-width brackets
    trailing_cols: int = 0
    blank_lines: int = 0
    title: bool = False  # xlsx: a title row above the header
    sheet: str = ""  # xlsx sheet name ("" = Sheet1)
    done: bool = False
    mess: float = 0.02  # share of rows per messable column that get value mess
    thousands: float = (
        0.15  # share of amounts >= 1,000 with thousands separators; of yes/no in other spellings
    )


STYLES = {
    "residents": Style(
        "csv", "utf-8-sig", "none", date="iso", aliases=("name", "village"), blank_lines=2, done=True
    ),
    "deaths": Style("xlsx", date="cell", title=True, sheet="deaths", aliases=("id_number",), done=True),
    "assistance": Style(
        "xlsx", date="serial", title=True, aliases=("head_id_number", "town"), header_mess=("village",)
    ),
    "registry": Style(
        "xlsx",
        date="iso",
        yesno="cn",
        sheet="Sheet1",
        aliases=("household_no", "village"),
        header_mess=("town",),
        done=True,
    ),
    "payments": Style(
        "csv",
        "gb18030",
        "needed",
        date="slash",
        month="dash",
        amount="fixed",
        aliases=("name", "amount"),
        trailing_cols=2,
        blank_lines=1,
    ),
    "enrollment": Style(
        "csv", "utf-8", "needed", date="compact", month="cn", yesno="10", aliases=("person_no",), done=True
    ),
    "pension_payments": Style("parquet", month="compact", amount="fixed", aliases=("month",), done=True),
    "jobs": Style("xlsx", date="cn", title=True, aliases=("employer", "monthly_pay")),
    "training": Style(
        "csv",
        "utf-8",
        "all_valid",
        date="cn",
        yesno="pass",
        aliases=("trade", "training_subsidy"),
        trailing_cols=1,
        header_mess=("id_number",),
    ),
}


@dataclass(frozen=True)
class FileInfo:
    path: str  # relative to the output folder
    department: str
    extract: str
    format: str
    rows: int
    bytes: int


# ====================================================================== rendering


class Renderer:
    def __init__(self, w: World):
        self.w = w
        self.ids = pa.array(w.id18).cast(pa.string())
        self.names = pa.array(w.name.astype(str))
        by = w.birth.astype("datetime64[Y]").astype(np.int64) + 1970
        self.born19 = (by >= 1900) & (by <= 1999)

    def text(self, col, style: Style, ctype: str, rows: slice) -> pa.Array:
        if isinstance(col, Cat):
            return pc.take(pa.array(col.labels.tolist(), pa.string()), pa.array(col.codes[rows]))
        a = col[rows]
        if a.dtype.kind in "iu":
            return pa.array(a).cast(pa.string())
        return pa.array(a.tolist(), pa.string())

    def render(
        self, tab: Table, style: Style, lo: int, hi: int, rng: np.random.Generator, typed: bool = False
    ):
        """Column name -> list/array of cell values for rows [lo, hi). typed: xlsx cell values."""
        out = {}
        rows = slice(lo, hi)
        n = hi - lo
        for column in tab.contract.columns:
            col = tab.cols[column.name]
            t = column.type
            mess = rng.random(n) < style.mess
            if t == "id_number":
                idx = col[rows]
                arr = pc.if_else(pa.array(idx >= 0), self.ids.take(pa.array(np.maximum(idx, 0))), "")
                vals = arr.to_numpy(zero_copy_only=False).astype(object) if mess.any() else None
                if vals is not None:
                    for i in np.flatnonzero(mess & (idx >= 0)):
                        vals[i] = self._mess_id(vals[i], int(idx[i]), rng)
                    arr = pa.array(vals.tolist(), pa.string())
                ov = tab.overrides.get(column.name)
                if ov:
                    arr = _apply_overrides(arr, ov, lo, hi)
            elif t == "name":
                idx = col[rows]
                arr = self.names.take(pa.array(idx))
                alt = (
                    {
                        i - lo: tab.name_alt[int(p)]
                        for i, p in enumerate(idx, start=lo)
                        if int(p) in tab.name_alt
                    }
                    if tab.name_alt
                    else {}
                )
                if mess.any() or alt:
                    vals = arr.to_numpy(zero_copy_only=False).astype(object)
                    for i, v in alt.items():
                        vals[i] = v
                    for i in np.flatnonzero(
                        mess | (np.char.find(vals.astype(str), "·") >= 0) & (rng.random(n) < 0.6)
                    ):
                        vals[i] = self._mess_name(vals[i], rng)
                    arr = pa.array(vals.tolist(), pa.string())
            elif t == "date":
                arr = self._dates(col[rows], style, mess, rng, typed)
            elif t == "month":
                arr = self._months(col[rows], style, mess, rng)
            elif t == "amount":
                arr = self._amounts(col[rows], style, mess, rng, typed)
            elif t == "year":
                a = col[rows]
                arr = pc.if_else(pa.array(a > 0), pa.array(a).cast(pa.string()), "")
            elif t == "yesno":
                a = col[rows]
                yes, no = YESNO[style.yesno if column.name == "qualified" or style.yesno != "pass" else "cn"]
                vals = np.where(a == 1, yes, np.where(a == 0, no, "")).astype(object)
                spellings = list(YESNO.values()) if column.name == "qualified" else list(YESNO.values())[:3]
                for i in np.flatnonzero((rng.random(n) < style.thousands) & (a >= 0)):
                    y2, n2 = spellings[int(rng.integers(0, len(spellings)))]
                    vals[i] = y2 if a[i] == 1 else n2
                arr = pa.array(vals.tolist(), pa.string())
            else:
                arr = self.text(col, style, t, rows)
            out[column.name] = arr
        return out

    # -------------------------------------------------------------- value mess
    def _mess_id(self, s: str, person: int, rng) -> str:
        kind = int(rng.integers(0, 4))
        if kind == 0:
            return s.translate(FULLWIDTH)
        if kind == 1 and s.endswith("X"):
            return s[:-1] + "x"
        if kind == 3 and self.born19[person]:
            return s[:6] + s[8:17]
        return [s[:6] + " " + s[6:14] + " " + s[14:], " " + s + " ", s[:6] + " " + s[6:]][
            int(rng.integers(0, 3))
        ]

    @staticmethod
    def _mess_name(s: str, rng) -> str:
        if "·" in s:
            dot = DOTS[int(rng.integers(0, len(DOTS)))]
            return s.replace("·", dot)
        k = int(rng.integers(0, 3))
        if k == 0:
            return s[0] + " " + s[1:]
        if k == 1:
            return " " + s + " "
        return s[0] + "\u3000" + s[1:]

    def _dates(self, a: np.ndarray, style: Style, mess, rng, typed: bool):
        nat = np.isnat(a)
        if typed and style.date in ("cell", "serial"):
            vals = a.astype(object)
            if style.date == "serial":
                serial = (a - np.datetime64("1899-12-30")).astype(np.int64)
                vals = np.where(nat, None, serial).astype(object)
            vals = vals.tolist()
            for i in np.flatnonzero(mess & ~nat):
                k = int(rng.integers(0, 3))
                d = a[i].astype(dt.date)
                vals[i] = (
                    d.strftime(list(DATE_FORMATS.values())[k + 1])
                    if k < 2
                    else (
                        (a[i] - np.datetime64("1899-12-30")).astype(int).item() if style.date == "cell" else d
                    )
                )
            for i in np.flatnonzero(nat):
                vals[i] = None
            return vals
        base = style.date if style.date in DATE_FORMATS else "iso"
        arr = pa.array(a)
        out = pc.fill_null(pc.strftime(arr, format=DATE_FORMATS[base]), "")
        if mess.any():
            vals = out.to_numpy(zero_copy_only=False).astype(object)
            fmts = list(DATE_FORMATS.values())
            for i in np.flatnonzero(mess & ~nat):
                vals[i] = a[i].astype(dt.date).strftime(fmts[int(rng.integers(0, len(fmts)))])
            out = pa.array(vals.tolist(), pa.string())
        return out

    def _months(self, a: np.ndarray, style: Style, mess, rng):
        nat = np.isnat(a)
        d = pa.array(a.astype("datetime64[D]"))
        out = pc.fill_null(pc.strftime(d, format=MONTH_FORMATS[style.month]), "")
        if mess.any():
            vals = out.to_numpy(zero_copy_only=False).astype(object)
            fmts = list(MONTH_FORMATS.values())
            for i in np.flatnonzero(mess & ~nat):
                vals[i] = a[i].astype(dt.date).strftime(fmts[int(rng.integers(0, len(fmts)))])
            out = pa.array(vals.tolist(), pa.string())
        return out

    def _amounts(self, a: np.ndarray, style: Style, mess, rng, typed: bool):
        empty = a < 0
        if typed:
            vals = [
                None if e else (int(v // 100) if v % 100 == 0 else v / 100)
                for v, e in zip(a.tolist(), empty.tolist(), strict=True)
            ]
            sep = (rng.random(len(a)) < style.thousands) & ~empty & (a >= 100000)
            for i in np.flatnonzero(sep):
                vals[i] = f"{a[i] / 100:,.2f}"
            return vals
        yuan = pa.array(a // 100).cast(pa.string())
        frac = pc.utf8_lpad(pa.array(a % 100).cast(pa.string()), 2, "0")
        fixed = pc.binary_join_element_wise(yuan, frac, ".")
        if style.amount == "fixed":
            out = fixed
        else:
            out = pc.if_else(pa.array(a % 100 == 0), yuan, fixed)
        out = pc.if_else(pa.array(empty), "", out)
        sep = (rng.random(len(a)) < style.thousands) & ~empty & (a >= 100000) & (style.quoting != "none")
        if sep.any():
            vals = out.to_numpy(zero_copy_only=False).astype(object)
            for i in np.flatnonzero(sep):
                vals[i] = f"{a[i] / 100:,.2f}"
            out = pa.array(vals.tolist(), pa.string())
        return out


def _apply_overrides(arr: pa.Array, ov: dict[int, str], lo: int, hi: int) -> pa.Array:
    hits = {r - lo: v for r, v in ov.items() if lo <= r < hi}
    if not hits:
        return arr
    vals = arr.to_pylist()
    for i, v in hits.items():
        vals[i] = v
    return pa.array(vals, pa.string())


# ====================================================================== headers


def headers(tab: Table, style: Style) -> list[str]:
    out = []
    for c in tab.contract.columns:
        h = c.aliases[0] if (c.name in style.aliases and c.aliases) else c.header
        if c.name in style.header_mess:
            h = h.replace("（", "(").replace("）", ")") if "（" in h else f" {h} "
        out.append(h)
    return out


# ====================================================================== file writers


def write_table(w: World, tab: Table, out_dir: Path) -> FileInfo:
    style = STYLES[tab.extract]
    dept = tab.contract.department
    ext = {"csv": "csv", "xlsx": "xlsx", "parquet": "parquet"}[style.fmt]
    rel = Path("landing") / dept / f"{tab.extract}_{w.as_of:%Y%m%d}.{ext}"
    path = out_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    r = Renderer(w) if not hasattr(w, "_renderer") else w._renderer
    w._renderer = r
    if style.fmt == "csv":
        _write_csv(w, r, tab, style, path)
    elif style.fmt == "parquet":
        _write_parquet(w, r, tab, style, path)
    else:
        _write_xlsx(w, r, tab, style, path)
    if style.done:
        path.with_name(path.name + ".done").write_bytes(b"")
    return FileInfo(
        str(rel),
        dept,
        tab.extract,
        style.fmt if style.fmt != "csv" else f"csv/{style.encoding}",
        tab.n,
        path.stat().st_size,
    )


def _chunks(w: World, tab: Table):
    for ci, lo in enumerate(range(0, max(tab.n, 1), CHUNK)):
        hi = min(lo + CHUNK, tab.n)
        yield lo, hi, np.random.default_rng([w.seed, crc("write:" + tab.extract), ci])


def _write_csv(w: World, r: Renderer, tab: Table, style: Style, path: Path) -> None:
    hdr = headers(tab, style) + [""] * style.trailing_cols
    names = [f"c{i}" for i in range(len(hdr))]
    if style.quoting == "none":
        head_line = ",".join(hdr)
    else:
        head_line = ",".join(f'"{h}"' for h in hdr)
    enc = "gb18030" if style.encoding == "gb18030" else "utf-8"
    opts = pacsv.WriteOptions(include_header=False, quoting_style=style.quoting)
    with path.open("wb") as f:
        if style.encoding == "utf-8-sig":
            f.write(b"\xef\xbb\xbf")
        f.write((head_line + "\n").encode(enc))
        for lo, hi, rng in _chunks(w, tab):
            if hi <= lo:
                break
            cols = r.render(tab, style, lo, hi, rng)
            arrays = list(cols.values()) + [pa.array([""] * (hi - lo), pa.string())] * style.trailing_cols
            table = pa.Table.from_arrays(arrays, names=names)
            buf = io.BytesIO()
            pacsv.write_csv(table, buf, opts)
            data = buf.getvalue()
            if enc != "utf-8":
                data = data.decode("utf-8").encode(enc)
            f.write(data)
        f.write(b"\n" * style.blank_lines)


def _write_parquet(w: World, r: Renderer, tab: Table, style: Style, path: Path) -> None:
    hdr = headers(tab, style)
    schema = pa.schema([pa.field(h, pa.string()) for h in hdr])
    with pq.ParquetWriter(path, schema, compression="snappy") as writer:
        for lo, hi, rng in _chunks(w, tab):
            if hi <= lo:
                break
            cols = r.render(tab, style, lo, hi, rng)
            writer.write_table(pa.Table.from_arrays(list(cols.values()), schema=schema))


def _write_xlsx(w: World, r: Renderer, tab: Table, style: Style, path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(style.sheet or "Sheet1")
    if style.title:
        ws.append([f"铜梁区{w.as_of.year}年{w.as_of.month}月{tab.contract.title}"])
    ws.append(headers(tab, style))
    for lo, hi, rng in _chunks(w, tab):
        if hi <= lo:
            break
        cols = r.render(tab, style, lo, hi, rng, typed=True)
        lists = [c if isinstance(c, list) else c.to_pylist() for c in cols.values()]
        for row in zip(*lists, strict=True):
            ws.append(list(row))
    wb.properties.creator = "crosscheck generate"
    wb.properties.created = FIXED_TIME
    buf = io.BytesIO()
    wb.save(buf)
    _deterministic_zip(buf.getvalue(), path)


def _deterministic_zip(data: bytes, path: Path) -> None:
    """Rewrite the xlsx zip with fixed timestamps and a fixed modified date in docProps/core.xml."""
    import re

    src = zipfile.ZipFile(io.BytesIO(data))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = re.sub(
                    rb"<dcterms:modified([^>]*)>[^<]*</dcterms:modified>",
                    rb"<dcterms:modified\1>2020-01-01T00:00:00Z</dcterms:modified>",
                    content,
                )
            zi = zipfile.ZipInfo(info.filename, date_time=(2020, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = info.external_attr
            dst.writestr(zi, content)


# ====================================================================== truth


TRUTH_HEADER = ("rule_code", "id_number", "period", "department", "extract", "detail")


def write_truth(w: World, out_dir: Path, name: str = "truth.csv") -> Path:
    """truth.csv: one row per planted finding. Identity = (rule_code, id_number, period):

    - id_number: the normalised 18-digit ID of the person, except ID01/ID02 where it is the ID exactly
      as written in the file; ID06: the household's 户主身份证号 (the non-member); ID07: the unknown ID.
    - period 'YYYY-MM' for SS06, SS08, EM02, EM05 (one row per person and month); empty otherwise
      (EM03 is one row per person, whatever the number of payments).
    """
    import csv

    rows = sorted(set(w.truth))
    path = out_dir / name
    with path.open("w", encoding="utf-8", newline="") as f:
        cw = csv.writer(f, lineterminator="\n")
        cw.writerow(TRUTH_HEADER)
        cw.writerows(rows)
    return path
