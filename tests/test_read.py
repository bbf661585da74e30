"""One test per file mess: encodings, BOM, title rows, header spellings, truncation, XLSX and Parquet."""

from __future__ import annotations

import zipfile
from contextlib import nullcontext
from datetime import date, datetime, time
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openpyxl import Workbook
from stdnum.cn import ric

from crosscheck import read
from crosscheck.contracts import contracts
from crosscheck.normalise import normalise_id
from crosscheck.read import HEADER_SEARCH_ROWS, FileRejected, header_key, match_headers, open_extract


def make_id(region: str = "500151", birth: str = "19900101", seq: str = "123") -> str:
    body = region + birth + seq
    return body + ric.calc_check_digit(body + "0")  # stdnum ignores the check place it is given


ID1, ID2, ID3 = make_id(seq="101"), make_id(seq="102"), make_id(seq="103")
TRAINING = contracts()["training"]
PAYMENTS = contracts()["payments"]
HEADER = "身份证号,姓名,培训工种,培训机构,结业日期,是否合格,培训补贴,交通食宿补贴"


def rows_of(extract) -> list[dict]:
    out = []
    for batch in extract.batches(batch_size=2):
        assert batch.schema.names == [*TRAINING.column_names, "_row"] or batch.schema.names[-1] == "_row"
        out.extend(batch.to_pylist())
    return out


