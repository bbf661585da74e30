"""The findings' life, the indicators and GX's rule checks (数据比对, step 3).

**Findings life** (``mart.findings`` / ``mart.finding_nights``): a finding is identified by
(rule_code, subject_key, period). Statuses are computed against the latest *earlier* night in
``mart.finding_nights``: ``new`` (not reported new/open that night), ``open`` (reported new/open that
night and found again), ``resolved`` (reported new/open that night, not found tonight; reported
once). A finding whose latest 核查结论 is 不属实 and whose detail and amount (``data_hash``) have not
changed is never reported ``new`` again: it is reported ``open``. Rerunning a night replaces that
night's rows: the mart is the same after one run or three.

**Indicators** (``sql/indicators/*.sql``, per town, per district when the deployment has several, and
for the whole as scope ``district``) and data-age indicators (``数据时效_<部门>``) into ``mart.indicators``.

**Great Expectations** (``expectations/rules/*.json``): ID03-ID07 are checked on the night's person
view ``night.identity`` by expectations of their own (identity_people.json); the other rules' suites
count each rule's materialised rows (a wiring check). GX's counts are compared with the findings and
stored in ``mart.rule_checks``.
"""

from __future__ import annotations

import logging
from datetime import date

from psycopg import sql

from crosscheck.catalogue import GROUPS, RULES
from crosscheck.masking import mask_id
from crosscheck.night import FINDING_COLUMNS, insert_row
from crosscheck.settings import EXPECTATIONS_DIR, SQL_DIR, Settings
from crosscheck.warehouse import Warehouse

log = logging.getLogger(__name__)

RULE_SUITES_DIR = EXPECTATIONS_DIR / "rules"
STATUS_ZH = {"new": "新增", "open": "持续", "resolved": "已消除"}
STATUSES = ("new", "open", "resolved")


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
        insert_row(conn, "mart.indicators", {"as_of": as_of, "indicator": f"数据时效_{dept}", "scope": "district",
                                          "numerator": age, "denominator": None, "value": age})
    insert_row(conn, "mart.indicators", {"as_of": as_of, "indicator": "数据过期部门数", "scope": "district",
                                      "numerator": stale_count, "denominator": None,
                                      "value": stale_count})


# GX reads each rule's rows from night.findings, where the rule's SQL file (its only copy) has just
# materialised them: running every rule query a second time inside GX doubled the comparison time at
# district scale. The batch (night.params, one row) only anchors the query to the asset.
# GX substitutes {batch} with an unaliased subquery when the query has a JOIN, and PostgreSQL before
# 16 requires an alias on every subquery in FROM: hence "AS params_batch".
GX_RULE_QUERY = ("SELECT f.* FROM night.findings AS f "
                 "CROSS JOIN (SELECT 1 AS one FROM {{batch}} AS params_batch LIMIT 1) AS b "
                 "WHERE f.rule_code = '{rule}'")


def _rule_query(spec: dict) -> str:
    """The GX query of a rule expectation, the rule code checked against RULES (no outside input): the
    rule's rows in night.findings when it names its ``sql_file`` (a wiring check), else its own query
    (a check of its own over the suite's batch, e.g. the person view night.identity)."""
    meta = spec.get("meta", {})
    if meta.get("rule") not in RULES:
        raise ValueError(f"rule expectation without a known rule: {meta}")
    if "sql_file" not in meta:
        return spec["kwargs"]["unexpected_rows_query"]
    if not (SQL_DIR / meta["sql_file"]).is_file():
        raise ValueError(f"rule expectation whose sql_file does not exist: {meta}")
    return GX_RULE_QUERY.format(rule=meta["rule"])


def run_rule_suites(warehouse: Warehouse, as_of: date, settings: Settings) -> dict[str, dict]:
    """Run every rules suite over its batch (``meta.batch``: a table of schema night, by default
    night.params); return {rule: {success, count}}."""
    from crosscheck.validate import load_suite, run_suite, write_data_docs

    out = {}
    for path in sorted(RULE_SUITES_DIR.glob("*.json")):
        suite = load_suite(path.stem, "rules", query_for=_rule_query)
        batch = (suite.meta or {}).get("batch", "params")
        result = run_suite(warehouse, suite, "night", batch, as_of.isoformat())
        group = GROUPS.get(path.stem.split("_")[0], path.stem)  # identity_people: the identity group's person view
        write_data_docs(result, settings.reports_dir / "data_docs" / f"rules-{as_of}-{path.stem}.html",
                        {"file_name": f"比对规则 {group}（{path.stem}）", "as_of": as_of})
        for res in result.results:
            rule = (res.expectation_config.meta or {}).get("rule")
            if rule:
                if res.exception_info and res.exception_info.get("raised_exception"):
                    log.warning("GX check of %s raised: %s", rule,
                                str(res.exception_info.get("exception_message"))[:300])
                out[rule] = {"success": bool(res.success), "count": (res.result or {}).get("observed_value")}
    return out


def store_rule_checks(conn, as_of: date, counts: dict[str, int], gx: dict[str, dict] | None) -> list[str]:
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
        insert_row(conn, "mart.rule_checks", {
            "as_of": as_of, "rule_code": code, "severity": rule.severity,
            "sql_file": str(rule.sql_file.relative_to(SQL_DIR)), "found": found,
            "gx_success": None if check is None else check["success"],
            "gx_count": None if check is None else check["count"], "agrees": agrees})
    for w in warnings:
        log.warning("%s", w)
    return warnings
