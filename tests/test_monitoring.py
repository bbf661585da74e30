"""Monitoring: callback summaries, the notifier (webhook and SMTP) and the deadline callback.

The in-process tests fake the connections and Variables (the notifiers are the task SDK's BaseNotifier); the SMTP test runs Airflow's smtp
provider for real in a subprocess, against a tiny SMTP server on localhost.
"""

from __future__ import annotations

import asyncio
import email
import http.server
import json
import logging
import os
import socketserver
import subprocess
import sys
import threading
from types import SimpleNamespace

import pytest

from crosscheck import monitoring
from crosscheck.settings import get_settings

pytestmark = pytest.mark.xdist_group("airflow")


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append({"path": self.path, "body": json.loads(body)})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    _Hook.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], _Hook.received
    server.shutdown()


@pytest.fixture(autouse=True)
def no_airflow(monkeypatch):
    """No Airflow Variable lookups in-process (they would import and configure Airflow)."""
    monkeypatch.setattr(monitoring, "_variable", lambda key: None)
    monkeypatch.delenv(monitoring.NOTIFY_CONN_ENV, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def notify_through(monkeypatch, conn_id: str) -> None:
    """The deployment's setting notify_conn, as its environment gives it."""
    monkeypatch.setenv(monitoring.NOTIFY_CONN_ENV, conn_id)
    get_settings.cache_clear()


def _conn(port: int, **extra):
    return SimpleNamespace(conn_type="http", host="127.0.0.1", port=port, schema="http", login=None,
                           password=None, extra_dejson={"endpoint": "/cgi-bin/webhook/send", **extra})


def _context(exception=None, try_number=2, retries=3):
    ti = SimpleNamespace(dag_id="crosscheck_ingest_hrss", task_id="load", map_index=2, try_number=try_number,
                         run_id="scheduled__2026-11-28T12:00:00+00:00", task=SimpleNamespace(retries=retries),
                         log_url="http://localhost:8080/dags/crosscheck_ingest_hrss/runs/x/tasks/load")
    return {"ti": ti, "exception": exception}


def test_summary_is_one_line_with_everything_an_operator_needs():
    error = RuntimeError("file 17 does not reconcile: received 10, loaded 8\nsecond line")
    line = monitoring.summary(_context(error), "FAILED")
    assert "\n" not in line
    assert line == ("[crosscheck] FAILED dag=crosscheck_ingest_hrss task=load[2] "
                    "run=scheduled__2026-11-28T12:00:00+00:00 try=2/4 "
                    "error=RuntimeError: file 17 does not reconcile: received 10, loaded 8 "
                    "log=http://localhost:8080/dags/crosscheck_ingest_hrss/runs/x/tasks/load")


def test_notifications_are_off_by_default(monkeypatch):
    monkeypatch.setattr(monitoring, "_connection", lambda conn_id: pytest.fail("looked up a connection"))
    assert monitoring.notifier_conn_id(get_settings()) is None
    assert monitoring.notify("hello", get_settings()) is False
    monitoring.on_failure(_context(ValueError("x")))  # logs, sends nothing, raises nothing


def test_failure_callback_posts_the_summary_to_the_webhook(monkeypatch, webhook, caplog):
    port, received = webhook
    notify_through(monkeypatch, "crosscheck_alerts")
    monkeypatch.setattr(monitoring, "_connection", lambda conn_id: _conn(port))
    with caplog.at_level(logging.INFO, logger="crosscheck.monitoring"):
        monitoring.on_failure(_context(OSError("disk full")))
    assert len(received) == 1
    assert received[0]["path"] == "/cgi-bin/webhook/send"
    body = received[0]["body"]
    assert body["msgtype"] == "text"
    assert body["text"]["content"].startswith("[crosscheck] FAILED dag=crosscheck_ingest_hrss task=load[2]")
    assert "error=OSError: disk full" in body["text"]["content"]
    assert any("FAILED dag=crosscheck_ingest_hrss" in r.message for r in caplog.records)


def test_notifications_carry_no_id_numbers(monkeypatch, webhook):
    """An error quoting a row (an ID with a stray digit, its birth date) reaches the chat group masked."""
    from stdnum.cn import ric

    first17 = "51022419900201547"
    valid = first17 + ric.calc_check_digit(first17)
    port, received = webhook
    notify_through(monkeypatch, "crosscheck_alerts")
    monkeypatch.setattr(monitoring, "_connection", lambda conn_id: _conn(port))
    monitoring.on_failure(_context(ValueError(f"bad row: id {valid}7 born 1990-02-01")))
    content = received[0]["body"]["text"]["content"]
    assert first17 not in content and "1990-02-01" not in content
    assert "error=ValueError: bad row: id 510224" in content


def test_retry_callback_and_payload_formats(monkeypatch, webhook):
    port, received = webhook
    notify_through(monkeypatch, "crosscheck_alerts")
    monkeypatch.setattr(monitoring, "_connection", lambda conn_id: _conn(port, format="slack"))
    monitoring.on_retry(_context(TimeoutError("server closed the connection"), try_number=1))
    assert received[-1]["body"]["text"].startswith("[crosscheck] RETRY dag=crosscheck_ingest_hrss")
    monkeypatch.setattr(monitoring, "_connection", lambda conn_id: _conn(port, format="plain"))
    monitoring.notify("body text", get_settings(), subject="subject line")
    assert received[-1]["body"] == {"title": "subject line", "message": "body text"}


def test_an_unreachable_notifier_never_breaks_the_callback(monkeypatch, caplog):
    notify_through(monkeypatch, "crosscheck_alerts")
    monkeypatch.setattr(monitoring, "_connection", lambda conn_id: _conn(9))  # nothing listens on port 9
    with caplog.at_level(logging.WARNING, logger="crosscheck.monitoring"):
        monitoring.on_failure(_context(ValueError("x")))
    assert any("could not send the notification" in r.message for r in caplog.records)


def test_webhook_url_forms():
    conn = SimpleNamespace(conn_type="https", host="qyapi.weixin.qq.com", port=None, schema="",
                           extra_dejson={"endpoint": "cgi-bin/webhook/send?key=k"})
    assert monitoring.webhook_url(conn) == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"
    conn = SimpleNamespace(conn_type="http", host="https://hooks.example.org/x/", port=None, schema=None,
                           extra_dejson={})
    assert monitoring.webhook_url(conn) == "https://hooks.example.org/x"


def test_deadline_callback_notifies(monkeypatch, webhook):
    port, received = webhook
    notify_through(monkeypatch, "crosscheck_alerts")
    monkeypatch.setattr(monitoring, "_connection", lambda conn_id: _conn(port))
    context = {"dag_run": {"dag_id": "crosscheck_nightly", "dag_run_id": "scheduled__x", "state": "running",
                           "queued_at": "2026-11-28T21:00:00+00:00"},
               "deadline": {"deadline_time": "2026-11-28T23:00:00+00:00"}}
    asyncio.run(monitoring.deadline_missed(context, message="夜间比对未按时完成"))
    text = received[0]["body"]["text"]["content"]
    assert text.startswith("[crosscheck] DEADLINE dag=crosscheck_nightly run=scheduled__x")
    assert "deadline=2026-11-28T23:00:00+00:00" in text and "夜间比对未按时完成" in text


class _Smtp(socketserver.StreamRequestHandler):
    messages: list = []

    def handle(self):
        self.wfile.write(b"220 localhost ESMTP\r\n")
        data, in_data = [], False
        while line := self.rfile.readline():
            if in_data:
                if line in (b".\r\n", b".\n"):
                    in_data = False
                    _Smtp.messages.append(b"".join(data).decode("utf-8", "replace"))
                    self.wfile.write(b"250 OK\r\n")
                else:
                    data.append(line)
                continue
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250 localhost\r\n")
            elif verb == b"DATA":
                in_data = True
                self.wfile.write(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 OK\r\n")


def test_smtp_notifier_through_airflows_smtp_provider(tmp_path):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    _Smtp.messages = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        conn = {"conn_type": "smtp", "host": "127.0.0.1", "port": port, "login": "crosscheck@example.gov.cn",
                "extra": {"disable_ssl": True, "disable_tls": True, "to": "ops@example.gov.cn"}}
        env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "AIRFLOW_CONN_CROSSCHECK_MAIL": json.dumps(conn), monitoring.NOTIFY_CONN_ENV: "crosscheck_mail"}
        script = ("from crosscheck import monitoring\n"
                  "from crosscheck.settings import get_settings\n"
                  "assert monitoring.notify('[crosscheck] FAILED dag=d task=t try=1/4 error=E log=-', get_settings(),"
                  " 'subject')\n")
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
    finally:
        server.shutdown()
    assert len(_Smtp.messages) == 1
    message = email.message_from_string(_Smtp.messages[0])
    assert message["To"] == "ops@example.gov.cn" and message["Subject"] == "subject"
    body = "".join(part.get_payload(decode=True).decode() for part in message.walk()
                   if part.get_content_type() == "text/html")
    assert "FAILED dag=d task=t try=1/4" in body


def test_deadline_notifier_as_the_triggerer_runs_it(monkeypatch, webhook):
    """The nightly DAG's DeadlineAlert names DeadlineNotifier: Airflow's CallbackTrigger imports it by its
    path, makes it with the alert's kwargs and the run's context, awaits it; the webhook gets the line."""
    from airflow.triggers.callback import CallbackTrigger

    port, received = webhook
    notify_through(monkeypatch, "crosscheck_alerts")
    monkeypatch.setattr(monitoring, "_connection", lambda conn_id: _conn(port))
    context = {"dag_run": {"dag_id": "crosscheck_nightly", "dag_run_id": "scheduled__y", "state": "running",
                           "queued_at": "2026-11-28T21:00:00+00:00"},
               "deadline": {"deadline_time": "2026-11-28T23:00:00+00:00"}}
    trigger = CallbackTrigger("crosscheck.monitoring.DeadlineNotifier",
                              {"message": "夜间比对未按时完成", "context": context})

    async def events():
        return [event async for event in trigger.run()]

    states = [e.payload["state"] for e in asyncio.run(events())]
    assert str(states[-1]).endswith("success"), states
    text = received[0]["body"]["text"]["content"]
    assert text.startswith("[crosscheck] DEADLINE dag=crosscheck_nightly run=scheduled__y") and "夜间比对未按时完成" in text
