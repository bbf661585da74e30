"""Receipts (回执): for every file a department drops, an HTML page a clerk can read and a JSON twin.

Written to ``outbox/<dept>/<file name>.<file_id>.receipt.{html,json}`` from what the warehouse
recorded, so a receipt can be rewritten at any time from ``ingest.files`` and ``ingest.quarantine``.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from pathlib import Path

import jinja2

from crosscheck.catalogue import departments
from crosscheck.contracts import contracts
from crosscheck.settings import INCLUDE_DIR, USERS_ZONE
from crosscheck.warehouse import Warehouse

DEPARTMENT_ZH = {code: dept.full for code, dept in departments().items()}
STATUS_ZH = {"loaded": "已接收入库", "rejected": "拒收（整个文件未入库）", "duplicate": "重复报送（未重复入库）",
             "superseded": "已入库，后被同日期的更正文件替代", "staged": "处理中", "validated": "处理中",
             "receiving": "处理中", "abandoned": "处理中断，已重新处理",
             "held": "暂扣（未入库，继续使用此前的数据）"}
ENCODING_ZH = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8（带BOM）", "gb18030": "GB18030（GBK）"}
MAX_STEM_BYTES = 180  # of the received file name in the receipt's name
_UNSAFE_IN_NAMES = str.maketrans({ch: "_" for ch in '/\\:*?"<>|'})
HTML_ROW_LIMIT = 2000  # more rejected rows than this are listed in the JSON twin only


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(INCLUDE_DIR / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    return env.get_template("receipt.html.j2")


def receipt_data(warehouse: Warehouse, file_id: int) -> dict:
    from crosscheck.pull import pulled_from  # pull imports the pipeline, which imports this module

    with warehouse.connect() as conn:
        f = conn.execute(
            "SELECT department, extract, as_of, file_name, sha256, format, encoding, header_mapping, "
            "received_at, status, reason, rows_received, rows_loaded, rows_quarantined, warnings, "
            "hold, released_at FROM ingest.files WHERE file_id = %s", (file_id,)).fetchone()
        # earlier files of the same extract and date this one replaced (a corrected drop), or the one that
        # replaced this one: the clerk reads on the receipt which file counts
        replaced = conn.execute(
            "SELECT file_id, file_name, received_at FROM ingest.files WHERE extract = %s AND as_of = %s "
            "AND status = 'superseded' AND file_id < %s AND %s = 'loaded' ORDER BY file_id",
            (f[1], f[2], file_id, f[9])).fetchall()
        replaced_by = conn.execute(
            "SELECT file_id, file_name, received_at FROM ingest.files WHERE extract = %s AND as_of = %s "
            "AND status = 'loaded' AND file_id > %s AND %s = 'superseded' ORDER BY file_id DESC LIMIT 1",
            (f[1], f[2], file_id, f[9])).fetchone()
        rejected = conn.execute(
            "SELECT row_number, column_name, value_raw, rule, reason FROM ingest.quarantine "
            "WHERE file_id = %s ORDER BY row_number, column_name NULLS FIRST", (file_id,)).fetchall()
        pulled = pulled_from(conn, f[0], f[3], f[4])  # a pulled extract: from which connection and path
    (department, extract, as_of, file_name, sha, fmt, encoding, mapping, received_at, status, reason,
     received, loaded, quarantined, warnings, hold, released_at) = f
    contract = contracts().get(extract) if extract else None
    header_of = {}
    if contract:
        header_of = {c.name: c.header for c in contract.columns}
    for found, canonical in mapping or []:
        header_of[canonical] = found  # name the column as the sender wrote it
    details = warnings if isinstance(warnings, dict) else {}  # a rejected file's FileRejected.details
    warnings_list = warnings if isinstance(warnings, list) else _details_zh(details)
    return {
        "file_id": file_id, "department": department, "department_zh": DEPARTMENT_ZH.get(department, department),
        "extract": extract, "extract_title": contract.title if contract else None,
        "as_of": as_of.isoformat() if as_of else None, "file_name": file_name, "sha256": sha,
        "format": fmt, "encoding": encoding, "encoding_zh": ENCODING_ZH.get(encoding, encoding),
        "missing_columns": details.get("missing_columns", []), "closest_headers": details.get("closest_headers", {}),
        "received_at": shown_time(received_at),
        "status": status, "status_zh": STATUS_ZH.get(status, status), "reason": reason,
        "rows_received": received, "rows_loaded": loaded, "rows_quarantined": quarantined,
        "header_mapping": [[found, contract.column(c).header if contract else c] for found, c in (mapping or [])],
        "warnings": [str(w) for w in warnings_list],
        "supersedes": [{"file_id": r[0], "file_name": r[1], "received_at": shown_time(r[2])}
                       for r in replaced],
        "superseded_by": None if replaced_by is None else {
            "file_id": replaced_by[0], "file_name": replaced_by[1],
            "received_at": shown_time(replaced_by[2])},
        # a held file: its figures against the extract's recent history (crosscheck.ingest.hold_decision)
        "hold": hold, "released_at": None if released_at is None else shown_time(released_at),
        "pulled_from": pulled,
        "rejected_count": len(rejected),
        "rejected_rows": [
            {"row_number": r[0], "column": header_of.get(r[1], r[1]) if r[1] else None, "value": r[2],
             "rule": r[3], "reason": r[4]} for r in rejected],
    }


def shown_time(moment: datetime) -> str:
    """A time as the clerk's clock says it, with its zone: received at 17:03 UTC reads 01:03 of the next day
    (the database session's own zone, whatever the server is set to, plays no part)."""
    return f"{moment.astimezone(USERS_ZONE):%Y-%m-%d %H:%M:%S} 北京时间（UTC+8）"


def _details_zh(details: dict) -> list[str]:
    """A rejected file's details as lines a clerk can read (the JSON twin keeps them as data too)."""
    out = []
    if details.get("missing_columns"):
        out.append("缺少的列：" + "、".join(details["missing_columns"]))
    for column, closest in (details.get("closest_headers") or {}).items():
        if closest:
            out.append(f"「{column}」最接近的列名：" + "、".join(f"「{h}」" for h in closest))
    if details.get("headers_found"):
        out.append("文件中找到的列名：" + "、".join(details["headers_found"]))
    known = {"missing_columns", "closest_headers", "headers_found"}
    out += [f"{k}：{v}" for k, v in details.items() if k not in known]
    return out


def _stem(file_name: str, file_id: int) -> str:
    """Receipt file stem: the received name capped in bytes (a 250-byte Chinese name plus the suffix
    would exceed the 255-byte file-name limit and make the receipt, and the department's run, fail).
    Characters Windows forbids in names (the outbox is shared with the departments) become ``_``."""
    file_name = file_name.translate(_UNSAFE_IN_NAMES)
    name = file_name.encode("utf-8")[:MAX_STEM_BYTES].decode("utf-8", "ignore")
    if name != file_name:
        name += "…"
    return f"{name}.{file_id}.receipt"


def write_receipt(warehouse: Warehouse, file_id: int, outbox_dir: Path) -> Path:
    """Write the HTML receipt and its JSON twin; return the HTML path."""
    data = receipt_data(warehouse, file_id)
    folder = outbox_dir / data["department"]
    folder.mkdir(parents=True, exist_ok=True)
    stem = _stem(data["file_name"], file_id)
    (folder / f"{stem}.json").write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    shown = dict(data, rejected_rows=data["rejected_rows"][:HTML_ROW_LIMIT])
    html_path = folder / f"{stem}.html"
    html_path.write_text(_template().render(r=shown), encoding="utf-8")
    for earlier in data["supersedes"]:
        # the earlier file's receipt said 已接收入库: rewrite it so it says it has been replaced
        if (folder / f"{_stem(earlier['file_name'], earlier['file_id'])}.json").exists():
            write_receipt(warehouse, earlier["file_id"], outbox_dir)
    return html_path
