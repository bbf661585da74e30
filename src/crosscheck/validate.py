"""Great Expectations validation of a staged file, pushed down into PostgreSQL.

Suites are JSON in ``expectations/extracts/<extract>.json``. GX computes the metrics in SQL and
returns counts (SUMMARY, never COMPLETE row lists); when a *critical* expectation fails, the failing
rows are fetched with the SQL query GX reports (``unexpected_index_query``) and quarantined with the
expectation's rule and Chinese reason. *warning* expectations only report (e.g. ID04, ID05 — the
comparison turns those rows into findings). GX is imported here only: it takes seconds to import.
"""

from __future__ import annotations

import html
import importlib
import json
import logging
import os
import re
import sys
import threading
import types
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from pathlib import Path

from psycopg import sql

from crosscheck.ingest import file_table
from crosscheck.settings import EXPECTATIONS_DIR
from crosscheck.warehouse import Warehouse

log = logging.getLogger(__name__)

RESULT_FORMAT = {"result_format": "SUMMARY", "unexpected_index_column_names": ["row_number"],
                 # no sample values: Data Docs pages are linked from the report and must not show IDs
                 "return_unexpected_index_query": True, "partial_unexpected_count": 0}
# Counts only: for warning expectations, whose failing rows are kept.
COUNT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0}


def suite_path(name: str, group: str = "extracts") -> Path:
    return EXPECTATIONS_DIR / group / f"{name}.json"


def import_gx() -> None:
    """Import GX and make its context now (it takes seconds), e.g. in a thread while other work goes on."""
    gx_context()


def import_gx_modules() -> None:
    """Import GX's modules only, e.g. in a process about to fork workers (each makes its own context)."""
    _gx()


# GX imports every expectation it ships when it is imported, and one of them (KL divergence, which no suite
# here uses) imports scipy.stats and altair at its top: about half of GX's import time. They stand in as
# modules that import the real one when an attribute is first read, so an expectation that uses them works.
# (importlib.util.LazyLoader does not help on Python 3.11: the import system reads the lazy module's
# __spec__ while GX imports it, which loads it at once.)
DEFERRED_MODULES = ("scipy.stats", "altair")


class _DeferredModule(types.ModuleType):
    def __getattr__(self, attribute: str):
        if sys.modules.get(self.__name__) is self:
            sys.modules.pop(self.__name__, None)
        return getattr(importlib.import_module(self.__name__), attribute)


@cache
def _gx():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    for name in DEFERRED_MODULES:
        sys.modules.setdefault(name, _DeferredModule(name))
    import great_expectations as gx

    # GX logs internals at INFO (e.g. every default value it looks up); our logs carry the counts.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)

    return gx


_context_lock = threading.Lock()  # the context may be asked for by a thread importing GX ahead of time


def gx_context():
    """One ephemeral GX context per process."""
    with _context_lock:
        return _make_context()


@cache
def _make_context():
    gx = _gx()
    context = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # progress bars are cosmetic
        pass
    return context


def _datasource(warehouse: Warehouse):
    context = gx_context()
    name = "warehouse_" + str(abs(hash(warehouse.url)))
    try:
        return context.data_sources.get(name)
    except Exception:
        # add_postgres rejects socket-only URLs; add_sql accepts any SQLAlchemy URL.
        return context.data_sources.add_sql(name=name, connection_string=warehouse.sqlalchemy_url)


def load_suite(name: str, group: str = "extracts", query_for=None):
    """The suite expectations/<group>/<name>.json as a GX ExpectationSuite.

    ``query_for(spec)`` may supply the SQL of an ``unexpected_rows_expectation`` (the rules suites
    name a file of sql/rules/ instead of repeating its SQL).
    """
    gx = _gx()
    raw = json.loads(suite_path(name, group).read_text(encoding="utf-8"))
    specs = []
    for spec in raw["expectations"]:
        if query_for and spec["type"] == "unexpected_rows_expectation":
            spec = {**spec, "kwargs": {**spec["kwargs"], "unexpected_rows_query": query_for(spec)}}
        specs.append(_escape_braces(spec))
    # Not add_expectation_configuration: it upserts by domain, and every unexpected_rows_expectation has
    # the same (table) domain, so only the last one was kept (residents lost its sex-vs-ID ID04 check).
    expectations = [_configuration(spec).to_domain_obj() for spec in specs]
    return gx.ExpectationSuite(name=f"{group}.{name}", meta=raw.get("meta", {}), expectations=expectations)


