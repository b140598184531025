"""Alerts: rate limiting with an injected clock; the webhook sink against a real local HTTP receiver."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from multialpha.alerts import Alert, Alerter, LogSink, WebhookSink, from_env


class Recorder:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.alerts.append(alert)


class Receiver(ThreadingHTTPServer):
    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict] = []
        self.fail_first = fail_first
        self.hits = 0
        super().__init__(("127.0.0.1", 0), _H)


class _H(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802
        n = int(self.headers["Content-Length"])
        body = self.rfile.read(n)
        self.server.hits += 1
        if self.server.hits <= self.server.fail_first:
            self.send_response(502)
            self.end_headers()
            return
        self.server.bodies.append(json.loads(body))
        self.send_response(200)
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


def test_one_alert_per_outage_key_per_window() -> None:
    now = [0.0]
    rec = Recorder()
    a = Alerter([rec], window_s=600, clock=lambda: now[0])
    assert a.alert("bar_lag:ES", "warning", "ES bars 120s late")
    for i in range(1000):
        now[0] += 0.5
        a.alert("bar_lag:ES", "warning", "ES bars late")
    assert len(rec.alerts) == 1 and a.suppressed == 1000
    assert a.alert("failed:worker.a", "critical", "worker.a failed")  # another key is independent
    now[0] = 601
    assert a.alert("bar_lag:ES", "warning", "still late")  # reminder after the window
    assert [x.key for x in rec.alerts] == ["bar_lag:ES", "failed:worker.a", "bar_lag:ES"]


def test_resolve_rearms_the_key() -> None:
    rec = Recorder()
    a = Alerter([rec], window_s=600, clock=lambda: 0.0)
    a.alert("halt", "critical", "halted")
    a.resolve("halt")
    assert a.alert("halt", "critical", "halted again")
    assert len(rec.alerts) == 2


def test_webhook_sink_posts_slack_and_discord_fields(receiver: Receiver) -> None:
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hooks/secret-token"
    sink = WebhookSink(url)
    a = Alerter([sink], window_s=60)
    a.alert("failed:worker.a", "critical", "worker.a FAILED: flapping", component="worker.a", restarts=5)
    a.alert("failed:worker.a", "critical", "again")  # suppressed
    sink.flush()
    assert len(receiver.bodies) == 1
    body = receiver.bodies[0]
    assert "worker.a FAILED" in body["text"] and body["text"] == body["content"]
    assert body["severity"] == "critical" and body["key"] == "failed:worker.a"
    assert body["component"] == "worker.a" and body["fields"] == {"restarts": 5}
    assert body["ts"].endswith("Z")


def test_webhook_retries_then_delivers(receiver: Receiver) -> None:
    receiver.fail_first = 1
    sink = WebhookSink(f"http://127.0.0.1:{receiver.server_address[1]}/", background=False)
    Alerter([sink]).alert("k", "warning", "m")
    assert receiver.hits == 2 and len(receiver.bodies) == 1 and sink.sent == 1


def test_dead_webhook_never_raises_and_url_is_redacted(caplog) -> None:
    from multialpha.managed_redis import free_port

    url = f"http://127.0.0.1:{free_port()}/webhook/very-secret-token-123"
    sink = WebhookSink(url, timeout_s=1, attempts=1, background=False)
    with caplog.at_level(logging.ERROR, logger="multialpha.alerts"):
        assert Alerter([sink]).alert("k", "critical", f"posting to {url} failed")
    assert sink.failed == 1
    assert "alert webhook failed" in caplog.text
    assert "very-secret-token-123" not in caplog.text


def test_log_sink_and_from_env(caplog) -> None:
    a = from_env({})
    assert len(a.sinks) == 1 and isinstance(a.sinks[0], LogSink)
    with caplog.at_level(logging.WARNING, logger="multialpha.alerts"):
        a.alert("lag", "warning", "bars late")
    assert "ALERT lag: bars late" in caplog.text
    b = from_env({"MULTIALPHA_ALERT_WEBHOOK_URL": "http://127.0.0.1:1/x"})
    assert any(isinstance(s, WebhookSink) for s in b.sinks)
