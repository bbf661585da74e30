"""The night's set-up and the evaluation of its rules (数据比对, steps 1 and 2).

``setup_night`` rebuilds schema ``night`` for night D (one view per extract over the latest core
snapshot with ``as_of <= D``, ``night.params``, ``night.extracts``, ``night.departments``,
``night.rules`` and the helper tables of ``sql/night/*.sql``) and records the data's age in
``mart.freshness``. ``evaluate_partition`` runs every ``sql/rules/*.sql`` (one SELECT each, runnable as
is in psql) and ``sql/indicators/*.sql`` over one partition into ``night.finding_parts`` and
``night.indicator_parts``. The orchestration of a night is ``crosscheck.compare``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from datetime import date, timedelta
from pathlib import Path

from psycopg import sql

from crosscheck.catalogue import RULES, departments, rule_files, short_name
from crosscheck.contracts import contracts
from crosscheck.partitions import Partition
from crosscheck.reference import town_districts
from crosscheck.settings import SQL_DIR, Settings
from crosscheck.timing import stage
from crosscheck.warehouse import Warehouse

log = logging.getLogger(__name__)

NIGHT_DIR = SQL_DIR / "night"
INDICATORS_DIR = SQL_DIR / "indicators"

# Sorts and hashes of a night's tables (a million payments) stay in memory; per transaction only.
WORK_MEM = "128MB"


def tune(conn, session: bool = False) -> None:
    """Per transaction of the night (or for a whole ``session``): WORK_MEM, and no JIT — the night's
    fresh tables have poor row estimates, which make PostgreSQL compile queries for seconds that then
    run in milliseconds. A session runs rules beside others, so without parallel workers of its own."""
    scope = sql.SQL("SESSION" if session else "LOCAL")
    conn.execute(sql.SQL("SET {} work_mem = {}").format(scope, sql.Literal(WORK_MEM)))
    conn.execute(sql.SQL("SET {} jit = off").format(scope))
    if session:
        conn.execute("SET max_parallel_workers_per_gather = 0")


FINDING_COLUMNS = ("rule_code", "subject_key", "period", "id_number", "name", "town", "village", "departments",
                   "detail", "amount")


def rule_sql(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip().rstrip(";")


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


def insert_row(conn, table: str, row: dict) -> None:
    schema, name = table.split(".")
    conn.execute(sql.SQL("INSERT INTO {}.{} ({}) VALUES ({})").format(
        sql.Identifier(schema), sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, row)),
        sql.SQL(", ").join(sql.Placeholder() * len(row))), list(row.values()))


def setup_night(conn, as_of: date, settings: Settings) -> list[dict]:
    """Rebuild schema ``night`` for night D; record freshness. Returns the freshness rows."""
    conn.execute((NIGHT_DIR / "00_schema.sql").read_text(encoding="utf-8"))
    insert_row(conn, "night.params", {**night_params(as_of, settings), "night_id": uuid.uuid4().hex})
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO night.town_districts (town, town_code, district_code, district) "
                        "VALUES (%(town)s, %(town_code)s, %(district_code)s, %(district)s)",
                        town_districts(settings.districts))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO night.departments (code, short, full_name, position) VALUES (%s, %s, %s, %s)",
                        [(d.code, d.short, d.full, i) for i, d in enumerate(departments().values())])
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
               "dept_zh": short_name(contract.department), "title": contract.title,
               "data_as_of": data_as_of, "age_days": age, "stale": stale}
        insert_row(conn, "night.extracts", row)
        freshness.append(row)
        where = sql.SQL("as_of = {}").format(sql.Literal(data_as_of)) if data_as_of else sql.SQL("false")
        conn.execute(sql.SQL("CREATE VIEW night.{t} AS SELECT * FROM core.{t} WHERE {w}").format(
            t=sql.Identifier(extract), w=where))
    conn.execute("CREATE TABLE night.rules (rule_code text PRIMARY KEY, severity text NOT NULL, "
                 "rule_group text NOT NULL, title text NOT NULL, sql_file text NOT NULL)")
    for rule in RULES.values():
        insert_row(conn, "night.rules", {"rule_code": rule.code, "severity": rule.severity, "rule_group": rule.group,
                                      "title": rule.title, "sql_file": str(rule.sql_file.relative_to(SQL_DIR))})
    for path in sorted(NIGHT_DIR.glob("*.sql")):
        if path.name != "00_schema.sql":
            conn.execute(path.read_text(encoding="utf-8"))
    # Every table of the night not analyzed yet (a file may analyze a table it reads itself, e.g. night.sightings).
    for (table,) in conn.execute(
            "SELECT tablename FROM pg_tables t WHERE schemaname = 'night' AND NOT EXISTS "
            "(SELECT 1 FROM pg_stats s WHERE s.schemaname = 'night' AND s.tablename = t.tablename)").fetchall():
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
        insert_row(conn, "mart.freshness", {"as_of": as_of, "department": row["department"], "extract": row["extract"],
                                         "data_as_of": row["data_as_of"], "age_days": row["age_days"],
                                         "stale": row["stale"], "held_file_id": row["held_file_id"],
                                         "held_as_of": row["held_as_of"]})
    return freshness


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
            tune(own, session=True)
            while (item := take()) is not None:
                run(own, *item)

    with ThreadPoolExecutor(max_workers=connections, thread_name_prefix="rules") as pool:
        for future in [pool.submit(worker) for _ in range(connections)]:
            future.result()


# What a 不属实 verdict is given on (rules.md: "unless … its detail and amount are unchanged"); the
# same expression is in sql/migrations/0008_finding_life.sql, which recomputed the stored hashes.