def _escape_braces(spec: dict) -> dict:
    """Suite queries are plain SQL with one placeholder, ``{batch}``. GX fills it with ``str.format``, so
    any other brace (a regex quantifier such as ``[0-9]{17}``) must be doubled, or the metric raises and
    the expectation silently "fails" with no count (the ID04 checks of residents and registry did)."""
    if spec["type"] != "unexpected_rows_expectation":
        return spec
    query = spec["kwargs"]["unexpected_rows_query"]
    query = query.replace("{", "{{").replace("}", "}}").replace("{{batch}}", "{batch}")
    return {**spec, "kwargs": {**spec["kwargs"], "unexpected_rows_query": query}}


def _config_spec(config) -> dict:
    """A fresh spec of an evaluated expectation (GX will not put one expectation in two suites)."""
    return {"type": config.type, "kwargs": dict(config.kwargs), "meta": dict(config.meta or {}),
            "description": config.description, "severity": str(getattr(config.severity, "value", config.severity))}


def _subsuite(suite, name: str, keep):
    """A suite of fresh copies of the expectations of ``suite`` whose severity ``keep`` accepts."""
    specs = [_config_spec(e.configuration) for e in suite.expectations]
    return _gx().ExpectationSuite(name=name, meta=suite.meta, expectations=[
        _configuration(spec).to_domain_obj() for spec in specs if keep(spec["severity"])])


def _configuration(spec: dict):
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    return ExpectationConfiguration(type=spec["type"], kwargs=spec["kwargs"], meta=spec.get("meta", {}),
                                    description=spec.get("description"), severity=spec.get("severity", "critical"))


def run_suite(warehouse: Warehouse, suite, schema: str, table: str, run_name: str, result_format=None):
    """Validate the table ``schema.table`` with a suite (from load_suite); return the GX result."""
    gx = _gx()
    context = gx_context()
    source = _datasource(warehouse)
    asset_name = f"{schema}.{table}"
    try:
        asset = source.get_asset(asset_name)
    except LookupError:
        asset = source.add_table_asset(name=asset_name, table_name=table, schema_name=schema)
    try:
        batch = asset.get_batch_definition("whole")
    except KeyError:
        batch = asset.add_batch_definition_whole_table("whole")
    try:
        context.suites.delete(suite.name)
    except Exception:
        pass
    suite = context.suites.add(suite)
    definition_name = f"{suite.name}.{run_name}"
    try:
        context.validation_definitions.delete(definition_name)
    except Exception:
        pass
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=definition_name, data=batch, suite=suite))
    return definition.run(result_format=result_format or RESULT_FORMAT)


