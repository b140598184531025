"""Alerts: one message per outage, to the log and optional JSON webhooks.

An alert has a *key* naming the outage ("failed:worker.ibs_a",
"bar_lag:ES"). :class:`Alerter` sends the first alert for a key and drops
repeats of it for ``window_s`` — a feed that is down for an hour sends one
alert (plus one reminder per window), not thousands. :meth:`Alerter.resolve`
forgets a key so the next outage alerts at once.

The webhook body carries the message as ``text`` (Slack, Mattermost) and
``content`` (Discord) plus structured fields, so generic JSON endpoints,
Slack- and Discord-style incoming webhooks all accept it. Webhook posts run
on a background thread: a slow endpoint never stalls the caller. The URL is a
secret (it embeds a token) and is registered for log redaction.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from multialpha import cme_time, logs

log = logging.getLogger("multialpha.alerts")


@dataclass(frozen=True)
class Alert:
    key: str
    severity: str  # info | warning | critical
    message: str
    component: str = ""
    ts: str = ""
    fields: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        text = f"[multialpha {self.severity.upper()}] {self.message}"
        return {
            "text": text,
            "content": text,
            "key": self.key,
            "severity": self.severity,
            "component": self.component,
            "message": self.message,
            "ts": self.ts,
            "fields": self.fields,
        }


class Sink(Protocol):
    def send(self, alert: Alert) -> None: ...


class LogSink:
    def send(self, alert: Alert) -> None:
        level = {"critical": logging.ERROR, "warning": logging.WARNING}.get(alert.severity, logging.INFO)
        log.log(level, "ALERT %s: %s", alert.key, alert.message)


class WebhookSink:
    """POST the alert as JSON; retried a few times, never raises to the caller."""

    def __init__(self, url: str, timeout_s: float = 5.0, attempts: int = 3, background: bool = True) -> None:
        logs.register_secret(url)
        self.url, self.timeout_s, self.attempts = url, timeout_s, attempts
        self.sent = 0
        self.failed = 0
        self._q: queue.Queue[Alert | None] | None = None
        if background:
            self._q = queue.Queue(maxsize=1000)
            threading.Thread(target=self._drain, daemon=True, name="alert-webhook").start()

    def send(self, alert: Alert) -> None:
        if self._q is None:
            self._post(alert)
            return
        try:
            self._q.put_nowait(alert)
        except queue.Full:
            self.failed += 1
            log.error("alert queue full; dropped alert %s", alert.key)

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until queued alerts were posted (used at shutdown and in tests)."""
        if self._q is None:
            return
        deadline = time.monotonic() + timeout_s
        while self._q.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def _drain(self) -> None:
        assert self._q is not None
        while True:
            alert = self._q.get()
            try:
                if alert is not None:
                    self._post(alert)
            finally:
                self._q.task_done()

    def _post(self, alert: Alert) -> None:
        body = json.dumps(alert.to_json()).encode()
        for attempt in range(1, self.attempts + 1):
            req = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    if 200 <= resp.status < 300:
                        self.sent += 1
                        return
            except Exception as e:  # noqa: BLE001 - any failure is retried then logged, never raised
                err = e
            else:
                err = RuntimeError(f"HTTP {resp.status}")
            if attempt < self.attempts:
                time.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
        self.failed += 1
        log.error("alert webhook failed for %s: %s", alert.key, logs.redact(str(err)))


class Alerter:
    def __init__(self, sinks: list[Sink], window_s: float = 900.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.sinks = sinks
        self.window_s = window_s
        self.clock = clock
        self._last: dict[str, float] = {}
        self.suppressed = 0
        self._lock = threading.Lock()

    def alert(self, key: str, severity: str, message: str, component: str = "", **fields: Any) -> bool:
        """Send unless the same key alerted within the window; True if sent."""
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.window_s:
                self.suppressed += 1
                return False
            self._last[key] = now
        a = Alert(key, severity, logs.redact(message), component, cme_time.iso_z(cme_time.utcnow()), fields)
        for sink in self.sinks:
            try:
                sink.send(a)
            except Exception:  # noqa: BLE001 - a broken sink must not break the caller
                log.exception("alert sink %r failed", sink)
        return True

    def resolve(self, key: str) -> None:
        """The outage is over: the next occurrence alerts immediately."""
        with self._lock:
            self._last.pop(key, None)


def from_env(
    environ: dict[str, str], window_s: float = 900.0, url_env: str = "MULTIALPHA_ALERT_WEBHOOK_URL"
) -> Alerter:
    """The log sink always; a webhook sink when ``$MULTIALPHA_ALERT_WEBHOOK_URL`` is set."""
    sinks: list[Sink] = [LogSink()]
    url = environ.get(url_env, "")
    if url:
        sinks.append(WebhookSink(url))
    return Alerter(sinks, window_s=window_s)
