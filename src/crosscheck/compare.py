"""The nightly comparison (数据比对): night set-up, rules, findings with a life, indicators, GX checks.

``run_compare(warehouse, D)`` does, for night D:

1. **Night set-up** (one transaction under an advisory lock): per extract, the latest core snapshot
   with ``as_of <= D`` (a department that skipped a night is compared with its earlier extract);
   every extract's age is recorded in ``mart.freshness``. Schema ``night`` is rebuilt: one view per
   extract (``night.residents`` … over the chosen snapshot; an extract never received is a view
   with no rows), ``night.params`` (D, year, last full month, age limits, enabled 代缴
   categories), ``night.extracts`` and the shared helper tables of ``sql/night/*.sql``.
2. **Rules**, per partition of the night (``Partition``: the whole night, or a district's or a
   town's rows — the nightly DAG maps them over workers): every ``sql/rules/*.sql`` is one SELECT
   without bind parameters (it runs as is in psql) returning ``rule_code, subject_key, period,
   id_number, name, town, village, departments, detail, amount``; each partition keeps the rows of
   its towns in ``night.finding_parts`` (and its indicator sums per town in
   ``night.indicator_parts``); then all are materialised into ``night.findings``. In one process:
   ``run_compare``; as steps: ``prepare_compare`` → ``compare_partition`` (each) → ``finish_compare``.
3. **Findings life** (``mart.findings`` / ``mart.finding_nights``): a finding is identified by
   (rule_code, subject_key, period). Statuses are computed against the latest *earlier* night in
   ``mart.finding_nights``: ``new`` (not reported new/open that night), ``open`` (reported new/open
   that night and found again), ``resolved`` (reported new/open that night, not found tonight;
   reported once). A finding whose latest 核查结论 is 不属实 and whose detail and amount
   (``data_hash``) have not changed is never reported ``new`` again: it is reported ``open``. Rerunning a night replaces
   that night's rows: the mart is the same after one run or three.
4. **Indicators** (``sql/indicators/*.sql``, per town, per district when the deployment has several,
   and for the whole as scope ``district``) and data-age indicators (``数据时效_<部门>``) into
   ``mart.indicators``.
5. **Great Expectations**: the suites ``expectations/rules/*.json`` hold one
   ``unexpected_rows_expectation`` per rule (naming its SQL file) over the rule's materialised rows
   in ``night.findings``: the night's GX result says which rules pass and how many rows fail each.
   GX's count is checked against the comparison's (a wiring guard: a GX failure shows as no count)
   and stored in ``mart.rule_checks``.

Outputs: ``write_mismatches`` and ``write_kpis`` (interface.md); the work-list layout
(``WORKLIST_COLUMNS`` / ``WORKLIST_SHEETS``), which crosscheck.feedback reads back.
"""

from __future__ import annotations

import csv
import logging
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from psycopg import sql

from crosscheck.contracts import contracts
from crosscheck.masking import mask_id, neutralise_formula
from crosscheck.reference import District, town_districts
from crosscheck.settings import EXPECTATIONS_DIR, SQL_DIR, Settings, get_settings
from crosscheck.timing import stage
from crosscheck.warehouse import Warehouse

log = logging.getLogger(__name__)

NIGHT_DIR = SQL_DIR / "night"
RULES_DIR = SQL_DIR / "rules"
INDICATORS_DIR = SQL_DIR / "indicators"
RULE_SUITES_DIR = EXPECTATIONS_DIR / "rules"

# Any constant: serialises comparisons on one warehouse (the night schema is shared).
COMPARE_LOCK = 0x636F6D70617265
# Sorts and hashes of a night's tables (a million payments) stay in memory; per transaction only.
WORK_MEM = "128MB"


def _tune(conn, session: bool = False) -> None:
    """Per transaction of the night (or for a whole ``session``): WORK_MEM, and no JIT — the night's
    fresh tables have poor row estimates, which make PostgreSQL compile queries for seconds that then
    run in milliseconds. A session runs rules beside others, so without parallel workers of its own."""
    scope = sql.SQL("SESSION" if session else "LOCAL")
    conn.execute(sql.SQL("SET {} work_mem = {}").format(scope, sql.Literal(WORK_MEM)))
    conn.execute(sql.SQL("SET {} jit = off").format(scope))
    if session:
        conn.execute("SET max_parallel_workers_per_gather = 0")

SEVERITIES = ("critical", "high", "medium", "low")
SEVERITY_ZH = {"critical": "严重", "high": "高", "medium": "中", "low": "低"}
STATUS_ZH = {"new": "新增", "open": "持续", "resolved": "已消除"}
STATUSES = ("new", "open", "resolved")
DEPARTMENT_ZH = {"civil": "民政", "poverty": "扶贫", "finance": "财政", "hrss": "人社"}


@dataclass(frozen=True)
class Rule:
    code: str
    severity: str
    group: str  # identity | pension | employment: the GX suite and the work-list sheet
    title: str


# The one table of rules and severities (rules.md). The SQL is sql/rules/<CODE>[_<CODE>]_<slug>.sql.
RULES: dict[str, Rule] = {r.code: r for r in (
    Rule("ID01", "high", "identity", "身份证号无效"),
    Rule("ID02", "high", "identity", "身份证号被Excel损坏"),
    Rule("ID03", "high", "identity", "同一身份证号姓名不一致"),
    Rule("ID04", "medium", "identity", "性别或出生日期与身份证号不符"),
    Rule("ID05", "medium", "identity", "重复记录或多个贫困户"),
    Rule("ID06", "medium", "identity", "户主不是本户成员"),
    Rule("ID07", "low", "identity", "民政人口信息中无此人"),
    Rule("SS01", "high", "pension", "应参未参"),
    Rule("SS02", "high", "pension", "应代未代"),
    Rule("SS03", "medium", "pension", "不在代缴范围"),
    Rule("SS04", "medium", "pension", "代缴金额不一致"),
    Rule("SS05", "high", "pension", "应发未发"),
    Rule("SS06", "critical", "pension", "死亡冒领"),
    Rule("SS07", "medium", "pension", "死亡未停保"),
    Rule("SS08", "critical", "pension", "重复领取"),
    Rule("SS09", "high", "pension", "未到龄领取"),
    Rule("EM01", "medium", "employment", "公益性岗位人员不符"),
    Rule("EM02", "high", "employment", "无岗位发放公益性岗位补贴"),
    Rule("EM03", "critical", "employment", "死亡后仍发放补贴"),
    Rule("EM04", "medium", "employment", "培训重复补贴"),
    Rule("EM05", "high", "employment", "无救助记录发放低保金/特困供养金"),
)}