def validate_file(warehouse: Warehouse, file_id: int, docs_dir: Path, docs: DataDocsWriter | None = None) -> dict:
    """Run the extract's suite on this file's staged rows; quarantine rows failing critical checks.
    Its Data Docs pages are written before it returns, or by ``docs`` (in the background) when given.

    Returns counts per expectation (for logs and XCom).
    """
    write_page = docs.write if docs is not None else write_data_docs
    with warehouse.connect() as conn:
        extract, status, file_name, as_of = conn.execute(
            "SELECT extract, status, file_name, as_of FROM ingest.files WHERE file_id = %s", (file_id,)).fetchone()
    source = {"file_name": file_name, "as_of": as_of}  # for the Data Docs summary and index
    if status != "staged":
        return {"file_id": file_id, "skipped": status}
    table = file_table(extract, file_id)  # analyzed when it was filled
    suite = load_suite(extract)
    # Critical checks in two passes: whether each holds is cheap (BOOLEAN_ONLY); counts and the query
    # that finds failing rows are asked for only for those that failed (about 3x faster on a million
    # rows, and most files pass most checks).
    critical = _subsuite(suite, suite.name, lambda severity: severity == "critical")
    quick = run_suite(warehouse, critical, "staging", table, f"file_{file_id}",
                      result_format={"result_format": "BOOLEAN_ONLY"})
    results = [r for r in quick.results if r.success]
    failed = [_configuration(_config_spec(r.expectation_config)).to_domain_obj()
              for r in quick.results if not r.success]
    write_page(quick, docs_dir / f"{extract}-{file_id}.html", source)
    if failed:
        detail = _gx().ExpectationSuite(name=f"{suite.name}.failed", expectations=failed)
        detailed = run_suite(warehouse, detail, "staging", table, f"file_{file_id}")
        write_page(detailed, docs_dir / f"{extract}-{file_id}-failed.html", source)
        results += detailed.results
    # Warnings quarantine nothing and often fail on real data (the comparison turns those rows into
    # findings): one pass that counts, without the failing rows' query.
    warning = _subsuite(suite, f"{suite.name}.warning", lambda severity: severity != "critical")
    if warning.expectations:
        counted = run_suite(warehouse, warning, "staging", table, f"file_{file_id}", result_format=COUNT_FORMAT)
        write_page(counted, docs_dir / f"{extract}-{file_id}-warnings.html", source)
        results += counted.results
    return _store_results(warehouse, file_id, extract, table, results)


def _failing_rows_query(res, table: str) -> str | None:
    """SQL selecting row_number of the rows a failed expectation found, from what GX reported."""
    config = res.expectation_config
    if config.type == "unexpected_rows_expectation":
        query = config.kwargs["unexpected_rows_query"].format(batch=f'staging."{table}"')  # undoes the {{ }}
        # The query text comes from the suite JSON in this repository, never from data.
        return f"SELECT row_number FROM ({query}) AS failing"  # noqa: S608
    query = (res.result or {}).get("unexpected_index_query")
    if not query or not isinstance(query, str):
        return None
    # GX generated this query from the suite and the staging table name (both ours).
    return f"SELECT row_number FROM ({query.rstrip().rstrip(';')}) AS failing"  # noqa: S608


def _exception_message(info: dict) -> str:
    if "exception_message" in info:
        return str(info["exception_message"])
    return "; ".join(str(v.get("exception_message")) for v in info.values() if isinstance(v, dict))


