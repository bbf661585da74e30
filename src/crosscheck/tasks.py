"""The bodies of the Airflow tasks: the night of ``crosscheck.pipeline`` cut into steps.

The DAG files in ``dags/`` only wire these functions together. Each function takes and returns
plain JSON-able values (what XCom carries), opens the warehouse itself, and logs the counts an
operator looks for in the task log. Heavy modules (the ingest stack, Great Expectations via
``crosscheck.validate``, the comparison) are imported inside the functions, never at import time,
so a DAG file that references this module still parses in milliseconds.

Per department (one ingest DAG each)::

    pull_sources → pending_drops  → stage_one (per file) → validate_one (per file) → load_one (per file) → summarise_department

The night (the nightly DAG), its heavy steps mapped over the night's partitions (by district or by
town, setting ``night_partitions``) so that several workers share a night::

    night_as_of → prepare → compare_partition (per partition) → compare → write_worklists (per partition)
                → publish (writes the rest into the night's fresh set, then switches reports/<as_of> to it)
                → summarise_night
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

from crosscheck.masking import for_people, hide_from_airflow_logs, install_log_redaction
from crosscheck.settings import USERS_TIMEZONE as TZ  # the DAGs import TZ from here

log = logging.getLogger(__name__)
install_log_redaction()  # task logs are read by operators: no ID number or birth date in them (masking.py)

ASSET_SCHEME = "crosscheck"
TERMINAL = ("loaded", "duplicate", "rejected", "superseded", "held")


def asset_uri(extract: str) -> str:
    """The URI of the Airflow Asset that stands for ``core.<extract>`` having been refreshed."""
    return f"{ASSET_SCHEME}://core/{extract}"


def _warehouse(settings):
    """The warehouse of the Airflow connection ``crosscheck_warehouse``; without that connection the
    URL of ``CROSSCHECK_WAREHOUSE_URL`` (what the CLI uses), else the embedded server."""
    from crosscheck.warehouse import connection_url, open_warehouse

    return open_warehouse(connection_url() or settings.warehouse_url)


# --------------------------------------------------------------------------------------------
# Ingest: one department
# --------------------------------------------------------------------------------------------


def _handled(warehouse, department: str) -> set[tuple[str, int | None, int | None]]:
    """(file name, size, mtime) of every drop of the department the warehouse finished with."""
    with warehouse.connect() as conn:
        rows = conn.execute(
            "SELECT file_name, size_bytes, mtime_ns FROM ingest.files WHERE department = %s AND status = ANY(%s)",
            (department, list(TERMINAL))).fetchall()
    return {(r[0], r[1], r[2]) for r in rows}


def drop_ref(name: str) -> dict:
    """How a dropped file travels between tasks (XCom, the grid's map index): a key made from its name and
    the name as people may see it. A file name can carry an ID number, and XComs and map indexes are stored in
    Airflow's database and shown in its UI unmasked; only the stage task, which finds the file by its key,
    ever holds the raw name."""
    from crosscheck.pickup import safe_display_name

    return {"key": _drop_key(name), "file": for_people(safe_display_name(name))}


def _drop_key(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def pending_drops(department: str, settings, warehouse=None, keys: bool = False) -> list:
    """The drops in landing/<department>/ that are ready (or to be refused with a receipt) and that the
    warehouse has not handled yet, each as a ``drop_ref``: what the sensor waits for.

    "Handled" is judged by name, size and modification time (cheap: no hashing while waiting); the
    ingest step still checks the content hash, so a rerun never loads a file twice.
    ``keys``: (name, size, mtime) of each instead, and no log line (the file-arrival trigger polls).
    """
    from crosscheck.pickup import safe_display_name, scan

    drops = scan(settings.landing_dir, settings, [department])
    if not drops:
        if not keys:
            log.info("%s: no files in %s", department, settings.landing_dir / department)
        return []
    warehouse = warehouse or _warehouse(settings)
    handled = _handled(warehouse, department)
    pending, waiting = [], []
    for drop in drops:
        if drop.state == "waiting":
            waiting.append(drop.name)
            continue
        if (safe_display_name(drop.name), drop.size, drop.mtime_ns) in handled:
            continue
        pending.append((drop.name, drop.size, drop.mtime_ns) if keys else drop_ref(drop.name))
    if keys:
        return pending
    log.info("%s: %d file(s) in the drop folder, %d new and ready, %d still being written%s",
             department, len(drops), len(pending), len(waiting),
             (": " + ", ".join(ref["file"] for ref in pending)) if pending else "")
    return pending


def pull_sources(department: str, run_after, settings, warehouse=None) -> list[dict]:
    """Pull the department's extracts whose source is a database or an exchange server (sources.yaml)
    into its drop folder, for yesterday (Asia/Shanghai) of the run; extracts already pulled for that date
    are left alone. Nothing for the date is recorded, not an error; a failed pull raises (retried)."""
    from crosscheck.pull import department_sources, pull_department

    if not department_sources(department, settings):
        log.info("%s: every extract is dropped by the department; nothing to pull", department)
        return []
    as_of = _local_date(run_after) - timedelta(days=1)
    warehouse = warehouse or _warehouse(settings)
    outcomes = pull_department(department, as_of, settings, warehouse, only_new=True)
    return [{"extract": o.extract, "status": o.status, "file_name": o.file_name, "remote": o.remote,
             "rows": o.rows, "size": o.size, "reason": o.reason} for o in outcomes]


def _outcome_dict(outcome) -> dict:
    return {
        # the name masked: the outcome is an XCom, and the next task's map index (see drop_ref)
        "department": outcome.department, "file_name": for_people(outcome.file_name), "status": outcome.status,
        "file_id": outcome.file_id, "extract": outcome.extract,
        "as_of": outcome.as_of.isoformat() if outcome.as_of else None, "reason": outcome.reason,
        "rows_received": outcome.rows_received, "rows_loaded": outcome.rows_loaded,
        "rows_quarantined": outcome.rows_quarantined, "warnings": [str(w) for w in outcome.warnings][:20],
    }


def describe_outcome(o: dict) -> str:
    if o["status"] in ("loaded", "staged", "validated"):
        return (f"{o['department']}/{o['file_name']}: {o['status']} — received {o['rows_received']}, "
                f"loaded {o['rows_loaded']}, rejected rows {o['rows_quarantined']}")
    return f"{o['department']}/{o['file_name']}: {o['status']} — {o.get('reason') or ''}"


def stage_one(department: str, ref: dict, settings, warehouse=None) -> dict:
    """Archive, read, normalise and stage one drop (``ref`` from pending_drops), or record its refusal.
    Returns the outcome."""
    from crosscheck.ingest import record_rejected_drop, stage_drop
    from crosscheck.pickup import scan

    name = ref["file"]
    drop = next((d for d in scan(settings.landing_dir, settings, [department]) if _drop_key(d.name) == ref["key"]),
                None)
    if drop is not None:
        hide_from_airflow_logs(drop.name)  # Airflow's own lines (an exception's text) might quote it
    warehouse = warehouse or _warehouse(settings)
    if drop is None:
        log.warning("%s/%s: the file is gone from the drop folder; nothing to do", department, name)
        return {"department": department, "file_name": name, "status": "vanished", "file_id": None}
    if drop.state == "waiting":  # touched again since the sensor saw it: the next run takes it
        log.warning("%s/%s: changed since it was found ready; left for the next run", department, name)
        return {"department": department, "file_name": name, "status": "waiting", "file_id": None}
    if drop.state == "rejected":
        outcome = record_rejected_drop(warehouse, drop)
        if outcome is None:
            return {"department": department, "file_name": name, "status": "skipped", "file_id": None}
    else:
        outcome = stage_drop(warehouse, drop, settings)
    result = _outcome_dict(outcome)
    log.info("%s", describe_outcome(result))
    for warning in result["warnings"][:5]:
        log.info("  warning: %s", warning)
    return result


def validate_one(outcome: dict, settings, warehouse=None) -> dict:
    """Run the extract's Great Expectations suite on a staged file; failing critical rows go to quarantine."""
    if outcome.get("status") != "staged":  # refused, duplicate, skipped — or validated by an earlier try
        log.info("%s (nothing to validate)", describe_outcome(outcome))
        return outcome
    from crosscheck.ingest import file_outcome
    from crosscheck.validate import validate_file

    warehouse = warehouse or _warehouse(settings)
    summary = validate_file(warehouse, outcome["file_id"], settings.reports_dir / "data_docs")
    failed = summary.get("failed") or {}
    if failed:
        for label, count in failed.items():
            log.info("%s: expectation %s failed — %s unexpected", outcome["file_name"], label,
                     "see the validation results" if count is None else count)
    else:
        log.info("%s: every expectation of the %s suite passed", outcome["file_name"], outcome["extract"])
    result = _outcome_dict(file_outcome(warehouse, outcome["file_id"]))
    result["expectations_failed"] = {k: v for k, v in failed.items()}
    log.info("%s/%s: validated — received %d, rows to reject so far %d", outcome["department"],
             outcome["file_name"], result["rows_received"], result["rows_quarantined"])
    return result


def load_one(outcome: dict, settings, warehouse=None) -> dict:
    """Load a validated file into core (atomically) and write its receipt; receipts also for
    rejected and duplicate files. A refused file is a receipt, never a task failure."""
    from crosscheck.ingest import file_outcome, load_or_hold
    from crosscheck.receipts import write_receipt

    if outcome.get("file_id") is None or outcome.get("status") in ("skipped", "vanished", "waiting"):
        return outcome
    warehouse = warehouse or _warehouse(settings)
    if outcome["status"] in ("staged", "validated"):
        result = _outcome_dict(load_or_hold(warehouse, outcome["file_id"], settings))
        if result["status"] == "held":
            _alert_held(result, settings)
    else:
        result = _outcome_dict(file_outcome(warehouse, outcome["file_id"]))
    result["expectations_failed"] = outcome.get("expectations_failed", {})
    receipt = write_receipt(warehouse, outcome["file_id"], settings.outbox_dir)
    result["receipt"] = for_people(str(receipt))  # the receipt keeps the dropped name: masked for XCom
    log.info("%s; receipt %s", describe_outcome(result), receipt)
    return result


def _alert_held(o: dict, settings) -> None:
    """A held file is the operator's to look at: a warning line with the counts, and the project's
    notifier (monitoring.notify; off unless configured). A notifier that fails never fails the task."""
    from crosscheck.monitoring import first_line, notify

    line = (f"[crosscheck] HELD {o['department']}/{o['file_name']} (file {o['file_id']}, {o['extract']} as of "
            f"{o['as_of']}): received {o['rows_received']}, quarantined {o['rows_quarantined']}; not loaded, the "
            f"previous snapshot stays in use; release with: crosscheck release {o['file_id']}")
    log.warning("%s", line)
    try:
        notify(line, settings, subject=f"[crosscheck] HELD {o['department']}/{o['extract']}")
    except Exception as exc:  # noqa: BLE001
        log.warning("[crosscheck] could not send the notification: %s", first_line(exc))


def summarise_department(department: str, outcomes: list[dict]) -> dict:
    """Counts for the task log and the extracts whose core table was refreshed (the assets to emit)."""
    outcomes = [o for o in outcomes if o]
    by_status = Counter(o["status"] for o in outcomes)
    received = sum(o.get("rows_received") or 0 for o in outcomes)
    loaded = sum(o.get("rows_loaded") or 0 for o in outcomes)
    rejected_rows = sum(o.get("rows_quarantined") or 0 for o in outcomes)
    extracts = sorted({o["extract"] for o in outcomes if o["status"] == "loaded" and o.get("extract")})
    summary = {
        "department": department, "files": len(outcomes), "by_status": dict(by_status),
        "rows_received": received, "rows_loaded": loaded, "rows_rejected": rejected_rows,
        "loaded_extracts": extracts,
        "loaded": [{"extract": o["extract"], "as_of": o["as_of"], "file_id": o["file_id"],
                    "rows_loaded": o["rows_loaded"], "rows_rejected": o["rows_quarantined"]}
                   for o in outcomes if o["status"] == "loaded"],
        "held": [{"extract": o["extract"], "as_of": o["as_of"], "file_id": o["file_id"], "file_name": o["file_name"],
                  "rows_received": o["rows_received"], "rows_rejected": o["rows_quarantined"]}
                 for o in outcomes if o["status"] == "held"],
    }
    log.info("%s: files %d (%s); rows received %d, loaded %d, rejected %d; extracts refreshed: %s",
             department, len(outcomes), ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())) or "none",
             received, loaded, rejected_rows, ", ".join(extracts) or "none")
    for o in outcomes:
        if o["status"] in ("rejected", "duplicate", "held"):
            log.warning("%s", describe_outcome(o))
    return summary