# Work lists (worklists/<town>.xlsx): one sheet per rule group, one row per finding, every header in
# Chinese; case workers fill 核查结论 (属实/不属实/已整改) and 备注. crosscheck.feedback reads back
# any sheet that has the 问题编号 and 核查结论 headers.
WORKLIST_SHEETS = {"identity": "基础信息", "pension": "社保扶贫", "employment": "就业扶贫"}
WORKLIST_COLUMNS: tuple[tuple[str, str], ...] = (
    ("finding_id", "问题编号"),
    ("rule_code", "规则"),
    ("rule_title", "问题类型"),
    ("severity", "严重程度"),
    ("id_number", "身份证号"),
    ("name", "姓名"),
    ("town", "镇街"),
    ("village", "村社区"),
    ("departments", "涉及部门"),
    ("period", "期间"),
    ("detail", "问题描述"),
    ("amount", "金额（元）"),
    ("status", "状态"),
    ("first_seen", "首次发现"),
    ("last_seen", "最近发现"),
    ("verdict", "核查结论"),
    ("note", "备注"),
)
VERDICTS = ("属实", "不属实", "已整改")

MISMATCH_COLUMNS = ("rule_code", "severity", "id_number", "name", "town", "village", "departments", "period",
                    "detail", "amount", "status", "first_seen", "last_seen")
KPI_COLUMNS = ("indicator", "scope", "numerator", "denominator", "value")
FINDING_COLUMNS = ("rule_code", "subject_key", "period", "id_number", "name", "town", "village", "departments",
                   "detail", "amount")


@dataclass
class CompareResult:
    as_of: date
    counts: dict[str, int] = field(default_factory=dict)  # findings found tonight, by rule
    by_severity: dict[str, int] = field(default_factory=dict)
    new: int = 0
    open: int = 0
    resolved: int = 0
    stale: list[str] = field(default_factory=list)  # "财政/payments (2026-11-25, 3 天)"
    gx: dict[str, dict] = field(default_factory=dict)  # rule -> {success, count, agrees}
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    duration: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        sev = ", ".join(f"{s} {self.by_severity.get(s, 0)}" for s in SEVERITIES)
        lines = [f"compare {self.as_of}: {self.total} findings ({sev}); new {self.new}, open {self.open}, "
                 f"resolved {self.resolved}; {self.duration:.1f} s ("
                 + ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items()) + ")"]
        if self.stale:
            lines.append("stale data: " + "; ".join(self.stale))
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------ files


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.sql"))


def rule_codes(path: Path) -> list[str]:
    """The rule codes a rule file produces, from its name (ID01_ID02_unusable_id.sql → ID01, ID02)."""
    return [part for part in path.stem.split("_") if re.fullmatch(r"[A-Z]{2}\d{2}", part)]


def rule_sql(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip().rstrip(";")


def _rule_file_of() -> dict[str, Path]:
    found = {code: path for path in rule_files() for code in rule_codes(path)}
    missing = set(RULES) - set(found)
    if missing:
        raise RuntimeError(f"no SQL file for rules {sorted(missing)} in {RULES_DIR}")
    return found


# ------------------------------------------------------------------------------------------ night


def night_params(as_of: date, settings: Settings) -> dict:
    first = as_of.replace(day=1)
    categories = set(settings.subsidy_categories)
    unknown = categories - {"poverty_active", "dibao", "tekun", "severe_disability"}
    if unknown:
        raise ValueError(f"unknown subsidy_categories in settings: {sorted(unknown)}")
    return {
        "as_of": as_of, "year": as_of.year, "year_start": date(as_of.year, 1, 1),
        "year_end": date(as_of.year, 12, 1), "last_full_month": (first - timedelta(days=1)).replace(day=1),
        "enrol_min_age": settings.enrol_min_age, "pension_min_age": settings.pension_min_age,
        "poverty_active": "poverty_active" in categories, "dibao": "dibao" in categories,
        "tekun": "tekun" in categories, "severe_disability": "severe_disability" in categories,
        "stale_after_days": settings.stale_after_days,
    }


def _insert(conn, table: str, row: dict) -> None:
    schema, name = table.split(".")
    conn.execute(sql.SQL("INSERT INTO {}.{} ({}) VALUES ({})").format(
        sql.Identifier(schema), sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, row)),
        sql.SQL(", ").join(sql.Placeholder() * len(row))), list(row.values()))


