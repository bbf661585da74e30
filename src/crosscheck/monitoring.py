"""Monitoring: what every crosscheck DAG shares — retries, failure/retry callbacks, notifications, deadline.

* ``default_args(settings)``: owner, retries with exponential backoff, and the two callbacks.
* ``on_failure`` / ``on_retry``: Airflow notifiers (``TaskNotifier``, a ``BaseNotifier``) that log one
  line (dag, task, try, the error's first line, log URL) and hand it to the configured notifier.
* The notifier is OFF by default. It is switched on by naming an Airflow connection, in the
  setting ``notify_conn`` (``CROSSCHECK_NOTIFY_CONN``) or the Airflow Variable ``crosscheck_notify_conn``:

  - an HTTP connection (conn_type ``http``/``https``): a JSON POST to ``host[:port]/<extra.endpoint>``.
    The body is the WeCom/DingTalk group-robot text message ``{"msgtype": "text", "text": {"content": …}}``;
    ``extra.format = "slack"`` sends ``{"text": …}``, ``"plain"`` sends ``{"title": …, "message": …}``.
  - an SMTP connection (conn_type ``smtp``, Airflow's smtp provider): an e-mail to ``extra.to`` (or
    the setting ``notify_to`` (``CROSSCHECK_NOTIFY_TO``) / the Variable ``crosscheck_notify_to``).

* ``DeadlineNotifier``: the nightly DAG's DeadlineAlert callback, an Airflow notifier awaited in the
  triggerer (``deadline_missed``).

A notification that cannot be sent is logged and swallowed: a broken mail server never fails a task.
This module is imported when DAG files are parsed: it imports nothing heavy at module level (the task
SDK's BaseNotifier, which every DAG file imports anyway). Its
settings (include/settings.yaml) are passed in; the callbacks Airflow calls read them once each.
"""

from __future__ import annotations

import html
import json
import logging
import urllib.request
from datetime import timedelta

from airflow.sdk import BaseNotifier

from crosscheck.settings import Settings, get_settings

log = logging.getLogger("crosscheck.monitoring")

NOTIFY_CONN_ENV = "CROSSCHECK_NOTIFY_CONN"  # the setting notify_conn's variable
NOTIFY_CONN_VARIABLE = "crosscheck_notify_conn"
NOTIFY_TO_VARIABLE = "crosscheck_notify_to"
OWNER = "crosscheck"


def default_args(settings: Settings, owner: str = OWNER) -> dict:
    """Task defaults of every crosscheck DAG. The setting ``task_retries`` sets the retries; the delay
    doubles from 2 minutes up to 30 minutes (a database restart, a full disk being cleared)."""
    return {
        "owner": owner,
        "retries": settings.task_retries,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "on_failure_callback": on_failure,
        "on_retry_callback": on_retry,
    }


def nightly_deadline(settings: Settings) -> timedelta:
    """How long after it is queued the nightly comparison must have finished (setting
    ``nightly_deadline_minutes``: the 05:00 run must be done by 07:00, when the bureau starts work)."""
    return timedelta(minutes=settings.nightly_deadline_minutes)


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------


def first_line(error) -> str:
    if error is None:
        return "no error recorded"
    text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    name = type(error).__name__ if isinstance(error, BaseException) else ""
    line = f"{name}: {line}" if name and line else (name or line or "no message")
    return line if len(line) <= 300 else line[:300] + "…"


def summary(context, event: str) -> str:
    """One line: what happened, where, which try, why, and where the log is."""
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    map_index = getattr(ti, "map_index", -1)
    if map_index is not None and map_index >= 0:
        task_id = f"{task_id}[{map_index}]"
    try_number = getattr(ti, "try_number", "?")
    max_tries = getattr(getattr(ti, "task", None), "retries", None)
    tries = f"{try_number}/{max_tries + 1}" if isinstance(max_tries, int) else str(try_number)
    run_id = getattr(ti, "run_id", None) or getattr(context.get("dag_run"), "run_id", "?")
    try:
        log_url = getattr(ti, "log_url", None) or "-"
    except Exception:  # the URL needs the API base URL from the configuration
        log_url = "-"
    return (f"[crosscheck] {event} dag={dag_id} task={task_id} run={run_id} try={tries} "
            f"error={first_line(context.get('exception'))} log={log_url}")


class TaskNotifier(BaseNotifier):
    """A task's failure or retry (``event``): one line in the log, and the same line through the
    deployment's notifier. Sending never fails the callback."""

    def __init__(self, event: str):
        super().__init__()
        self.event = event

    def notify(self, context) -> None:
        line = summary(context, self.event)
        (log.error if self.event == "FAILED" else log.warning)("%s", line)
        subject = line.split(" error=", 1)[0]
        try:
            notify(line, get_settings(), subject=subject)
        except Exception as exc:  # noqa: BLE001 — a notification must never fail the callback
            log.warning("[crosscheck] could not send the notification: %s", first_line(exc))


on_failure = TaskNotifier("FAILED")
on_retry = TaskNotifier("RETRY")


# --------------------------------------------------------------------------------------------
# Notifiers
# --------------------------------------------------------------------------------------------


def _variable(key: str) -> str | None:
    try:
        from airflow.sdk import Variable

        return Variable.get(key, default=None)
    except Exception:  # no Airflow context (CLI, tests) or no API server reachable
        return None


def notifier_conn_id(settings: Settings) -> str | None:
    """The connection id of the notifier, or None when notifications are off (the default)."""
    return settings.notify_conn or _variable(NOTIFY_CONN_VARIABLE) or None