# --------------------------------------------------------------------------------------------
# The night
# --------------------------------------------------------------------------------------------


def _local_date(moment) -> date:
    import pendulum

    if moment is None:
        return pendulum.now(TZ).date()
    if isinstance(moment, str):
        moment = pendulum.parse(moment)
    return pendulum.instance(moment).in_timezone(TZ).date()


def night_as_of(requested: str | None, run_after, settings, warehouse=None) -> str:
    """The date the night compares as of.

    An explicit date (the DAG's ``as_of`` param) wins. Otherwise the newest ``as_of`` any department
    has loaded, up to the run's local (Asia/Shanghai) date — the comparison then flags departments
    whose latest data is older. With nothing loaded yet: the day before the run's local date.
    """
    if requested:
        return datetime.strptime(str(requested), "%Y-%m-%d").date().isoformat()
    today = _local_date(run_after)
    warehouse = warehouse or _warehouse(settings)
    with warehouse.connect() as conn:
        latest = conn.execute("SELECT max(as_of) FROM ingest.files WHERE status = 'loaded' AND as_of <= %s",
                              (today,)).fetchone()[0]
        rows = conn.execute(
            "SELECT department, max(as_of) FROM ingest.files WHERE status = 'loaded' GROUP BY department "
            "ORDER BY department").fetchall()
    as_of = latest or today - timedelta(days=1)
    log.info("night as of %s (run date %s); latest data per department: %s", as_of, today,
             ", ".join(f"{d} {a}" for d, a in rows) or "none loaded yet")
    return as_of.isoformat()