def setup_night(conn, as_of: date, settings: Settings) -> list[dict]:
    """Rebuild schema ``night`` for night D; record freshness. Returns the freshness rows."""
    conn.execute((NIGHT_DIR / "00_schema.sql").read_text(encoding="utf-8"))
    _insert(conn, "night.params", {**night_params(as_of, settings), "night_id": uuid.uuid4().hex})
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO night.town_districts (town, town_code, district_code, district) "
                        "VALUES (%(town)s, %(town_code)s, %(district_code)s, %(district)s)",
                        town_districts(settings.districts))
    # Every snapshot in core came from a loaded file, whose partition was analyzed when it was filled
    # (crosscheck.ingest._copy_to_staging): the night's views prune to that one partition.
    freshness = []
    for extract, contract in contracts().items():
        data_as_of = conn.execute(
            "SELECT max(as_of) FROM ingest.files WHERE extract = %s AND status = 'loaded' AND as_of <= %s",
            (extract, as_of)).fetchone()[0]
        age = (as_of - data_as_of).days if data_as_of else None
        stale = age is None or age > settings.stale_after_days
        row = {"extract": extract, "department": contract.department,
               "dept_zh": DEPARTMENT_ZH.get(contract.department, contract.department), "title": contract.title,
               "data_as_of": data_as_of, "age_days": age, "stale": stale}
        _insert(conn, "night.extracts", row)
        freshness.append(row)
        where = sql.SQL("as_of = {}").format(sql.Literal(data_as_of)) if data_as_of else sql.SQL("false")
        conn.execute(sql.SQL("CREATE VIEW night.{t} AS SELECT * FROM core.{t} WHERE {w}").format(
            t=sql.Identifier(extract), w=where))
    conn.execute("CREATE TABLE night.rules (rule_code text PRIMARY KEY, severity text NOT NULL, "
                 "rule_group text NOT NULL, title text NOT NULL, sql_file text NOT NULL)")
    files = _rule_file_of()
    for rule in RULES.values():
        _insert(conn, "night.rules", {"rule_code": rule.code, "severity": rule.severity, "rule_group": rule.group,
                                      "title": rule.title, "sql_file": str(files[rule.code].relative_to(SQL_DIR))})
    for path in sorted(NIGHT_DIR.glob("*.sql")):
        if path.name != "00_schema.sql":
            conn.execute(path.read_text(encoding="utf-8"))
    for (table,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'night'").fetchall():
        conn.execute(sql.SQL("ANALYZE night.{}").format(sql.Identifier(table)))
    conn.execute("DELETE FROM mart.freshness WHERE as_of = %s", (as_of,))
    for row in freshness:
        # A held file newer than the snapshot in use (crosscheck.ingest.load_or_hold) is shown beside it,
        # unless a later file of its date has been loaded since (the department re-sent a good export).
        held = conn.execute(
            "SELECT file_id, as_of FROM ingest.files h WHERE extract = %s AND status = 'held' AND as_of <= %s "
            "AND as_of >= coalesce(%s, '-infinity'::date) AND NOT EXISTS (SELECT 1 FROM ingest.files l "
            "WHERE l.extract = h.extract AND l.as_of = h.as_of AND l.file_id > h.file_id AND l.status = 'loaded') "
            "ORDER BY as_of DESC, file_id DESC LIMIT 1",
            (row["extract"], as_of, row["data_as_of"])).fetchone()
        row["held_file_id"], row["held_as_of"] = held or (None, None)
        _insert(conn, "mart.freshness", {"as_of": as_of, "department": row["department"], "extract": row["extract"],
                                         "data_as_of": row["data_as_of"], "age_days": row["age_days"],
                                         "stale": row["stale"], "held_file_id": row["held_file_id"],
                                         "held_as_of": row["held_as_of"]})
    return freshness


# ------------------------------------------------------------------------------------ partitions


@dataclass(frozen=True)
class Partition:
    """A share of the night: the rule rows and indicator rows whose ``town`` is one of ``towns``, or,
    for the first partition of a plan, whose town is none of ``excluding`` (the other partitions'
    towns): it also takes the towns the reference data does not know and rows without a town.

    With neither, the whole night (what ``crosscheck run`` evaluates in one go). Together the
    partitions of a plan take every row exactly once, so the partitioned night equals the
    unpartitioned one. A partition is plain JSON for XCom (``as_dict`` / ``from_dict``).
    """

    key: str
    towns: tuple[str, ...] | None = None
    excluding: tuple[str, ...] | None = None

    def where(self, column: sql.Composable) -> sql.Composable:
        if self.towns is not None:
            return sql.SQL("{} = ANY({}::text[])").format(column, sql.Literal(list(self.towns)))
        if self.excluding is not None:
            return sql.SQL("({c} IS NULL OR NOT {c} = ANY({t}::text[]))").format(
                c=column, t=sql.Literal(list(self.excluding)))
        return sql.SQL("true")

    def as_dict(self) -> dict:
        return {"key": self.key, "towns": None if self.towns is None else list(self.towns),
                "excluding": None if self.excluding is None else list(self.excluding)}

    @classmethod
    def from_dict(cls, value: dict) -> Partition:
        def _tuple(key):
            return None if value.get(key) is None else tuple(value[key])

        return cls(value["key"], _tuple("towns"), _tuple("excluding"))


WHOLE_NIGHT = Partition("全部")
PARTITION_BY = ("none", "district", "town")


def plan_partitions(conn, by: str) -> list[Partition]:
    """The partitions of tonight's rows: one (``none``, or a single district), one per district, or
    one per town. Towns are those of tonight's people (``night.towns``), districts those of the
    reference data (``night.town_districts``); the first partition also takes whatever town the
    reference data does not know, so there is no partition of leftovers costing a whole night."""
    if by not in PARTITION_BY:
        raise ValueError(f"night_partitions must be one of {PARTITION_BY}, not {by!r}")
    rows = conn.execute("SELECT t.town, d.district_code, d.district FROM night.towns t "
                        "JOIN night.town_districts d USING (town) ORDER BY d.district_code, d.town_code").fetchall()
    groups: dict[str, list[str]] = {}
    for town, code, district in rows:
        groups.setdefault(town if by == "town" else f"{district}（{code}）", []).append(town)
    if by == "none" or len(groups) < 2:
        return [WHOLE_NIGHT]
    (first, _), *others = groups.items()
    return [Partition(first, excluding=tuple(t for _, towns in others for t in towns))] + [
        Partition(key, tuple(towns)) for key, towns in others]


def evaluate_partition(conn, partition: Partition, warehouse: Warehouse | None = None,
                       connections: int = 1) -> dict[str, float]:
    """Run every rule file and indicator file over one partition into ``night.finding_parts`` and
    ``night.indicator_parts`` (replacing the partition's earlier rows: a retried partition leaves
    no duplicates). Returns seconds per file.

    With ``connections`` > 1 (and the ``warehouse`` to open them on) the files run side by side on
    that many connections of their own, each file in one autocommitted INSERT: each statement runs
    on one core of the server, and several keep several cores busy (rules at 1 M persons on 2 cores:
    40 s one after another, 20 s on two connections). Should one fail, the partition fails; its retry
    deletes whatever rows the others had added before it adds any.
    """
    cols = sql.SQL(", ").join(map(sql.Identifier, FINDING_COLUMNS))
    key = sql.Literal(partition.key)
    side_by_side = connections > 1 and warehouse is not None
    # The other connections must not see this partition's earlier rows (40_death_fraud.sql reads
    # the rule rows): with them, the deletion is committed before they start.
    with warehouse.connect(autocommit=True) if side_by_side else nullcontext(conn) as on:
        on.execute("DELETE FROM night.finding_parts WHERE partition_key = %s", (partition.key,))
        on.execute("DELETE FROM night.indicator_parts WHERE partition_key = %s", (partition.key,))
    rules = [(path.name, sql.SQL(
        "INSERT INTO night.finding_parts (partition_key, {cols}) SELECT {key}, rule_code, subject_key, "
        "coalesce(period, ''), id_number, name, town, village, departments, detail, amount FROM ({q}) AS r "
        "WHERE {where}").format(cols=cols, key=key, q=sql.SQL(rule_sql(path)),
                                where=partition.where(sql.SQL("r.town")))) for path in rule_files()]
    # Sums per town: the district's sums are sums of these, whatever the partitions.
    indicators = [(path.name, sql.SQL(
        "INSERT INTO night.indicator_parts (partition_key, indicator, town, numerator, denominator) "
        "SELECT {key}, indicator, town, sum(numerator), sum(denominator) FROM ({q}) AS raw WHERE {where} "
        "GROUP BY indicator, town").format(key=key, q=sql.SQL(rule_sql(path)),
                                           where=partition.where(sql.SQL("raw.town"))))
        for path in sorted(INDICATORS_DIR.glob("*.sql"))]
    seconds: dict[str, float] = {}

    def run(on, name: str, statement) -> None:
        started = time.perf_counter()
        n = on.execute(statement).rowcount
        seconds[name] = time.perf_counter() - started
        log.debug("%s, partition %s: %d rows in %.2f s", name, partition.key, n, seconds[name])

    # indicators after every rule: 40_death_fraud.sql sums the rule rows
    for name, statements in (("rules", rules), ("indicators", indicators)):
        with stage(name):
            if side_by_side:
                _side_by_side(warehouse, connections, statements, run)
            else:
                for item in statements:
                    run(conn, *item)
    return seconds


def _side_by_side(warehouse: Warehouse, connections: int, statements, run) -> None:
    """``run(connection, *item)`` for every item of ``statements``, on ``connections`` autocommit
    connections of their own, each taking the next item when it is free."""
    pending = iter(statements)
    lock = threading.Lock()

    def take():
        with lock:
            return next(pending, None)

    def worker() -> None:
        with warehouse.connect(autocommit=True) as own:
            _tune(own, session=True)
            while (item := take()) is not None:
                run(own, *item)

    with ThreadPoolExecutor(max_workers=connections, thread_name_prefix="rules") as pool:
        for future in [pool.submit(worker) for _ in range(connections)]:
            future.result()


# What a 不属实 verdict is given on (rules.md: "unless … its detail and amount are unchanged"); the
# same expression is in sql/migrations/0008_finding_life.sql, which recomputed the stored hashes.
DATA_HASH = "md5(concat_ws('|', {t}.detail, {t}.amount::text))"


def materialise_findings(conn) -> None:
    """Gather the partitions' rows into night.findings; severity and data_hash added."""
    cols = sql.SQL(", ").join(map(sql.Identifier, FINDING_COLUMNS))
    conn.execute("DROP TABLE IF EXISTS night.findings")  # a retried finish step
    conn.execute(sql.SQL(
        "CREATE TABLE night.findings AS SELECT {cols}, NULL::text AS severity, NULL::text AS data_hash "
        "FROM night.finding_parts").format(cols=cols))
    unknown = [r[0] for r in conn.execute(
        "SELECT DISTINCT rule_code FROM night.findings WHERE rule_code NOT IN (SELECT rule_code FROM night.rules)")]
    if unknown:
        raise RuntimeError(f"rule SQL produced unknown rule codes {unknown}")
    conn.execute(
        f"UPDATE night.findings f SET severity = r.severity, data_hash = {DATA_HASH.format(t='f')} "  # noqa: S608 (module constants)
        "FROM night.rules r WHERE r.rule_code = f.rule_code")
    dups = conn.execute(
        "SELECT rule_code, subject_key, period, count(*) FROM night.findings GROUP BY 1, 2, 3 HAVING count(*) > 1 "
        "ORDER BY 1, 2, 3 LIMIT 5").fetchall()
    if dups:
        log.warning("rules produced the same finding twice, keeping one: %s",  # subject keys are ID numbers
                    [(code, mask_id(key), period, n) for code, key, period, n in dups])
        conn.execute(
            "DELETE FROM night.findings f USING (SELECT ctid, row_number() OVER (PARTITION BY rule_code, subject_key, "
            "period ORDER BY detail, data_hash) AS n FROM night.findings) d WHERE f.ctid = d.ctid AND d.n > 1")
    conn.execute("ALTER TABLE night.findings ADD PRIMARY KEY (rule_code, subject_key, period)")


# Over a finding's nights up to the one reported (rules.md, "Findings and their life"): first seen is
# the night it was last reported new (a finding back after it was resolved is new again, unless a
# 不属实 verdict brought it back open, which keeps the old first seen); last seen is the last night
# it was found, so a resolved finding keeps that night.
FIRST_SEEN = "coalesce(max(as_of) FILTER (WHERE status = 'new'), min(as_of))"
LAST_SEEN = "coalesce(max(as_of) FILTER (WHERE status <> 'resolved'), min(as_of))"


def merge_findings(conn, as_of: date) -> None:
    """Merge night.findings into mart.findings / mart.finding_nights for night D (replacing D's rows)."""
    previous = conn.execute("SELECT max(as_of) FROM mart.finding_nights WHERE as_of < %s", (as_of,)).fetchone()[0]
    conn.execute("CREATE TEMP TABLE touched (finding_id bigint PRIMARY KEY) ON COMMIT DROP")
    conn.execute("WITH gone AS (DELETE FROM mart.finding_nights WHERE as_of = %s RETURNING finding_id) "
                 "INSERT INTO touched SELECT DISTINCT finding_id FROM gone", (as_of,))
    # Tonight's data; a finding's data is only taken from the latest night that saw it.
    conn.execute(
        "INSERT INTO mart.findings AS m (rule_code, subject_key, period, severity, id_number, name, town, village, "
        " departments, detail, amount, data_hash, status, first_seen, last_seen) "
        "SELECT rule_code, subject_key, period, severity, id_number, name, town, village, departments, detail, "
        " amount, data_hash, 'new', %(d)s, %(d)s FROM night.findings ORDER BY rule_code, subject_key, period "
        "ON CONFLICT (rule_code, subject_key, period) DO UPDATE SET severity = EXCLUDED.severity, "
        " id_number = EXCLUDED.id_number, name = EXCLUDED.name, town = EXCLUDED.town, village = EXCLUDED.village, "
        " departments = EXCLUDED.departments, detail = EXCLUDED.detail, amount = EXCLUDED.amount, "
        " data_hash = EXCLUDED.data_hash "
        "WHERE NOT EXISTS (SELECT 1 FROM mart.finding_nights n WHERE n.finding_id = m.finding_id AND n.as_of > %(d)s)",
        {"d": as_of})
    conn.execute(
        "WITH prev AS (SELECT finding_id FROM mart.finding_nights WHERE as_of = %(p)s AND status IN ('new', 'open')), "
        "tonight AS (SELECT m.finding_id, t.data_hash FROM night.findings t "
        "  JOIN mart.findings m USING (rule_code, subject_key, period)), "
        "verdict AS (SELECT DISTINCT ON (finding_id) finding_id, verdict, data_hash FROM mart.feedback "
        "  ORDER BY finding_id, received_at DESC, source_file DESC) "
        "INSERT INTO mart.finding_nights (as_of, finding_id, status) "
        "SELECT %(d)s, t.finding_id, CASE WHEN p.finding_id IS NOT NULL THEN 'open' "
        "  WHEN v.verdict = '不属实' AND v.data_hash = t.data_hash THEN 'open' ELSE 'new' END "
        "FROM tonight t LEFT JOIN prev p USING (finding_id) LEFT JOIN verdict v USING (finding_id) "
        "UNION ALL "
        "SELECT %(d)s, p.finding_id, 'resolved' FROM prev p "
        "WHERE NOT EXISTS (SELECT 1 FROM tonight t WHERE t.finding_id = p.finding_id)",
        {"d": as_of, "p": previous})
    conn.execute("INSERT INTO touched SELECT finding_id FROM mart.finding_nights WHERE as_of = %s "
                 "ON CONFLICT DO NOTHING", (as_of,))
    # Findings no night reports any more (a rerun with other data) go, unless case workers answered them.
    conn.execute(
        "DELETE FROM mart.findings m WHERE m.finding_id IN (SELECT finding_id FROM touched) "
        "AND NOT EXISTS (SELECT 1 FROM mart.finding_nights n "
        "WHERE n.finding_id = m.finding_id) AND NOT EXISTS (SELECT 1 FROM mart.feedback f "
        "WHERE f.finding_id = m.finding_id)")
    # status / first_seen / last_seen / resolved_on as of each finding's latest night.
    conn.execute(
        "UPDATE mart.findings m SET status = s.status, first_seen = s.first_seen, last_seen = s.last_seen, "  # noqa: S608 (module constants)
        " resolved_on = s.resolved_on "
        "FROM (SELECT finding_id, (array_agg(status ORDER BY as_of DESC))[1] AS status, "
        f"  {FIRST_SEEN} AS first_seen, {LAST_SEEN} AS last_seen, "
        "  CASE WHEN (array_agg(status ORDER BY as_of DESC))[1] = 'resolved' THEN max(as_of) END AS resolved_on "
        "  FROM mart.finding_nights WHERE finding_id IN (SELECT finding_id FROM touched) GROUP BY finding_id) s "
        "WHERE s.finding_id = m.finding_id AND (m.status, m.first_seen, m.last_seen, m.resolved_on) "
        " IS DISTINCT FROM (s.status, s.first_seen, s.last_seen, s.resolved_on)")


def compute_indicators(conn, as_of: date, freshness: list[dict]) -> None:
    """Indicators per town, per district when the deployment has several, and for the whole
    (scope ``district``), from the partitions' sums per town."""
    conn.execute("DELETE FROM mart.indicators WHERE as_of = %s", (as_of,))
    conn.execute(
        "WITH raw AS (SELECT indicator, town, numerator, denominator FROM night.indicator_parts), "
        "districts AS (SELECT town, district FROM night.town_districts "
        " WHERE (SELECT count(DISTINCT district_code) FROM night.town_districts) > 1), "
        "scoped AS ("
        " SELECT indicator, town AS scope, sum(numerator) AS n, sum(denominator) AS d FROM raw GROUP BY indicator, town "
        " UNION ALL SELECT indicator, district, sum(numerator), sum(denominator) FROM raw JOIN districts USING (town) "
        "  GROUP BY indicator, district "
        " UNION ALL SELECT indicator, 'district', sum(numerator), sum(denominator) FROM raw GROUP BY indicator) "
        "INSERT INTO mart.indicators (as_of, indicator, scope, numerator, denominator, value) "
        "SELECT %s, indicator, scope, n, d, CASE WHEN d IS NULL THEN n WHEN d = 0 THEN NULL "
        " ELSE round(n / d, 4) END FROM scoped", (as_of,))
    # Data age per department (days since its oldest-used extract; NULL: an extract never received).
    by_dept: dict[str, list[dict]] = {}
    for row in freshness:
        by_dept.setdefault(row["dept_zh"], []).append(row)
    stale_count = 0
    for dept, rows in by_dept.items():
        ages = [r["age_days"] for r in rows]
        age = None if any(a is None for a in ages) else max(ages)
        stale_count += any(r["stale"] for r in rows)
        _insert(conn, "mart.indicators", {"as_of": as_of, "indicator": f"数据时效_{dept}", "scope": "district",
                                          "numerator": age, "denominator": None, "value": age})
    _insert(conn, "mart.indicators", {"as_of": as_of, "indicator": "数据过期部门数", "scope": "district",
                                      "numerator": stale_count, "denominator": None,
                                      "value": stale_count})


# ------------------------------------------------------------------------------------------- GX


# GX reads each rule's rows from night.findings, where the rule's SQL file (its only copy) has just
# materialised them: running every rule query a second time inside GX doubled the comparison time at
# district scale. The batch (night.params, one row) only anchors the query to the asset.
# GX substitutes {batch} with an unaliased subquery when the query has a JOIN, and PostgreSQL before
# 16 requires an alias on every subquery in FROM: hence "AS params_batch".
GX_RULE_QUERY = ("SELECT f.* FROM night.findings AS f "
                 "CROSS JOIN (SELECT 1 AS one FROM {{batch}} AS params_batch LIMIT 1) AS b "
                 "WHERE f.rule_code = '{rule}'")


def _rule_query(spec: dict) -> str:
    """The GX query of a rule expectation; the rule code is checked against RULES (no outside input)."""
    meta = spec.get("meta", {})
    if meta.get("rule") not in RULES or not (SQL_DIR / meta.get("sql_file", "-")).is_file():
        raise ValueError(f"rule expectation without a known rule and an existing sql_file: {meta}")
    return GX_RULE_QUERY.format(rule=meta["rule"])


def run_rule_suites(warehouse: Warehouse, as_of: date) -> dict[str, dict]:
    """Run every rules suite over night.params; return {rule: {success, count}}."""
    from crosscheck.validate import load_suite, run_suite, write_data_docs

    out = {}
    for path in sorted(RULE_SUITES_DIR.glob("*.json")):
        suite = load_suite(path.stem, "rules", query_for=_rule_query)
        result = run_suite(warehouse, suite, "night", "params", as_of.isoformat())
        write_data_docs(result, get_settings().reports_dir / "data_docs" / f"rules-{as_of}-{path.stem}.html",
                        {"file_name": f"比对规则 {WORKLIST_SHEETS.get(path.stem, path.stem)}", "as_of": as_of})
        for res in result.results:
            rule = (res.expectation_config.meta or {}).get("rule")
            if rule:
                if res.exception_info and res.exception_info.get("raised_exception"):
                    log.warning("GX check of %s raised: %s", rule,
                                str(res.exception_info.get("exception_message"))[:300])
                out[rule] = {"success": bool(res.success), "count": (res.result or {}).get("observed_value")}
    return out


def store_rule_checks(conn, as_of: date, counts: dict[str, int], gx: dict[str, dict] | None) -> list[str]:
    files = _rule_file_of()
    warnings = []
    conn.execute("DELETE FROM mart.rule_checks WHERE as_of = %s", (as_of,))
    for code, rule in RULES.items():
        found = counts.get(code, 0)
        check = (gx or {}).get(code)
        agrees = None if check is None else check["count"] == found
        if gx is not None and check is None:
            warnings.append(f"GX has no expectation for rule {code}")
        elif agrees is False:
            warnings.append(f"rule {code}: GX counted {check['count']} rows, the comparison materialised {found}")
        _insert(conn, "mart.rule_checks", {
            "as_of": as_of, "rule_code": code, "severity": rule.severity,
            "sql_file": str(files[code].relative_to(SQL_DIR)), "found": found,
            "gx_success": None if check is None else check["success"],
            "gx_count": None if check is None else check["count"], "agrees": agrees})
    for w in warnings:
        log.warning("%s", w)
    return warnings


# ------------------------------------------------------------------------------------------- run


def run_compare(warehouse: Warehouse, as_of: date, settings: Settings | None = None, gx: bool = True,
                partition_by: str = "none") -> CompareResult:
    """Compare night D in one process: set-up, every partition, then findings life, indicators and
    GX checks. The nightly DAG runs the same three steps as separate tasks (prepare_compare,
    compare_partition mapped over the partitions, finish_compare)."""
    settings = settings or get_settings()
    started = time.perf_counter()
    result = CompareResult(as_of)
    with warehouse.connect() as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (COMPARE_LOCK,))
        conn.commit()
        try:
            with _run_status(conn, as_of, start=True):
                t = time.perf_counter()
                partitions = _prepare(conn, as_of, settings, partition_by)
                result.seconds["setup"] = time.perf_counter() - t
                t = time.perf_counter()
                for partition in partitions:
                    with conn.transaction():
                        _tune(conn)
                        evaluate_partition(conn, partition, warehouse, settings.night_connections)
                result.seconds["partitions"] = time.perf_counter() - t  # rules and indicator sums
                _finish(warehouse, conn, as_of, settings, gx, result)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (COMPARE_LOCK,))
            conn.commit()
    result.duration = time.perf_counter() - started
    log.info("%s", result.describe())
    return result