def _store_results(warehouse: Warehouse, file_id: int, extract: str, table: str, results: list) -> dict:
    summary = {"file_id": file_id, "success": all(r.success for r in results), "failed": {}}
    with warehouse.transaction() as conn:
        conn.execute("DELETE FROM ingest.validation_results WHERE file_id = %s", (file_id,))
        for res in results:
            config = res.expectation_config
            meta = config.meta or {}
            column = config.kwargs.get("column") or ",".join(config.kwargs.get("column_list", []))
            if (res.exception_info or {}).get("raised_exception") or any(
                    isinstance(v, dict) and v.get("raised_exception") for v in (res.exception_info or {}).values()):
                # an expectation that could not be evaluated is a bug in the suite, not bad data: say so
                log.warning("expectation %s of suite %s raised on file %s: %s", config.type, extract, file_id,
                            _exception_message(res.exception_info))
            unexpected = (res.result or {}).get("unexpected_count")
            if unexpected is None and config.type == "unexpected_rows_expectation":
                unexpected = (res.result or {}).get("observed_value")
            if unexpected is None and res.success:
                unexpected = 0  # passed in the BOOLEAN_ONLY pass: no failing row by definition
            conn.execute(
                "INSERT INTO ingest.validation_results (file_id, suite, expectation, column_name, success,"
                " unexpected_count, element_count, result) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (file_id, extract, config.type, column or None, bool(res.success), unexpected,
                 (res.result or {}).get("element_count"),
                 json.dumps({"meta": meta, "severity": str(config.severity)}, ensure_ascii=False, default=str)))
            if res.success:
                continue
            label = f"{config.type}({column})" if column else config.type
            summary["failed"][label] = unexpected
            if str(getattr(config.severity, "value", config.severity)) != "critical":
                continue
            rows_query = _failing_rows_query(res, table)
            if rows_query is None:
                raise RuntimeError(f"cannot find the failing rows of {label}; add a query for it")
            rule = meta.get("rule", config.type)
            reason = meta.get("reason_zh", config.description or config.type)
            value_expr = sql.SQL("s.{}::text").format(sql.Identifier(column)) if column and "," not in column \
                else sql.SQL("NULL")
            conn.execute(sql.SQL(
                "INSERT INTO ingest.quarantine (file_id, row_number, column_name, value_raw, rule, reason, row_raw) "
                "SELECT s.file_id, s.row_number, %s, {value}, %s, %s, to_jsonb(s) - 'file_id' - 'as_of' "
                "FROM staging.{table} s WHERE s.row_number IN ({rows})"
            ).format(value=value_expr, table=sql.Identifier(table), rows=sql.SQL(rows_query)),
                (column or None, rule, reason))
        conn.execute(
            "UPDATE ingest.files SET status = 'validated', rows_quarantined = "
            "(SELECT count(DISTINCT row_number) FROM ingest.quarantine WHERE file_id = %s) WHERE file_id = %s",
            (file_id, file_id))
    if summary["failed"]:
        log.info("validation of file %s (%s): %s", file_id, extract,
                 ", ".join(f"{k}: {v}" for k, v in summary["failed"].items()))
    return summary




# ------------------------------------------------------------------------------------ Data Docs

# GX's page template pulls Bootstrap, jQuery, Vega and fonts from CDNs; reports must work offline, so
# those tags are removed and a little inline CSS keeps the page readable.
_REMOTE_TAG = re.compile(
    r'<script[^>]+src="https?://[^"]*"[^>]*>\s*</script>|<link[^>]+href="https?://[^"]*"[^>]*/?>'
    r'|<img[^>]+src="https?://[^"]*"[^>]*/?>', re.IGNORECASE)
_REMOTE_LINK = re.compile(r'href="https?://[^"]*"', re.IGNORECASE)
_REMOTE_CSS_URL = re.compile(r"url\(['\"]?https?://[^)]*\)", re.IGNORECASE)
_OFFLINE_CSS = ("<style>body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}.num{text-align:right}"
                "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}.text-danger{color:#b42318}"
                ".text-success{color:#1d6b1d}</style>")


# GX's pages run inline jQuery/Bootstrap code (not shipped offline: "$ is not defined") and end with a
# newsletter footer; neither has a place in a page read offline inside the bureau.
_INLINE_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.IGNORECASE | re.DOTALL)
_FOOTER = re.compile(r"<footer\b[^>]*>.*?</footer>", re.IGNORECASE | re.DOTALL)
_LOCAL_ICON = re.compile(r"<link\b[^>]*rel=\"shortcut icon\"[^>]*>", re.IGNORECASE)  # GX's site's icon: not here


def offline_html(html: str) -> str:
    html = _LOCAL_ICON.sub("", _FOOTER.sub("", _INLINE_SCRIPT.sub("", html)))
    html = _REMOTE_TAG.sub("", html)
    html = _REMOTE_LINK.sub('href="#"', html)
    html = _REMOTE_CSS_URL.sub("none", html)
    return html.replace("</head>", _OFFLINE_CSS + "</head>", 1)