def write(tmp_path, name: str, text: str, encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


# --------------------------------------------------------------------------------------------- CSV


def test_utf8_csv_rows_and_line_numbers(tmp_path):
    path = write(
        tmp_path,
        "training_20261128.csv",
        f"{HEADER}\n{ID1},张三,焊工,铜梁职校,2026-11-28,是,1500,200\n{ID2},李四,厨师,,2026/11/28,否,,\n",
    )
    ext = open_extract(path, TRAINING)
    assert ext.format == "csv" and ext.encoding == "utf-8" and ext.header_row == 1
    rows = rows_of(ext)
    assert [r["_row"] for r in rows] == [2, 3]
    assert (
        rows[0]["id_number"] == ID1 and rows[0]["trade"] == "焊工" and rows[0]["training_subsidy"] == "1500"
    )
    assert rows[1]["institution"] is None and rows[1]["completion_date"] == "2026/11/28"
    assert ext.header_mapping[0] == ("身份证号", "id_number")
    assert not ext.invalid_rows


def test_bom_csv(tmp_path):
    path = tmp_path / "training_20261128.csv"
    path.write_bytes(f"{HEADER}\n{ID1},张三,焊工,,2026-11-28,是,,\n".encode("utf-8-sig"))
    ext = open_extract(path, TRAINING)
    assert ext.encoding == "utf-8-sig"
    assert ("身份证号", "id_number") in ext.header_mapping
    assert rows_of(ext)[0]["id_number"] == ID1


def test_gb18030_csv(tmp_path):
    text = f"{HEADER}\n{ID1},欧阳·娜娜,龙灯彩扎,坪漆村龙灯彩扎基地,2026年11月28日,合格,800,\n"
    path = write(tmp_path, "training_20261128.csv", text, "gb18030")
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    ext = open_extract(path, TRAINING)
    assert ext.encoding == "gb18030"
    row = rows_of(ext)[0]
    assert (
        row["name"] == "欧阳·娜娜"
        and row["institution"] == "坪漆村龙灯彩扎基地"
        and row["qualified"] == "合格"
    )


def test_gbk_large_file_detected_by_whole_file(tmp_path):
    # the first megabytes are pure ASCII: only a whole-file check sees the GB18030 bytes at the end
    line = f"{ID1},ZS,weld,,2026-11-28,1,,\n"
    text = HEADER + "\n" + line * 60_000 + f"{ID2},王五,焊工,,2026-11-28,是,,\n"
    path = write(tmp_path, "training_20261128.csv", text, "gb18030")
    ext = open_extract(path, TRAINING)
    assert ext.encoding == "gb18030"
    rows = [r for b in ext.batches(batch_size=100_000) for r in b.to_pylist()]
    assert len(rows) == 60_001 and rows[-1]["name"] == "王五" and rows[-1]["_row"] == 60_002


def test_undecodable_csv_rejected(tmp_path):
    path = tmp_path / "training_20261128.csv"
    path.write_bytes(HEADER.encode() + b"\n\xff\xfe\xff,x\n")
    with pytest.raises(FileRejected) as exc:
        open_extract(path, TRAINING)
    assert "编码" in exc.value.reason


def test_title_row_csv(tmp_path):
    text = f"铜梁区2026年11月职业技能培训,,,,,,,\n{HEADER}\n{ID1},张三,焊工,,2026-11-28,是,,\n"
    ext = open_extract(write(tmp_path, "training_20261128.csv", text), TRAINING)
    assert ext.header_row == 2
    assert [r["_row"] for r in rows_of(ext)] == [3]
    assert any("标题行" in w for w in ext.warnings)


def test_alias_bracket_and_full_width_headers(tmp_path):
    header = " 领取人身份证号 ,领取人姓名,项目名称,所属期间,发放金额(元),发放日期,流水号,备注"
    text = f'{header}\n{ID1},张三,低保金,202611,"1,234.50",2026-11-28,F001,x\n'
    ext = open_extract(write(tmp_path, "payments_20261128.csv", text), PAYMENTS)
    mapping = dict((c, h) for h, c in ext.header_mapping)
    assert mapping["amount"] == "发放金额(元)" and mapping["id_number"].strip() == "领取人身份证号"
    assert any("备注" in w for w in ext.warnings)  # unknown column ignored, reported
    row = next(ext.batches()).to_pylist()[0]
    assert row["amount"] == "1,234.50" and row["serial_no"] == "F001" and row["bank_account"] is None


def test_header_key_variants():
    assert header_key("发放金额（元）") == header_key(" 发放金额(元) ") == header_key("发放金额【元】")
    assert header_key("ＩＤ") == header_key("id")
    headers = ["身份证号码", "姓名", "培训项目", "结业日期", "考核结果", "培训补贴（元）", "", ""]
    m = match_headers(headers, TRAINING)
    assert m["id_number"] == 0 and m["trade"] == 2 and m["qualified"] == 4 and m["training_subsidy"] == 5


def test_missing_required_column_names_closest(tmp_path):
    text = "身份正号,姓名,培训工种,结业时间\n1,2,3,4\n"
    with pytest.raises(FileRejected) as exc:
        open_extract(write(tmp_path, "training_20261128.csv", text), TRAINING)
    err = exc.value
    assert "身份证号" in err.reason and "结业日期" in err.reason
    assert set(err.details["missing_columns"]) == {"身份证号", "结业日期"}
    assert "身份正号" in err.details["closest_headers"]["身份证号"]
    assert "结业时间" in err.details["closest_headers"]["结业日期"]


def test_missing_optional_column_is_null(tmp_path):
    text = f"身份证号,姓名,培训工种,结业日期\n{ID1},张三,焊工,2026-11-28\n"
    row = rows_of(open_extract(write(tmp_path, "training_20261128.csv", text), TRAINING))[0]
    assert row["qualified"] is None and row["travel_subsidy"] is None


def test_truncated_last_row_collected_as_invalid(tmp_path):
    text = f"{HEADER}\n{ID1},张三,焊工,,2026-11-28,是,,\n{ID2},李四,厨师,,2026-11-28,是,,\n{ID3},王"
    ext = open_extract(write(tmp_path, "training_20261128.csv", text), TRAINING)
    rows = rows_of(ext)
    assert [r["_row"] for r in rows] == [2, 3]
    assert len(ext.invalid_rows) == 1
    bad = ext.invalid_rows[0]
    assert bad.row == 4 and "该行列数不对（可能文件被截断）" in bad.reason and bad.raw.startswith(ID3)
    assert bad[0] == 4  # also a plain tuple (row, reason, raw)


def test_ragged_rows_in_the_middle_keep_line_numbers(tmp_path):
    text = (
        f"{HEADER}\n"
        f"{ID1},张三,焊工,,2026-11-28,是,,\n"
        f"{ID2},李四\n"  # too few fields: invalid
        f'{ID3},"王\n五",厨师,,2026-11-28,是,,\n'  # quoted newline: spans lines 4-5
        f"{ID1},赵六,焊工,,2026-11-28,是,,,,\n"  # surplus empty fields: repaired
        "\n"
        f"{ID2},钱七,焊工,,2026-11-28,是,,\n"
    )
    ext = open_extract(write(tmp_path, "training_20261128.csv", text), TRAINING)
    rows = rows_of(ext)
    by_line = {r["_row"]: r["name"] for r in rows}
    assert by_line == {2: "张三", 4: "王\n五", 6: "赵六", 8: "钱七"}
    assert [(b.row, b.raw) for b in ext.invalid_rows] == [(3, f"{ID2},李四")]


def test_blank_trailing_lines_and_empty_rows_skipped(tmp_path):
    text = f"{HEADER},,\n{ID1},张三,焊工,,2026-11-28,是,,,,\n,,,,,,,,,\n\n{ID2},李四,焊工,,2026-11-28,是,,,,\n\n\n,,,,,,,,,\n"
    ext = open_extract(write(tmp_path, "training_20261128.csv", text), TRAINING)
    rows = rows_of(ext)
    assert [(r["_row"], r["name"]) for r in rows] == [(2, "张三"), (5, "李四")]
    assert not ext.invalid_rows


def test_unsupported_extension(tmp_path):
    with pytest.raises(FileRejected):
        open_extract(write(tmp_path, "training_20261128.txt", HEADER), TRAINING)


# -------------------------------------------------------------------------------------------- XLSX


def make_xlsx(path, rows, title=None, sheet="Sheet1", extra_sheets=()):
    wb = Workbook()
    for name in extra_sheets:
        wb.create_sheet(name).append(["nothing"])
    ws = wb.active
    ws.title = sheet
    if title:
        ws.append([title])
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path


def test_xlsx_title_row_cells_and_row_numbers(tmp_path):
    header = HEADER.split(",")
    path = make_xlsx(
        tmp_path / "training_20261128.xlsx",
        [
            header,
            [ID1, "张三", "焊工", None, datetime(2026, 11, 28), "是", 1500, 200.5],
            [None] * 8,  # blank row: skipped
            [5.00151199001011e17, "李四", "焊工", None, 46354, True, 1500.0, None],
            [int(ID2[:17] + "0"), "王五", "焊工", None, date(2026, 11, 28), "否", None, None],
        ],
        title="铜梁区2026年11月职业技能培训",
    )
    ext = open_extract(path, TRAINING)
    assert ext.format == "xlsx" and ext.header_row == 2 and ext.sheet == "Sheet1"
    rows = rows_of(ext)
    assert [r["_row"] for r in rows] == [3, 5, 6]
    assert rows[0]["completion_date"] == "2026-11-28" and rows[0]["travel_subsidy"] == "200.5"
    assert rows[0]["training_subsidy"] == "1500"
    assert (
        rows[1]["id_number"] == "5.00151199001011e+17" and normalise_id(rows[1]["id_number"]).rule == "ID02"
    )
    assert rows[1]["completion_date"] == "46354" and rows[1]["qualified"] == "True"
    assert normalise_id(rows[2]["id_number"]).rule == "ID02"  # 18-digit number cell: always damage
    assert rows[2]["completion_date"] == "2026-11-28"


def test_xlsx_sheet_named_after_extract(tmp_path):
    path = tmp_path / "training_20261128.xlsx"
    wb = Workbook()
    wb.active.title = "说明"
    wb.active.append(["本表为职业技能培训"])
    ws = wb.create_sheet("职业技能培训")
    ws.append(HEADER.split(","))
    ws.append([ID1, "张三", "焊工", None, "2026-11-28", "是", None, None])
    wb.save(path)
    ext = open_extract(path, TRAINING)
    assert ext.sheet == "职业技能培训" and rows_of(ext)[0]["id_number"] == ID1


def test_xlsx_missing_header_rejected(tmp_path):
    path = make_xlsx(tmp_path / "training_20261128.xlsx", [["身份证", "名字"], [ID1, "张三"]])
    with pytest.raises(FileRejected) as exc:
        open_extract(path, TRAINING)
    assert "身份证号" in exc.value.reason and exc.value.details["sheet"] == "Sheet1"


def test_xlsx_that_is_csv_rejected(tmp_path):
    path = write(tmp_path, "training_20261128.xlsx", f"{HEADER}\n{ID1},张三\n")
    with pytest.raises(FileRejected) as exc:
        open_extract(path, TRAINING)
    assert "不是Excel工作簿" in exc.value.reason


def test_xlsx_zip_bomb_guard(tmp_path, monkeypatch):
    path = tmp_path / "training_20261128.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/workbook.xml", "<workbook/>")
        zf.writestr("xl/worksheets/sheet1.xml", "0" * (4 << 20))
    with pytest.raises(FileRejected) as exc:
        open_extract(path, TRAINING)
    assert "压缩" in exc.value.reason
    monkeypatch.setattr(read, "get_settings", lambda: SimpleNamespace(max_xlsx_uncompressed_bytes=1000))
    with pytest.raises(FileRejected) as exc:
        open_extract(path, TRAINING)
    assert "过大" in exc.value.reason