def prepare_compare(warehouse: Warehouse, as_of: date, settings: Settings | None = None,
                    partition_by: str | None = None) -> list[dict]:
    """Step 1 of the partitioned night: set up schema ``night`` for D; return the partitions (JSON)."""
    settings = settings or get_settings()
    with warehouse.connect() as conn:
        with _run_status(conn, as_of, start=True, done=False):
            partitions = _prepare(conn, as_of, settings, partition_by or settings.night_partitions)
            night_id = conn.execute("SELECT night_id FROM night.params").fetchone()[0]
    return [{**p.as_dict(), "night_id": night_id} for p in partitions]


def compare_partition(warehouse: Warehouse, as_of: date, partition: dict) -> dict[str, int]:
    """Step 2, once per partition (in any order, on any worker, retried alone): the partition's
    rule and indicator rows. Returns its findings per rule."""
    part = Partition.from_dict(partition)
    with warehouse.connect() as conn:
        with _run_status(conn, as_of, done=False), conn.transaction():
            # Shared: partitions run side by side; set-up and finish take the lock exclusively.
            conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (COMPARE_LOCK,))
            _check_night(conn, as_of, partition.get("night_id"))
            _tune(conn)
            evaluate_partition(conn, part, warehouse, get_settings().night_connections)
            return dict(conn.execute("SELECT rule_code, count(*) FROM night.finding_parts WHERE partition_key = %s "
                                     "GROUP BY 1 ORDER BY 1", (part.key,)).fetchall())


