"""Alerts: incidents that notify once when they open and once when they resolve.

Two kinds of notification go through one :class:`Alerter`:

- **Incidents** (:meth:`Alerter.open` / :meth:`Alerter.resolve`): a condition
  with a *key* ("bar_lag:6M", "hub_disconnected", "redis:unreachable"). The
  first ``open`` of a key notifies; every further ``open`` of the same key is
  counted and dropped — however long it lasts and whatever data arrives in
  between — until ``resolve`` closes it, which notifies once more ("resolved
  after 12m"). Nothing re-arms an incident but its resolution: no timer, no
  bar, no repeated check.
- **Events** (:meth:`Alerter.alert`): one-off facts ("order:<id> rejected",
  "failed:worker.ibs_a"). The same key is sent once per ``window_s`` at most,
  a guard against a caller in a loop.

Where notifications go: always the log (``ALERT key: message`` /
``RESOLVED key: …``), and every URL in ``alerts.urls`` through `apprise
<https://github.com/caronc/apprise>`_ — Telegram (``tgram://``), Discord,
Slack, email (``mailto://``), ntfy, or a plain JSON POST (``json://`` /
``jsons://``), in one syntax. URLs embed tokens: each one and its secret
parts are registered for log redaction before anything can log them.
Delivery runs on a background thread, so a slow endpoint never stalls the
supervisor.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from multialpha import cme_time, logs

log = logging.getLogger("multialpha.alerts")

LEGACY_URL_ENV = "MULTIALPHA_ALERT_WEBHOOK_URL"


@dataclass(frozen=True)
class Alert:
    key: str
    severity: str  # info | warning | critical
    message: str
    component: str = ""
    ts: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    kind: str = "event"  # event | open | resolved

    @property
    def title(self) -> str:
        word = "RESOLVED" if self.kind == "resolved" else self.severity.upper()
        return f"[multialpha {word}] {self.key}"


class Sink(Protocol):
    def send(self, alert: Alert) -> None: ...


class LogSink:
    def send(self, alert: Alert) -> None:
        if alert.kind == "resolved":
            log.info("RESOLVED %s: %s", alert.key, alert.message)
            return
        level = {"critical": logging.ERROR, "warning": logging.WARNING}.get(alert.severity, logging.INFO)
        log.log(level, "ALERT %s: %s", alert.key, alert.message)


# -- apprise -------------------------------------------------------------------------------


def register_url_secrets(url: str) -> None:
    """Redact a notification URL and the parts of it that are credentials, from every log line.

    apprise logs (at DEBUG) the HTTP URL it posts to and masks only the password itself, so
    the path tokens (Slack/Discord webhook ids, a bot token in the host part of tgram://),
    query values (custom headers) and user info are registered one by one.
    """
    logs.register_secret(url)
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        return
    userinfo, _, hostport = netloc.rpartition("@")
    if userinfo:
        user, _, password = userinfo.partition(":")
        logs.register_secret(unquote(password))
        logs.register_secret(userinfo)
        if len(user) >= 8:
            logs.register_secret(unquote(user))
    host = hostport.split(":")[0] if hostport.count(":") <= 1 else hostport
    if host and "." not in host and host != "localhost" and len(hostport) >= 8:
        logs.register_secret(hostport)  # tgram://<bot token>/… : the host part is the token
    for seg in parts.path.split("/"):
        seg = unquote(seg)
        if len(seg) >= 8 or (len(seg) >= 4 and any(c.isdigit() for c in seg) and any(c.isalpha() for c in seg)):
            logs.register_secret(seg)
    for _, value in parse_qsl(parts.query, keep_blank_values=False):
        logs.register_secret(value)


class AppriseSink:
    """Deliver through apprise to every configured URL; retried, never raises to the caller."""

    _TYPES = {"critical": "failure", "warning": "warning", "info": "info"}

    def __init__(self, urls: Iterable[str], background: bool = True, attempts: int = 2,
                 retry_s: float = 2.0) -> None:
        import apprise

        self.urls = [u for u in urls if u]
        for u in self.urls:
            register_url_secrets(u)
        self._apprise = apprise.Apprise()
        self.rejected: list[str] = []
        for u in self.urls:
            if not self._apprise.add(u):
                self.rejected.append(logs.redact(u))
        if self.rejected:
            log.error("alerts: apprise does not understand %d of %d URL(s) (%s); see "
                      "https://github.com/caronc/apprise/wiki for the URL formats",
                      len(self.rejected), len(self.urls), ", ".join(self.rejected))
        self.attempts, self.retry_s = attempts, retry_s
        self.sent = 0
        self.failed = 0
        self._q: queue.Queue[Alert] | None = None
        if background:
            self._q = queue.Queue(maxsize=1000)
            threading.Thread(target=self._drain, daemon=True, name="alert-apprise").start()

    def __len__(self) -> int:
        return len(self._apprise)

    def send(self, alert: Alert) -> None:
        if self._q is None:
            self._deliver(alert)
            return
        try:
            self._q.put_nowait(alert)
        except queue.Full:
            self.failed += 1
            log.error("alert queue full; dropped alert %s", alert.key)

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until queued alerts were delivered (at shutdown and in tests)."""
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
                self._deliver(alert)
            finally:
                self._q.task_done()

    def _deliver(self, alert: Alert) -> None:
        if not len(self._apprise):
            return
        ntype = "success" if alert.kind == "resolved" else self._TYPES.get(alert.severity, "info")
        for attempt in range(1, self.attempts + 1):
            try:
                ok = bool(self._apprise.notify(title=alert.title, body=alert.message, notify_type=ntype))
            except Exception as e:  # noqa: BLE001 - a notifier bug must not break alerting
                log.error("alert delivery raised for %s: %s", alert.key, logs.redact(f"{type(e).__name__}: {e}"))
                ok = False
            if ok:
                self.sent += 1
                return
            if attempt < self.attempts:
                time.sleep(self.retry_s)
        self.failed += 1
        log.error("alert %s could not be delivered to every URL (apprise's own log line says which)", alert.key)


# -- the alerter -------------------------------------------------------------------------------


@dataclass
class Incident:
    key: str
    severity: str
    message: str
    component: str
    opened: float  # alerter clock
    repeats: int = 0  # open() calls while it was already open (not sent)


class Alerter:
    def __init__(self, sinks: list[Sink], window_s: float = 900.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.sinks = sinks
        self.window_s = window_s
        self.clock = clock
        self._last: dict[str, float] = {}
        self.incidents: dict[str, Incident] = {}
        self.suppressed = 0
        self._lock = threading.Lock()

    def _send(self, key: str, severity: str, message: str, component: str, kind: str, fields: dict[str, Any]) -> None:
        a = Alert(key, severity, logs.redact(message), component, cme_time.iso_z(cme_time.utcnow()), fields, kind)
        for sink in self.sinks:
            try:
                sink.send(a)
            except Exception:  # noqa: BLE001 - a broken sink must not break the caller
                log.exception("alert sink %r failed", sink)

    # -- incidents --------------------------------------------------------------------------
    def open(self, key: str, severity: str, message: str, component: str = "", **fields: Any) -> bool:
        """Open the incident ``key``: notifies only if it is not open already. True if sent."""
        with self._lock:
            inc = self.incidents.get(key)
            if inc is not None:
                inc.repeats += 1
                self.suppressed += 1
                return False
            self.incidents[key] = Incident(key, severity, message, component, self.clock())
        self._send(key, severity, message, component, "open", fields)
        return True

    def resolve(self, key: str, message: str = "") -> bool:
        """Close the incident ``key`` (notifies once); a key that is not open is a no-op. True if sent."""
        with self._lock:
            inc = self.incidents.pop(key, None)
            self._last.pop(key, None)  # an event key: the next occurrence alerts at once
        if inc is None:
            return False
        took = self.clock() - inc.opened
        text = message or f"{key}: back to normal"
        self._send(key, "info", f"{text} (open for {_duration(took)})", inc.component, "resolved", {})
        return True

    def is_open(self, key: str) -> bool:
        with self._lock:
            return key in self.incidents

    # -- events -----------------------------------------------------------------------------
    def alert(self, key: str, severity: str, message: str, component: str = "", **fields: Any) -> bool:
        """A one-off event: sent unless the same key was sent within ``window_s``. True if sent."""
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.window_s:
                self.suppressed += 1
                return False
            self._last[key] = now
        self._send(key, severity, message, component, "event", fields)
        return True


def _duration(seconds: float) -> str:
    s = int(max(0.0, seconds))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def notification_urls(urls: Iterable[str], environ: Mapping[str, str], legacy_env: str = LEGACY_URL_ENV) -> list[str]:
    """The configured apprise URLs (blank ones dropped: an unset ``${VAR:-}``), plus the old
    ``$MULTIALPHA_ALERT_WEBHOOK_URL`` when set: apprise reads Slack/Discord webhook URLs as
    they are; any other http(s) URL becomes ``json(s)://`` (a JSON POST, as before)."""
    out = [u.strip() for u in urls if u and u.strip()]
    legacy = (environ.get(legacy_env) or "").strip()
    if legacy:
        import apprise

        alog = logging.getLogger("apprise")
        level, alog.level = alog.level, logging.CRITICAL  # "Unparseable URL" is expected here
        try:
            native = apprise.Apprise.instantiate(legacy, suppress_exceptions=True)
        finally:
            alog.setLevel(level)
        if native is None:
            if legacy.startswith("https://"):
                legacy = "jsons://" + legacy[len("https://"):]
            elif legacy.startswith("http://"):
                legacy = "json://" + legacy[len("http://"):]
        out.append(legacy)
    return list(dict.fromkeys(out))


def from_settings(urls: Iterable[str], environ: Mapping[str, str], window_s: float = 900.0,
                  legacy_env: str = LEGACY_URL_ENV) -> Alerter:
    """The log sink always; an apprise sink when any notification URL is configured."""
    sinks: list[Sink] = [LogSink()]
    all_urls = notification_urls(urls, environ, legacy_env)
    if all_urls:
        sinks.append(AppriseSink(all_urls))
    return Alerter(sinks, window_s=window_s)