def test_zip_that_is_not_a_workbook_rejected(tmp_path):
    path = tmp_path / "training_20261128.xlsx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("word/document.xml", "<doc/>")
    with pytest.raises(FileRejected):
        open_extract(path, TRAINING)


def read_as_openpyxl(path, monkeypatch) -> tuple[list[dict], int, list[str]]:
    """The rows, header row and warnings that openpyxl alone gives (the reader before python-calamine)."""
    with monkeypatch.context() as patch:
        patch.setattr(read, "_calamine_reads_alike", lambda path: None)
        ext = open_extract(path, TRAINING)
        assert type(ext._workbook).__name__ == "_OpenpyxlBook"
        return rows_of(ext), ext.header_row, ext.warnings


ALIKE_ROWS = {
    # date cells, several number formats: numbers up to 9999-12-31's serial (a larger one may be a date cell's error)
    "dates": (
        [ID1, " 张三 ", "焊工", "", datetime(2026, 11, 28), "是", 1500, 200.5, 0.1 + 0.2],
        [None] * 8,
        [ID2, "李四", "焊工", "铜梁职校", date(2026, 11, 28), True, 1500.0, 3, "备注"],
        [ID3, "王五·小", "厨师", None, datetime(2026, 11, 28, 13, 45, 7), False, 2958465, 1e-7],
        ["", "赵六", "厨师", None, 46354, 0, "1,500", None],
    ),
    # no date format: numbers up to 15 digits, as Excel keeps them (a legacy ID stored as a number)
    "numbers": (
        [int(ID2[:6] + ID2[8:17]), "李四", "焊工", 123456789012345, "2026-11-28", 1, -1500.25, -3, 999999999999999],
    ),
}
ALIKE_FORMATS = (("E3", "yyyy-mm-dd"), ("E5", "mm-dd-yy"), ("E6", "yyyy-mm-dd h:mm:ss"), ("E7", 'yyyy"年"m"月"d"日"'),
                 ("G3", "0.00"), ("G5", "#,##0"), ("H3", "#,##0.00"), ("A6", "@"), ("H6", "0"),
                 ("G6", "yyyy/m/d"))  # G6 holds 2958465: 9999-12-31, the last date