def finish_compare(warehouse: Warehouse, as_of: date, settings: Settings | None = None, gx: bool = True,
                   night_id: str | None = None) -> CompareResult:
    """Step 3: gather the partitions, merge the findings' life, indicators, GX checks; run done."""
    settings = settings or get_settings()
    started = time.perf_counter()
    result = CompareResult(as_of)
    with warehouse.connect() as conn:
        with _run_status(conn, as_of):
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (COMPARE_LOCK,))
                _check_night(conn, as_of, night_id)
            _finish(warehouse, conn, as_of, settings, gx, result)
    result.duration = time.perf_counter() - started
    log.info("%s", result.describe())
    return result


@contextmanager
def _run_status(conn, as_of: date, start: bool = False, done: bool = True):
    """mart.runs: 'running' first when ``start``, 'failed' when the block raises, 'done' when it ends
    and ``done``."""
    if start:
        with conn.transaction():
            conn.execute(
                "INSERT INTO mart.runs (as_of, status) VALUES (%s, 'running') ON CONFLICT (as_of) DO UPDATE "
                "SET started_at = now(), finished_at = NULL, status = 'running'", (as_of,))
    try:
        yield
    except BaseException:
        conn.rollback()
        with conn.transaction():
            conn.execute("UPDATE mart.runs SET status = 'failed', finished_at = now() WHERE as_of = %s", (as_of,))
        raise
    if done:
        with conn.transaction():
            conn.execute("INSERT INTO mart.runs (as_of, status, finished_at) VALUES (%s, 'done', now()) "
                         "ON CONFLICT (as_of) DO UPDATE SET status = 'done', finished_at = now()", (as_of,))