def _summary_facts(result, source: dict | None) -> dict:
    """What the project's own summary page shows of a validation: the file, its date, each check with
    pass/fail and its counts (absent when the check ran in BOOLEAN_ONLY mode: whether it held, no more)."""
    checks = []
    for r in result.results:
        config = r.expectation_config
        counts = r.result or {}
        checks.append({
            "check": (config.meta or {}).get("reason_zh") or config.type,
            "rule": (config.meta or {}).get("rule") or "",
            "column": config.kwargs.get("column") or "、".join(config.kwargs.get("column_list") or []),
            "type": config.type, "success": bool(r.success),
            "rows": counts.get("element_count"), "unexpected": counts.get("unexpected_count"),
            # rounded: a float's long digit run would read as an ID to the masking policy
            "percent": None if counts.get("unexpected_percent") is None else round(counts["unexpected_percent"], 2),
        })
    meta = result.meta or {}
    run_time = getattr(meta.get("run_id"), "run_time", None)
    return {**(source or {}), "suite": meta.get("expectation_suite_name"),
            "run": run_time.isoformat(timespec="seconds") if run_time else None,
            "success": all(c["success"] for c in checks), "checks": checks}


def _percent(value) -> str:
    return "" if value is None else f"{value:.2f}%"


def write_validation_summary(result, path: Path, source: dict | None = None) -> Path:
    """The project's own page beside GX's (``<stem>.summary.html``, plain HTML, no script) and its facts
    (``<stem>.summary.json``, which the index reads): file name, date, pass/fail and counts per check."""
    from crosscheck.masking import for_people

    facts = _summary_facts(result, source)
    rows = "".join(
        f"<tr><td>{html.escape(c['check'])}</td><td>{html.escape(c['rule'])}</td><td>{html.escape(c['column'])}</td>"
        f"<td class='{'text-success' if c['success'] else 'text-danger'}'>{'通过' if c['success'] else '未通过'}</td>"
        f"<td class='num'>{'' if c['rows'] is None else c['rows']}</td>"
        f"<td class='num'>{'' if c['unexpected'] is None else c['unexpected']}</td>"
        f"<td class='num'>{_percent(c['percent'])}</td></tr>" for c in facts["checks"])
    failed = sum(1 for c in facts["checks"] if not c["success"])
    head = (f"<p>文件：{html.escape(str(facts.get('file_name') or facts.get('suite') or path.stem))} · "
            f"数据日期：{html.escape(str(facts.get('as_of') or '—'))} · 校验时间：{html.escape(str(facts['run'] or '—'))}</p>"
            f"<p><b class='{'text-success' if not failed else 'text-danger'}'>"
            f"{'全部通过' if not failed else f'{failed} 项未通过'}</b>（共 {len(facts['checks'])} 项检查）"
            f" · <a href='{html.escape(path.name)}'>GX 原始页面</a> · <a href='index.html'>全部校验</a></p>")
    page = ("<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'>"
            f"<title>校验结果 {html.escape(path.stem)}</title>{_OFFLINE_CSS}</head><body>"
            f"<h1>校验结果 {html.escape(path.stem)}</h1>{head}<table><tr><th>检查项</th><th>规则</th><th>列</th>"
            "<th>结果</th><th>检查行数</th><th>不符合行数</th><th>不符合比例</th></tr>"
            f"{rows}</table><p>行数为空：该项只检查了是否通过（未通过的关键检查另有计数页面）。</p></body></html>")
    summary = path.with_name(f"{path.stem}.summary.html")
    summary.write_text(for_people(page), encoding="utf-8")
    masked = {k: for_people(v) if isinstance(v, str) else v for k, v in facts.items()}
    masked["checks"] = [{k: for_people(v) if isinstance(v, str) else v for k, v in c.items()} for c in facts["checks"]]
    path.with_name(f"{path.stem}.summary.json").write_text(
        json.dumps(masked, ensure_ascii=False, default=str), encoding="utf-8")
    return summary


