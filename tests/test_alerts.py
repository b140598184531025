"""Alerts: incidents (open once, resolve once), events per window, apprise to a real local HTTP
server (json://127.0.0.1, never the internet) with the URL's secrets redacted from every log line."""

from __future__ import annotations

import io
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from multialpha import logs
from multialpha.alerts import Alert, Alerter, AppriseSink, LogSink, from_settings, notification_urls


class Recorder:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.alerts.append(alert)


class Receiver(ThreadingHTTPServer):
    def __init__(self, status: int = 200) -> None:
        self.posts: list[tuple[str, dict, dict]] = []
        self.status = status
        super().__init__(("127.0.0.1", 0), _H)


class _H(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append((self.path, dict(self.headers), json.loads(body)))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *a: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    threading.Thread(target=r.serve_forever, daemon=True).start()
    yield r
    r.shutdown()
    r.server_close()


def test_an_incident_notifies_once_when_it_opens_and_once_when_it_resolves() -> None:
    now = [0.0]
    rec = Recorder()
    a = Alerter([rec], window_s=60, clock=lambda: now[0])
    assert a.open("bar_lag:6M", "warning", "6M late")
    for _ in range(1000):  # hours of checks, windows long past: nothing re-arms an open incident
        now[0] += 5
        assert not a.open("bar_lag:6M", "warning", "6M still late")
    assert a.is_open("bar_lag:6M") and a.incidents["bar_lag:6M"].repeats == 1000
    assert a.resolve("bar_lag:6M", "6M: bars flowing again")
    assert not a.resolve("bar_lag:6M")  # resolved once
    assert [(x.key, x.kind) for x in rec.alerts] == [("bar_lag:6M", "open"), ("bar_lag:6M", "resolved")]
    assert "open for 83m" in rec.alerts[1].message and rec.alerts[1].title == "[multialpha RESOLVED] bar_lag:6M"
    assert a.open("bar_lag:6M", "warning", "a new outage")  # a new incident after resolution
    assert not a.resolve("never-opened")


def test_events_once_per_key_per_window() -> None:
    now = [0.0]
    rec = Recorder()
    a = Alerter([rec], window_s=600, clock=lambda: now[0])
    assert a.alert("order:1", "critical", "rejected")
    now[0] = 599
    assert not a.alert("order:1", "critical", "rejected")
    assert a.alert("order:2", "critical", "rejected")
    now[0] = 601
    assert a.alert("order:1", "critical", "rejected")
    assert [x.key for x in rec.alerts] == ["order:1", "order:2", "order:1"]


def test_log_sink_and_no_urls(caplog) -> None:
    a = from_settings([], {})
    assert len(a.sinks) == 1 and isinstance(a.sinks[0], LogSink)
    with caplog.at_level(logging.INFO, logger="multialpha.alerts"):
        a.open("lag", "warning", "bars late")
        a.resolve("lag", "bars back")
    assert "ALERT lag: bars late" in caplog.text and "RESOLVED lag: bars back" in caplog.text


def test_blank_urls_are_dropped_and_the_old_webhook_variable_becomes_json() -> None:
    assert notification_urls(["", "  ", "json://127.0.0.1:1/x"], {}) == ["json://127.0.0.1:1/x"]
    assert notification_urls([], {"MULTIALPHA_ALERT_WEBHOOK_URL": "https://example.invalid/hook/abc"}) == \
        ["jsons://example.invalid/hook/abc"]
    assert notification_urls([], {"MULTIALPHA_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/h"}) == ["json://127.0.0.1:9/h"]


@pytest.fixture
def redacted_log() -> Iterator[io.StringIO]:
    """Every logger (apprise's included, at DEBUG) into a stream behind the production redaction filter."""
    out = io.StringIO()
    h = logging.StreamHandler(out)
    h.addFilter(logs.RedactingFilter())
    h.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old = root.level
    root.addHandler(h)
    root.setLevel(logging.DEBUG)
    logging.getLogger("apprise").setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(h)
        root.setLevel(old)


def test_apprise_json_delivery_to_a_local_server_with_secrets_redacted(receiver: Receiver, redacted_log) -> None:
    port = receiver.server_address[1]
    secret_pw, secret_path, secret_header = "pw-Sekr3t-991", "tok3n-9f8e7d6c", "hdr-Sekr3t-42"
    url = f"json://alerts:{secret_pw}@127.0.0.1:{port}/hooks/{secret_path}?+X-Token={secret_header}"
    sink = AppriseSink([url])
    a = Alerter([LogSink(), sink], window_s=60)
    a.open("failed:worker.a", "critical", f"worker.a FAILED: flapping (was posting to {url})", "worker.a")
    a.open("failed:worker.a", "critical", "again")  # same incident: not sent
    a.resolve("failed:worker.a", "worker.a running again")
    sink.flush()
    assert sink.sent == 2 and sink.failed == 0
    assert [p[0] for p in receiver.posts] == [f"/hooks/{secret_path}"] * 2
    (_, headers, first), (_, _, second) = receiver.posts
    assert first["type"] == "failure" and first["title"] == "[multialpha CRITICAL] failed:worker.a"
    assert "worker.a FAILED: flapping" in first["message"]
    assert second["type"] == "success" and "worker.a running again" in second["message"]
    assert headers["X-Token"] == secret_header and headers["Authorization"].startswith("Basic ")
    text = redacted_log.getvalue()
    assert "JSON POST URL" in text or "Sent JSON" in text, text  # apprise did log about it
    for secret in (secret_pw, secret_path, secret_header):
        assert secret not in text, (secret, text)
        assert secret not in first["message"]  # the alert text itself is redacted too


def test_a_failing_endpoint_never_raises_and_is_logged_redacted(redacted_log) -> None:
    r = Receiver(status=500)
    threading.Thread(target=r.serve_forever, daemon=True).start()
    try:
        url = f"json://127.0.0.1:{r.server_address[1]}/hooks/failing-Secr3t-77"
        sink = AppriseSink([url], background=False, attempts=2, retry_s=0.0)
        assert Alerter([sink]).open("k", "critical", "m")
        assert sink.failed == 1 and len(r.posts) == 2
    finally:
        r.shutdown()
        r.server_close()
    text = redacted_log.getvalue()
    assert "could not be delivered" in text and "failing-Secr3t-77" not in text


def test_unknown_url_scheme_is_reported(redacted_log) -> None:
    sink = AppriseSink(["nosuchscheme://abc-Secr3t-0001"], background=False)
    assert len(sink) == 0 and sink.rejected
    assert "does not understand 1 of 1" in redacted_log.getvalue()
    assert "abc-Secr3t-0001" not in redacted_log.getvalue()
