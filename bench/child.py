"""One benchmark measurement in a fresh process (called by run_bench.py). Prints one JSON line."""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

CHECKSUMMED = ("mismatches", "kpis")  # the night's results (interface.md); run_bench.py prints their sha256


def floor(landing: Path, warehouse, xlsx_reader: str = "openpyxl") -> dict:
    """Read every file into Arrow and COPY its raw columns as text into PostgreSQL: nothing else.
    ``xlsx_reader``: openpyxl (the floor of every earlier session's table) or calamine (mode floor_calamine:
    the reader the night uses for a workbook it reads alike since session 6, so the floor is not flattered)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from openpyxl import load_workbook

    rows = 0
    with warehouse.connect() as conn:
        for path in sorted(landing.glob("*/*")):
            if path.suffix not in (".csv", ".xlsx", ".parquet"):
                continue
            if path.suffix == ".csv":
                with open(path, "rb") as f:
                    head = f.read(4096)
                encoding = "utf8"
                try:  # incremental: a character cut at the end of the sample is not an error
                    codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
                except UnicodeDecodeError:
                    encoding = "gb18030"
                table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(encoding=encoding),
                                       convert_options=pacsv.ConvertOptions(column_types={}, strings_can_be_null=True))
            elif path.suffix == ".parquet":
                table = pq.read_table(path)
            else:
                if xlsx_reader == "calamine":
                    from python_calamine import CalamineWorkbook

                    data = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python(skip_empty_area=False)
                    data = [[None if v == "" else v for v in r] for r in data]
                else:
                    book = load_workbook(path, read_only=True, data_only=True)
                    data = list(book.worksheets[0].iter_rows(values_only=True))
                    book.close()
                width = max(len(r) for r in data)
                # the header is the first row that fills most columns (title rows above it do not)
                start = next(i for i, r in enumerate(data) if sum(v is not None for v in r) * 2 > width)
                table = pa.table({f"c{i}": [None if r[i] is None else str(r[i]) for r in data[start + 1:]]
                                  for i in range(width)})
            table = table.rename_columns([f"c{i}" for i in range(table.num_columns)])
            table = table.cast(pa.schema([(f"c{i}", pa.string()) for i in range(table.num_columns)]))
            name = "floor_" + path.name.split(".")[0]
            cols = ", ".join(f"c{i} text" for i in range(table.num_columns))
            conn.execute(f"CREATE UNLOGGED TABLE {name} ({cols})")
            buffer = io.BytesIO()
            pacsv.write_csv(table, buffer)
            with conn.cursor().copy(f"COPY {name} FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
                copy.write(buffer.getvalue())
            rows += table.num_rows
        conn.commit()
    return {"rows": rows}


def run(landing: Path, as_of: date, warehouse) -> dict:
    from crosscheck.pipeline import run_night
    from crosscheck.settings import get_settings

    result = run_night(landing, as_of, warehouse.url, None, get_settings())
    # A speed-up must not change what the night finds: the bench prints these to compare runs.
    checksums = {name: hashlib.sha256(result.outputs[name].read_bytes()).hexdigest() for name in CHECKSUMMED}
    return {"rows": sum(f.rows_received for f in result.files), "stages": result.timing.snapshot(),
            "sha256": checksums}


def gx_pandas(landing: Path, as_of: date, warehouse) -> dict:
    """The per-extract suites on in-memory pandas DataFrames of the normalised rows (after a run)."""
    import pandas as pd

    from crosscheck.contracts import contracts
    from crosscheck.validate import _gx, gx_context, load_suite

    run(landing, as_of, warehouse)  # stage the data the same way, then time GX on pandas only
    gx = _gx()
    context = gx_context()
    source = context.data_sources.add_pandas("bench_pandas")
    seconds = 0.0
    rows = 0
    for extract in contracts():
        frame = pd.read_sql(f"SELECT * FROM core.{extract}", warehouse.engine)  # noqa: S608 — names are ours
        rows += len(frame)
        started = time.perf_counter()
        asset = source.add_dataframe_asset(extract)
        batch = asset.add_batch_definition_whole_dataframe("whole")
        suite = load_suite(extract)
        suite.name = f"pandas.{extract}"
        # SQL-only checks (unexpected_rows_expectation) have no pandas form; the rest are the same.
        for expectation in [e for e in suite.expectations if e.expectation_type == "unexpected_rows_expectation"]:
            suite.delete_expectation(expectation)
        suite = context.suites.add(suite)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"pandas_{extract}", data=batch, suite=suite))
        definition.run(batch_parameters={"dataframe": frame}, result_format={"result_format": "SUMMARY"})
        seconds += time.perf_counter() - started
    return {"rows": rows, "gx_seconds": round(seconds, 2)}


def main() -> None:
    mode, landing, as_of, server_url, database = sys.argv[1:6]
    var = tempfile.mkdtemp(prefix="crosscheck-bench-")
    os.environ["CROSSCHECK_VAR"] = var
    os.environ["CROSSCHECK_QUIET_PERIOD_SECONDS"] = "0"
    from crosscheck import warehouse as wh

    warehouse = wh.open_warehouse(wh.with_database(server_url, database), create=True)
    started = time.perf_counter()
    try:
        if mode in ("floor", "floor_calamine"):
            report = floor(Path(landing), warehouse, "calamine" if mode == "floor_calamine" else "openpyxl")
        else:
            report = {"run": run, "gx_pandas": gx_pandas}[mode](Path(landing), date.fromisoformat(as_of), warehouse)
        seconds = time.perf_counter() - started
        if mode == "gx_pandas":
            seconds = report["gx_seconds"]
        print(json.dumps({"mode": mode, "seconds": round(seconds, 2), **report}))
    finally:
        warehouse.engine.dispose()
        wh.drop_database(server_url, database)


if __name__ == "__main__":
    main()