def _findings_summary(warehouse, as_of: date) -> dict:
    counts: dict = {}
    freshness: list = []
    with warehouse.connect() as conn:
        try:
            for status, severity, n in conn.execute(
                    "SELECT f.status, f.severity, count(*) FROM mart.finding_nights n "
                    "JOIN mart.findings f USING (finding_id) WHERE n.as_of = %s GROUP BY 1, 2 ORDER BY 1, 2",
                    (as_of,)).fetchall():
                counts.setdefault(status, {})[severity] = n
            freshness = [
                {"department": d, "extract": e, "data_as_of": a.isoformat() if a else None, "age_days": g,
                 "stale": s, "held_file_id": h, "held_as_of": ha.isoformat() if ha else None}
                for d, e, a, g, s, h, ha in conn.execute(
                    "SELECT department, extract, data_as_of, age_days, stale, held_file_id, held_as_of "
                    "FROM mart.freshness "
                    "WHERE as_of = %s ORDER BY department, extract", (as_of,)).fetchall()]
        except Exception as exc:  # the mart is the comparison's; a schema change must not hide the run
            log.warning("cannot summarise the findings: %s", str(exc).splitlines()[0])
    return {"findings": counts, "freshness": freshness}


def prepare(as_of: str, settings, warehouse=None) -> list[dict]:
    """The night's first step (crosscheck.pipeline.prepare), then its fresh publish set: each partition
    names it (``publish_set``), the work-list tasks and ``publish`` write into it, and ``publish``
    switches reports/<as_of> to it once at the end."""
    from crosscheck import pipeline
    from crosscheck.publishing import check_out, new_set

    out_dir = check_out(settings.reports_dir / as_of, settings.landing_dir)
    warehouse = warehouse or _warehouse(settings)
    partitions = pipeline.prepare(warehouse, date.fromisoformat(as_of), settings)
    folder = new_set(out_dir)
    (folder / "worklists").mkdir()
    log.info("night %s: partitions by %s; outputs into %s", as_of, settings.night_partitions, folder.name)
    return [{**p, "publish_set": folder.name} for p in partitions]