def _check_night(conn, as_of: date, night_id: str | None) -> None:
    """Schema ``night`` is shared: refuse when a set-up ran since the one this step belongs to."""
    row = conn.execute("SELECT as_of, night_id FROM night.params").fetchone()
    if row is None or row[0] != as_of or (night_id and row[1] != night_id):
        raise RuntimeError(f"schema night was set up again since this night's set-up ({row[0] if row else 'none'}):"
                           f" rerun the night from its set-up step")


def _prepare(conn, as_of: date, settings: Settings, partition_by: str) -> list[Partition]:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (COMPARE_LOCK,))
        _tune(conn)
        setup_night(conn, as_of, settings)
        return plan_partitions(conn, partition_by)


def _finish(warehouse: Warehouse, conn, as_of: date, settings: Settings, gx: bool, result: CompareResult) -> None:
    freshness = [dict(zip(("department", "dept_zh", "extract", "data_as_of", "age_days", "stale"), r, strict=True))
                 for r in conn.execute("SELECT department, dept_zh, extract, data_as_of, age_days, stale "
                                       "FROM night.extracts ORDER BY department, extract").fetchall()]
    conn.commit()
    result.stale = [f"{r['dept_zh']}/{r['extract']} ("
                    + (f"{r['data_as_of']}, {r['age_days']} 天" if r["data_as_of"] else "从未报送") + ")"
                    for r in freshness if r["stale"]]

    t = time.perf_counter()
    with conn.transaction():
        _tune(conn)
        materialise_findings(conn)
        merge_findings(conn, as_of)
        counts = dict(conn.execute("SELECT rule_code, count(*) FROM night.findings GROUP BY 1 ORDER BY 1").fetchall())
        result.counts = {code: counts.get(code, 0) for code in RULES}
        severity = dict(conn.execute("SELECT severity, count(*) FROM night.findings GROUP BY 1").fetchall())
        result.by_severity = {s: severity.get(s, 0) for s in SEVERITIES}
        statuses = dict(conn.execute("SELECT status, count(*) FROM mart.finding_nights WHERE as_of = %s GROUP BY 1",
                                     (as_of,)).fetchall())
        result.new, result.open, result.resolved = (statuses.get(s, 0) for s in STATUSES)
    result.seconds["merge"] = time.perf_counter() - t

    t = time.perf_counter()
    with conn.transaction(), stage("indicators"):
        compute_indicators(conn, as_of, freshness)
    result.seconds["indicators"] = time.perf_counter() - t

    t = time.perf_counter()
    checks = None
    if gx:
        try:
            checks = run_rule_suites(warehouse, as_of)
        except Exception as exc:  # the findings stand without the cross-check; say so
            result.warnings.append(f"GX rule suites failed: {str(exc).splitlines()[0]}")
            log.exception("GX rule suites failed")
    with conn.transaction():
        result.warnings += store_rule_checks(conn, as_of, result.counts, checks)
    result.gx = {code: {**c, "agrees": c["count"] == result.counts.get(code, 0)} for code, c in (checks or {}).items()}
    result.seconds["gx"] = time.perf_counter() - t