@pytest.mark.parametrize("kind", sorted(ALIKE_ROWS))
def test_xlsx_read_with_calamine_gives_the_rows_openpyxl_gives(tmp_path, monkeypatch, kind):
    wb = Workbook()
    ws = wb.active
    ws.append(["铜梁区职业技能培训", None, 2026])  # a title row with a number in it
    ws.append([*HEADER.split(","), "备注"])
    for row in ALIKE_ROWS[kind]:
        ws.append(row)
    for cell, number_format in ALIKE_FORMATS if kind == "dates" else ():
        ws[cell].number_format = number_format
    path = tmp_path / "training_20261128.xlsx"
    wb.save(path)
    ext = open_extract(path, TRAINING)
    assert type(ext._workbook).__name__ == "_CalamineBook"
    with monkeypatch.context() as patch:  # and not given up half-way for openpyxl either
        patch.setattr(read, "_OpenpyxlBook", None)
        rows = rows_of(ext)
    assert (rows, ext.header_row, ext.warnings) == read_as_openpyxl(path, monkeypatch)
    assert ext.warnings == ["已忽略约定之外的列：备注", "表头在第2行，已跳过上方的标题行"]
    if kind == "dates":
        assert [r["_row"] for r in rows] == [3, 5, 6, 7]
        assert rows[0]["completion_date"] == "2026-11-28" and rows[2]["completion_date"] == "2026-11-28 13:45:07"
        assert rows[2]["training_subsidy"] == "9999-12-31"
    else:
        assert rows[0]["id_number"] == ID2[:6] + ID2[8:17] and rows[0]["institution"] == "123456789012345"