def _publish_set(settings, as_of: str, partitions) -> Path | None:
    """The publish set prepare made for this night (None when the partitions name none)."""
    from crosscheck.publishing import set_for

    name = next((p.get("publish_set") for p in partitions or () if p.get("publish_set")), None)
    return set_for(settings.reports_dir / as_of, name) if name else None


def compare_partition(as_of: str, partition: dict, settings, warehouse=None) -> dict:
    """The rules and indicators of one partition (one mapped task instance; retried alone)."""
    from crosscheck.pipeline import evaluate

    warehouse = warehouse or _warehouse(settings)
    counts = evaluate(warehouse, date.fromisoformat(as_of), partition, settings)
    log.info("partition %s (%s towns): %d findings%s", partition["key"],
             "all" if partition.get("towns") is None else len(partition["towns"]), sum(counts.values()),
             (": " + ", ".join(f"{k} {v}" for k, v in counts.items())) if counts else "")
    return {"partition": partition["key"], "findings": counts}


def compare(as_of: str, partitions: list[dict] | None, settings, warehouse=None) -> dict:
    """Findings life, indicators and GX checks once every partition is in.
    Without partitions: the whole comparison in this task."""
    from crosscheck.pipeline import compare_night, finish

    warehouse = warehouse or _warehouse(settings)
    day = date.fromisoformat(as_of)
    if partitions:
        result = finish(warehouse, day, settings, night_id=partitions[0].get("night_id"))
    else:
        result = compare_night(warehouse, day, settings)
    for line in str(result.describe()).splitlines():
        log.info("%s", line)
    summary = {"as_of": as_of, **_findings_summary(warehouse, day)}
    _log_findings(summary)
    return summary