# --------------------------------------------------------------------------------------- outputs


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def stale_notes(warehouse: Warehouse, as_of: date) -> dict[str, str]:
    """{部门: note} for departments whose data used on night D is stale or missing."""
    notes: dict[str, list[str]] = {}
    with warehouse.reporting() as conn:
        rows = conn.execute("SELECT department, extract, data_as_of, age_days FROM mart.freshness "
                            "WHERE as_of = %s AND stale ORDER BY department, extract", (as_of,)).fetchall()
    for department, extract, data_as_of, age in rows:
        title = contracts()[extract].title if extract in contracts() else extract
        note = (f"{title}数据截至{data_as_of.isoformat()}，已{age}天未更新" if data_as_of
                else f"从未报送{title}")
        notes.setdefault(DEPARTMENT_ZH.get(department, department), []).append(note)
    return {dept: "；".join(items) for dept, items in notes.items()}


def mismatch_rows(warehouse: Warehouse, as_of: date) -> list[dict]:
    """Every finding reported on night D (new, open, resolved), as of that night, sorted.

    first_seen / last_seen are computed from the nights up to D, so the output of an earlier night
    can be reproduced later.
    """
    with warehouse.reporting() as conn:
        cur = conn.execute(
            "SELECT m.finding_id, m.rule_code, m.severity, m.id_number, m.name, m.town, m.village, m.departments, "  # noqa: S608 (module constants)
            " m.period, m.detail, m.amount, n.status, s.first_seen, s.last_seen, m.subject_key "
            "FROM mart.finding_nights n JOIN mart.findings m USING (finding_id) "
            f"JOIN (SELECT finding_id, {FIRST_SEEN} AS first_seen, {LAST_SEEN} AS last_seen "
            "  FROM mart.finding_nights WHERE as_of <= %(d)s AND finding_id IN "
            "  (SELECT finding_id FROM mart.finding_nights WHERE as_of = %(d)s) GROUP BY finding_id) s USING (finding_id) "
            "WHERE n.as_of = %(d)s", {"d": as_of})
        names = [c.name for c in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    srank = {s: i for i, s in enumerate(STATUSES)}
    rows.sort(key=lambda r: (rank.get(r["severity"], 9), r["rule_code"], srank.get(r["status"], 9),
                             r["town"] or "", r["village"] or "", r["id_number"] or "", r["period"],
                             r["subject_key"]))
    return rows


def write_mismatches(warehouse: Warehouse, as_of: date, path: Path, towns: tuple[str, ...] | None = None) -> int:
    """mismatches.csv for night D (interface.md): UTF-8 with BOM, one row per finding reported that night.

    Columns ``rule_code, severity, id_number, name, town, village, departments, period, detail,
    amount, status, first_seen, last_seen``; sorted by severity (critical first), rule, status,
    town, village, ID number, period. Cells a spreadsheet would take for a formula (starting with
    = + - @) are prefixed with a single quote.

    Stale data: when a department's extract used that night is older than ``stale_after_days``
    (or was never received), every finding involving that department gets the note
    ``【数据时效提示：人社：养老保险待遇发放明细数据截至2026-11-25，已3天未更新】`` at the end of
    its detail, so whoever reads the row knows it may reflect old data.
    """
    rows = [r for r in mismatch_rows(warehouse, as_of) if towns is None or r["town"] in towns]
    notes = stale_notes(warehouse, as_of)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(MISMATCH_COLUMNS)
        for r in rows:
            r = dict(r)
            depts = (r["departments"] or "").split(",")
            flagged = [f"{d}：{notes[d]}" for d in depts if d in notes]
            if flagged:
                r["detail"] = (r["detail"] or "") + "【数据时效提示：" + "；".join(flagged) + "】"
            writer.writerow([neutralise_formula(_text(r[c])) for c in MISMATCH_COLUMNS])
    return len(rows)


def write_kpis(warehouse: Warehouse, as_of: date, path: Path, district: District | None = None) -> int:
    """kpis.csv for night D: ``indicator, scope, numerator, denominator, value`` (UTF-8 with BOM).

    Scope is ``district`` or a town name; rates have value = numerator / denominator (4 decimals,
    empty when the denominator is 0); counts and amounts have no denominator and value = numerator.
    ``数据时效_<部门>`` gives each department's data age in days (empty: an extract never received),
    ``数据过期部门数`` how many departments are stale.
    """
    with warehouse.reporting() as conn:
        rows = conn.execute("SELECT indicator, scope, numerator, denominator, value FROM mart.indicators "
                            "WHERE as_of = %s", (as_of,)).fetchall()
    if district is not None:
        rows = [(r[0], scope, *r[2:]) for r in rows
                if (scope := district_scope(district, r[0], r[1], {x[0] for x in rows if x[1] == district.name}))]
    rows.sort(key=lambda r: (_indicator_rank(r[0]), r[0], r[1] != "district", r[1]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(KPI_COLUMNS)
        for r in rows:
            writer.writerow([neutralise_formula(_text(v)) for v in r])
    return len(rows)


def district_scope(district: District, indicator: str, scope: str, per_district: set[str]) -> str | None:
    """The scope of an indicator row in one district's outputs, or None when the row is not the
    district's: its towns stay, its own totals become ``district``, and deployment-wide rows of
    indicators not computed per district (data age) stay ``district``."""
    if scope == district.name:
        return "district"
    if scope in district.towns or (scope == "district" and indicator not in per_district):
        return scope
    return None


INDICATOR_ORDER = ("参保率", "代缴率", "待遇应享尽享率", "贫困人员就业人数", "公益性岗位安置", "扶贫车间吸纳人数",
                   "扶贫车间吸纳贫困人数", "培训合格人数", "培训补贴人次", "培训补贴金额", "交通食宿补贴人次",
                   "交通食宿补贴金额", "死亡冒领金额")


def _indicator_rank(name: str) -> int:
    return INDICATOR_ORDER.index(name) if name in INDICATOR_ORDER else len(INDICATOR_ORDER)