def test_xlsx_rejection_lists_the_headers_as_openpyxl_read_them(tmp_path, monkeypatch):
    wb = Workbook()
    wb.active.append(["身份证号", "姓名", datetime(2026, 11, 28), 2026, 0.5])  # no 培训工种 nor 结业日期
    path = tmp_path / "training_20261128.xlsx"
    wb.save(path)
    with monkeypatch.context() as patch, pytest.raises(FileRejected) as fast:
        patch.setattr(read, "_OpenpyxlBook", None)  # read with calamine to the end
        open_extract(path, TRAINING)
    with monkeypatch.context() as patch, pytest.raises(FileRejected) as exact:
        patch.setattr(read, "_calamine_reads_alike", lambda path: None)
        open_extract(path, TRAINING)
    assert (fast.value.reason, fast.value.details) == (exact.value.reason, exact.value.details)
    assert fast.value.details["headers_found"] == ["身份证号", "姓名", "2026-11-28 00:00:00", "2026", "0.5"]


def _xlsx_with(tmp_path, value, number_format=None, at_row=3):
    """A training workbook whose cell 培训机构 (D) of row ``at_row`` holds ``value`` (rows 2.. are data)."""
    wb = Workbook()
    ws = wb.active
    ws.append(HEADER.split(","))
    for _ in range(2, at_row + 1):
        ws.append([ID1, "张三", "焊工", None, datetime(2026, 11, 28), "是", 1500, None])
    ws.cell(row=at_row, column=4, value=value)
    if number_format:
        ws.cell(row=at_row, column=4).number_format = number_format
    path = tmp_path / "training_20261128.xlsx"
    wb.save(path)
    return path


@pytest.mark.parametrize(
    ("value", "number_format", "expected"),
    [
        ("#N/A", None, "#N/A"),  # an error cell: calamine gives it empty
        ("_x000D_", None, "_x000D_"),  # calamine decodes the escape
        (1234567890123456, None, "1234567890123456"),  # calamine: a float, its last digits lost
        (time(13, 45), None, "13:45:00"),  # a time of day
        (datetime(2026, 11, 28), "dd/mm/yyyy", "2026-11-28"),  # a number format not known to be read alike
        (3_000_000, "yyyy-mm-dd", "#VALUE!"),  # beyond 9999-12-31 in a date cell: an error to openpyxl
    ],
)
@pytest.mark.parametrize("at_row", [3, HEADER_SEARCH_ROWS + 5])  # while the header is searched, or later
def test_xlsx_that_calamine_reads_differently_is_read_with_openpyxl(tmp_path, monkeypatch, value, number_format,
                                                                     expected, at_row):
    path = _xlsx_with(tmp_path, value, number_format, at_row)
    with pytest.warns(UserWarning) if expected == "#VALUE!" else nullcontext():
        ext = open_extract(path, TRAINING)
        rows = rows_of(ext)
    assert rows[-1]["institution"] == expected and rows[-1]["_row"] == at_row
    with pytest.warns(UserWarning) if expected == "#VALUE!" else nullcontext():
        assert (rows, ext.header_row, ext.warnings) == read_as_openpyxl(path, monkeypatch)


@pytest.mark.parametrize("member", ["xl/workbook.xml", "xl/styles.xml"])
def test_xlsx_damaged_for_calamine_is_rejected_as_before(tmp_path, member):
    path = tmp_path / "training_20261128.xlsx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("xl/workbook.xml", "<workbook><sheets>" if member == "xl/workbook.xml" else "<workbook/>")
        zf.writestr("xl/styles.xml", "<styleSheet><cellXfs>" if member == "xl/styles.xml" else "<styleSheet/>")
    with pytest.raises(FileRejected) as exc:
        open_extract(path, TRAINING)
    assert "已损坏" in exc.value.reason