def write_worklists(as_of: str, partition: dict, settings, warehouse=None) -> dict:
    """The work lists of one partition's towns (one mapped task instance)."""
    from crosscheck import pipeline

    warehouse = warehouse or _warehouse(settings)
    out_dir = _publish_set(settings, as_of, [partition])
    if out_dir is None:
        raise ValueError(f"partition {partition['key']} names no publish set; rerun the night from prepare")
    paths = pipeline.write_worklists(warehouse, date.fromisoformat(as_of), out_dir, partition, settings)
    written = [p.name for p in paths]
    log.info("partition %s: %d work lists in %s%s", partition["key"], len(written), out_dir / "worklists",
             (": " + ", ".join(written)) if written else "")
    return {"partition": partition["key"], "worklists": written}


def _log_findings(summary: dict) -> None:
    open_ = {}
    for status in ("new", "open"):
        for severity, n in summary["findings"].get(status, {}).items():
            open_[severity] = open_.get(severity, 0) + n
    resolved = sum(summary["findings"].get("resolved", {}).values())
    log.info("findings as of %s by severity: %s; resolved %d", summary["as_of"],
             ", ".join(f"{k} {v}" for k, v in sorted(open_.items())) or "none", resolved)
    stale = [f"{f['department']}/{f['extract']} ({f['data_as_of'] or 'never received'})"
             for f in summary["freshness"] if f["stale"]]
    if stale:
        log.warning("stale data used tonight: %s", ", ".join(stale))
    held = [f"{f['department']}/{f['extract']} (file {f['held_file_id']} of {f['held_as_of']} held; "
            f"using {f['data_as_of'] or 'nothing'})" for f in summary["freshness"] if f.get("held_file_id")]
    if held:
        log.warning("held files tonight: %s", ", ".join(held))


def publish(as_of: str, settings, warehouse=None, worklists: bool = True, partitions=None) -> dict:
    """Write mismatches.csv, kpis.csv, report.html (per district too) and Data Docs for the night, and
    the work lists unless the DAG writes them per partition (``worklists=False``). With the partitions
    of ``prepare``: into the set they name, beside the partitions' work lists, and then reports/<as_of>
    is switched to that set (once, after every work list is in)."""
    from crosscheck.pipeline import publish_night

    warehouse = warehouse or _warehouse(settings)
    outputs = publish_night(warehouse, date.fromisoformat(as_of), settings.reports_dir / as_of, settings,
                            worklists=worklists, into=_publish_set(settings, as_of, partitions))
    result = {}
    for name, path in outputs.items():
        result[name] = str(path)
        log.info("%s: %s", name, path)
    return result


def summarise_night(as_of: str, comparison: dict, outputs: dict) -> str:
    """One paragraph for the log (and the return value shown in the UI's XCom tab)."""
    open_ = Counter()
    for status in ("new", "open"):
        open_.update(comparison.get("findings", {}).get(status, {}))
    stale = [f["extract"] for f in comparison.get("freshness", []) if f.get("stale")]
    held = [f["extract"] for f in comparison.get("freshness", []) if f.get("held_file_id")]
    report = outputs.get("report") or outputs.get("mismatches")
    text = (f"night {as_of}: findings " + (", ".join(f"{k} {v}" for k, v in sorted(open_.items())) or "none")
            + (f"; stale: {', '.join(stale)}" if stale else "") + (f"; held: {', '.join(held)}" if held else "")
            + (f"; report {report}" if report else ""))
    log.info("%s", text)
    return text



# --------------------------------------------------------------------------------------------
# Maintenance (dags/maintenance.py): history, archive, Airflow's own database
# --------------------------------------------------------------------------------------------

def compact_history(settings, warehouse=None) -> str:
    """Fold the snapshots older than the latest ``history_full_snapshots`` into history."""
    from crosscheck.history import compact

    return compact(warehouse or _warehouse(settings), settings).describe()


def tidy_archive(settings, warehouse=None) -> str:
    """Compress the archived files; remove those past their department's retention whose rows are in history."""
    from crosscheck.history import apply_retention, compress_archive

    warehouse = warehouse or _warehouse(settings)
    text = (f"archive: {compress_archive(warehouse, settings)} files compressed, "
            f"{len(apply_retention(warehouse, settings))} removed past retention")
    log.info("%s", text)
    return text


def clean_airflow_db(settings) -> str:
    """``airflow db clean`` of what is older than ``airflow_db_retention_days``, in this task's environment
    (the metadata database the scheduler uses: the standalone's and compose's alike)."""
    import subprocess

    from crosscheck.history import airflow_db_clean_command

    command = airflow_db_clean_command(settings)
    log.info("%s", " ".join(command))
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"airflow db clean failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return " ".join(command)