def _connection(conn_id: str):
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id)


def _extra(conn) -> dict:
    extra = getattr(conn, "extra_dejson", None)
    if extra is None:
        raw = getattr(conn, "extra", None) or "{}"
        extra = json.loads(raw) if isinstance(raw, str) else dict(raw)
    return extra or {}


def webhook_url(conn) -> str:
    host = (conn.host or "").strip()
    if "://" in host:
        base = host.rstrip("/")
    else:
        scheme = conn.schema or ("https" if (conn.conn_type or "").lower() == "https" else "http")
        base = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
    endpoint = str(_extra(conn).get("endpoint", "")).lstrip("/")
    return f"{base}/{endpoint}" if endpoint else base


def webhook_payload(conn, subject: str, message: str) -> dict:
    fmt = str(_extra(conn).get("format", "wecom")).lower()
    if fmt == "slack":
        return {"text": message}
    if fmt == "plain":
        return {"title": subject, "message": message}
    return {"msgtype": "text", "text": {"content": message}}  # WeCom and DingTalk group robots


def send_webhook(conn, subject: str, message: str, timeout: float = 10.0) -> int:
    body = json.dumps(webhook_payload(conn, subject, message), ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if conn.login and conn.password:
        import base64

        token = base64.b64encode(f"{conn.login}:{conn.password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    request = urllib.request.Request(webhook_url(conn), data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 — the operator's URL
        return response.status


def send_smtp(conn_id: str, conn, subject: str, message: str, to: str | None = None) -> None:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    to = _extra(conn).get("to") or to or _variable(NOTIFY_TO_VARIABLE)
    if not to:
        raise ValueError(f"connection {conn_id}: no recipient (set extra 'to' or the setting notify_to)")
    with SmtpHook(smtp_conn_id=conn_id) as hook:
        hook.send_email_smtp(to=to, subject=subject, html_content=f"<pre>{html.escape(message)}</pre>",
                             from_email=_extra(conn).get("from_email") or conn.login)


def notify(message: str, settings: Settings, subject: str | None = None, conn_id: str | None = None) -> bool:
    """Send ``message`` through the configured notifier; False when notifications are off."""
    conn_id = conn_id or notifier_conn_id(settings)
    if not conn_id:
        return False
    from crosscheck.masking import for_people

    # a notification leaves the system (a chat group, a mailbox): an error quoting data passes the policy
    message, subject = for_people(message), for_people(subject)
    conn = _connection(conn_id)
    kind = (conn.conn_type or "").lower()
    subject = subject or message.splitlines()[0][:120]
    if kind in ("smtp", "email"):
        send_smtp(conn_id, conn, subject, message, settings.notify_to)
    elif kind in ("http", "https", "webhook"):
        send_webhook(conn, subject, message)
    else:
        raise ValueError(f"connection {conn_id} has type {kind!r}; use an http or smtp connection")
    log.info("[crosscheck] notification sent through %s (%s)", conn_id, kind)
    return True


# --------------------------------------------------------------------------------------------
# Deadline
# --------------------------------------------------------------------------------------------


def deadline_summary(context: dict | None, **kwargs) -> str:
    context = context or {}
    dag_run = context.get("dag_run") or {}
    if not isinstance(dag_run, dict):
        dag_run = {k: getattr(dag_run, k, None) for k in ("dag_id", "dag_run_id", "run_id", "queued_at", "state")}
    deadline = context.get("deadline") or {}
    when = deadline.get("deadline_time") if isinstance(deadline, dict) else getattr(deadline, "deadline_time", None)
    run_id = dag_run.get("dag_run_id") or dag_run.get("run_id") or "?"  # the REST API's DAGRun fields
    return (f"[crosscheck] DEADLINE dag={dag_run.get('dag_id') or kwargs.get('dag_id', '?')} "
            f"run={run_id} state={dag_run.get('state', '?')} "
            f"queued={dag_run.get('queued_at', '?')} deadline={when or '?'}: "
            f"{kwargs.get('message', 'the nightly comparison has not finished by its deadline')}")


class DeadlineNotifier(BaseNotifier):
    """The nightly DAG's DeadlineAlert callback: the triggerer makes it with the alert's kwargs (the
    ``message``) and the run's context, and awaits it."""

    def __init__(self, message: str, context: dict | None = None):
        super().__init__(context)
        self.message = message

    async def async_notify(self, context) -> None:
        await deadline_missed(context, message=self.message)

    def notify(self, context) -> None:
        import asyncio

        asyncio.run(self.async_notify(context))


async def deadline_missed(context: dict | None = None, **kwargs) -> None:
    """Log the run that missed its deadline and notify (sending never raises)."""
    import asyncio

    line = deadline_summary(context, **kwargs)
    log.error("%s", line)
    try:
        await asyncio.to_thread(notify, line, get_settings(), "[crosscheck] nightly comparison is late")
    except Exception as exc:  # noqa: BLE001
        log.warning("[crosscheck] could not send the deadline notification: %s", first_line(exc))


def worker_hostname() -> str:
    """The host name a task instance records (Airflow's ``[core] hostname_callable``): the setting
    ``worker_name`` (``CROSSCHECK_WORKER_NAME``) when several Celery workers share one machine, so that
    the UI and the tests can tell which worker ran a task; the machine's name otherwise."""
    import socket

    return get_settings().worker_name or socket.getfqdn()