@pytest.mark.parametrize("where", ["after the declaration", "in a value"])
def test_xlsx_carriage_return_in_the_xml(tmp_path, monkeypatch, where):
    """Excel writes CRLF after each part's XML declaration: calamine reads that workbook. A raw CR in a
    value (not &#13;) is a line feed to openpyxl's parser, not to calamine's: openpyxl reads that one."""
    path = _xlsx_with(tmp_path, "铜梁&职校")
    with zipfile.ZipFile(path) as zf:
        parts = {i.filename: zf.read(i) for i in zf.infolist()}
    sheet = "xl/worksheets/sheet1.xml"
    assert parts[sheet].startswith(b"<") and b"\r" not in parts[sheet] and b"&amp;" in parts[sheet]
    if where == "after the declaration":
        parts[sheet] = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n' + parts[sheet]
    else:
        parts[sheet] = parts[sheet].replace(b"&amp;", b"\r")
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    ext = open_extract(path, TRAINING)
    reader = type(ext._workbook).__name__
    rows = rows_of(ext)
    if where == "after the declaration":
        assert reader == "_CalamineBook" and rows[-1]["institution"] == "铜梁&职校"
    else:
        assert reader == "_OpenpyxlBook" and rows[-1]["institution"] == "铜梁\n职校"
    assert rows == read_as_openpyxl(path, monkeypatch)[0]


# ----------------------------------------------------------------------------------------- Parquet


def test_parquet_cast_to_string_and_row_numbers(tmp_path):
    table = pa.table(
        {
            "身份证号码": pa.array([ID1, None, "5.00151E+17"]),
            "姓名": ["张三", None, "李四"],
            "培训工种": ["焊工", None, "厨师"],
            "结业日期": pa.array([date(2026, 11, 28), None, date(2026, 11, 27)]),
            "培训补贴": pa.array([1500.0, None, 99.5]),
            "是否合格": pa.array([True, None, False]),
        }
    )
    path = tmp_path / "training_20261128.parquet"
    pq.write_table(table, path)
    ext = open_extract(path, TRAINING)
    rows = rows_of(ext)
    assert [r["_row"] for r in rows] == [2, 4]  # the all-null row is skipped
    assert rows[0]["completion_date"] == "2026-11-28" and rows[0]["training_subsidy"] == "1500"
    assert rows[1]["qualified"] == "false" and rows[1]["institution"] is None


def test_parquet_empty_string_is_null_like_a_missing_value(tmp_path):
    path = tmp_path / "training_20261128.parquet"
    pq.write_table(pa.table({"身份证号": [ID1, ID2], "姓名": ["张三", ""], "培训工种": ["焊工", "厨师"],
                             "结业日期": ["2026-11-28", "2026-11-28"]}), path)
    rows = rows_of(open_extract(path, TRAINING))
    assert [r["name"] for r in rows] == ["张三", None] and [r["trade"] for r in rows] == ["焊工", "厨师"]
    trades = pa.array(["焊工", None])
    assert read._to_string(trades) is trades  # no empty string: the column is not copied


def test_parquet_float_id_is_damage(tmp_path):
    path = tmp_path / "training_20261128.parquet"
    pq.write_table(
        pa.table(
            {
                "身份证号": [5.00151199001011e17],
                "姓名": ["张三"],
                "培训工种": ["焊工"],
                "结业日期": ["2026-11-28"],
            }
        ),
        path,
    )
    row = rows_of(open_extract(path, TRAINING))[0]
    assert normalise_id(row["id_number"]).rule == "ID02"


def test_parquet_missing_column_rejected(tmp_path):
    path = tmp_path / "training_20261128.parquet"
    pq.write_table(pa.table({"姓名": ["张三"]}), path)
    with pytest.raises(FileRejected) as exc:
        open_extract(path, TRAINING)
    assert "身份证号" in exc.value.details["missing_columns"]