def write_data_docs(result, path: Path, source: dict | None = None) -> Path:
    """Render one GX validation result as a Data Docs page (GX's own renderer), fit for offline use,
    with the project's summary page beside it (``source``: the file's name and date, when a file's)."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer

    path.parent.mkdir(parents=True, exist_ok=True)
    from crosscheck.masking import for_people

    page = _page_view().render(ValidationResultsPageRenderer().render(result))
    # GX may show sample values (an ID in a partial unexpected list): the page passes the masking policy
    path.write_text(for_people(offline_html(page)), encoding="utf-8")
    write_validation_summary(result, path, source)
    return path


class DataDocsWriter:
    """Writes Data Docs pages in a thread of its own, in the order given, while the night goes on: GX's
    rendering is seconds of Python at 100 k persons that then fills the time this process waits for
    PostgreSQL (the next file's validation queries, the comparison) instead of adding to it. Rendering
    reads a finished validation result and never GX's context (whose objects the validating thread
    uses). ``wait`` returns once every page is written, and raises the first page's error."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="data-docs")
        self._pages: list[Future] = []

    def write(self, result, path: Path, source: dict | None = None) -> None:
        self._pages.append(self._thread.submit(write_data_docs, result, path, source))

    def wait(self) -> None:
        self._thread.shutdown(wait=True)
        for page in self._pages:
            page.result()


@cache
def _page_view():
    """GX's page view, one per process: each makes a Jinja environment of its own, which compiles every
    template again (most of a page's rendering time)."""
    from great_expectations.render.view import DefaultJinjaPageView

    return DefaultJinjaPageView()


# which pass of a file's validation a page holds (validate_file), by its name's ending
_DOC_KINDS = (("-warnings", "（警告类检查，计数）"), ("-failed", "（未通过的关键检查，计数）"), ("", ""))


def write_data_docs_index(docs_dir: Path) -> Path | None:
    """An index of every validation in docs_dir, newest first: file, date, pass/fail, failed checks, links
    to the summary and to GX's page (a page written before summaries existed: its name only)."""
    if not docs_dir.is_dir():
        return None
    pages = sorted((p for p in docs_dir.glob("*.html") if p.name != "index.html" and not p.name.endswith(".summary.html")),
                   key=lambda p: p.stat().st_mtime, reverse=True)
    rows = []
    for page in pages:
        facts_path = page.with_name(f"{page.stem}.summary.json")
        try:
            facts = json.loads(facts_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            facts = None
        if facts is None:
            rows.append(f"<tr><td>{html.escape(page.stem)}</td><td></td><td></td><td></td>"
                        f"<td><a href='{html.escape(page.name)}'>GX</a></td></tr>")
            continue
        failed = sum(1 for c in facts["checks"] if not c["success"])
        summary = f"{page.stem}.summary.html"
        kind = next((z for suffix, z in _DOC_KINDS if page.stem.endswith(suffix)), "")
        rows.append(
            f"<tr><td><a href='{html.escape(summary)}'>{html.escape(str(facts.get('file_name') or page.stem))}</a>"
            f"{html.escape(kind)}</td>"
            f"<td>{html.escape(str(facts.get('as_of') or ''))}</td>"
            f"<td class='{'text-success' if not failed else 'text-danger'}'>{'通过' if not failed else '未通过'}</td>"
            f"<td class='num'>{failed} / {len(facts['checks'])}</td>"
            f"<td><a href='{html.escape(summary)}'>摘要</a> · <a href='{html.escape(page.name)}'>GX</a></td></tr>")
    index = docs_dir / "index.html"
    index.write_text("<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'><title>数据校验明细 GX Data Docs"
                     f"</title>{_OFFLINE_CSS}</head><body><h1>数据校验明细（Great Expectations Data Docs）</h1>"
                     "<p>每个接收文件的校验结果（文件名-编号），以及每晚比对规则的校验结果（rules-日期-分组）。</p>"
                     "<table><tr><th>文件 / 校验</th><th>数据日期</th><th>结果</th><th>未通过 / 检查项</th><th>页面</th></tr>"
                     f"{''.join(rows)}</table></body></html>", encoding="utf-8")
    return index
