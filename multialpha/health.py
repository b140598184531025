"""`/healthz` and Prometheus `/metrics` for any multialpha process.

Usage in a process (hub, worker, supervisor)::

    metrics = Metrics()                       # its own registry
    server = serve_health(port, check=lambda: heartbeat_fresh(client, keys, "hub", 15),
                          registry=metrics.registry)
    metrics.bars.labels(symbol="ES").inc()
    ...
    server.close()

``/healthz`` answers 200 with ``{"ok": true, ...}`` when ``check()`` is true
(or returns ``(True, details)``), 503 otherwise — including when the check
itself raises (a health endpoint must never 500 on a broken dependency).
The server binds loopback only: metrics are scraped by a local agent or
through a reverse proxy, never exposed directly. Port 0 picks a free port
(``server.port`` tells which).
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from multialpha import cme_time
from multialpha.managed_redis import is_loopback

log = logging.getLogger("multialpha.health")

Check = Callable[[], "bool | tuple[bool, dict[str, Any]]"]


class Metrics:
    """The standard metric names every process shares (each uses what applies)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.trades = Counter("multialpha_trades", "Trades received from the feed", registry=r)
        self.late_trades = Counter("multialpha_late_trades", "Trades that arrived after their bar closed", registry=r)
        self.bars = Counter("multialpha_bars", "Finished 1-minute bars", ["symbol"], registry=r)
        self.bar_lag = Gauge("multialpha_bar_lag_seconds", "Now minus the last bar's end", ["symbol"], registry=r)
        self.reconnects = Counter("multialpha_reconnects", "Feed reconnects", registry=r)
        self.orders = Counter("multialpha_orders", "Order intents by outcome", ["strategy", "outcome"], registry=r)
        self.order_retries = Counter("multialpha_order_retries", "Webhook retries", ["strategy"], registry=r)
        self.vetoes = Counter("multialpha_vetoes", "Entries blocked by the ML veto or the gate",
                              ["strategy", "reason"], registry=r)
        self.restarts = Counter("multialpha_restarts", "Child restarts by the supervisor", ["component"], registry=r)
        self.malformed = Counter("multialpha_malformed", "Malformed messages dropped", ["what"], registry=r)
        self.heartbeat_age = Gauge("multialpha_heartbeat_age_seconds", "Age of a component's heartbeat",
                                   ["component"], registry=r)


class HealthServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, check: Check, registry: CollectorRegistry | None) -> None:
        self.check, self.registry = check, registry
        super().__init__((host, port), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                                        name="health")

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.port}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: HealthServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            ok, details = _run_check(self.server.check)
            self._send(200 if ok else 503, "application/json", json.dumps({"ok": ok, **details}).encode())
        elif path == "/metrics" and self.server.registry is not None:
            self._send(200, CONTENT_TYPE_LATEST, generate_latest(self.server.registry))
        else:
            self._send(404, "text/plain", b"not found\n")

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - scrapes every few s: stay quiet
        pass


def _run_check(check: Check) -> tuple[bool, dict[str, Any]]:
    try:
        result = check()
    except Exception as e:  # noqa: BLE001 - a failing check is "unhealthy", not a 500
        return False, {"error": f"{type(e).__name__}: {e}"}
    if isinstance(result, tuple):
        return bool(result[0]), dict(result[1])
    return bool(result), {}


def serve_health(
    port: int, check: Check, registry: CollectorRegistry | None = None, host: str = "127.0.0.1"
) -> HealthServer:
    """Start serving /healthz and /metrics on a daemon thread; returns the server (``.port``, ``.close()``)."""
    if not is_loopback(host):
        raise ValueError(f"health endpoints bind loopback only, not {host!r}")
    server = HealthServer(host, port, check, registry)
    server._thread.start()
    log.info("health on %s (/healthz, /metrics)", server.url)
    return server


def heartbeat_age_s(doc: dict[str, Any] | None, now: datetime | None = None) -> float | None:
    """Seconds since a heartbeat hash's ``updated``; None when missing or unparsable."""
    if not doc or not isinstance(doc.get("updated"), str):
        return None
    try:
        updated = cme_time.parse_iso(doc["updated"])
    except ValueError:
        return None
    return ((now or cme_time.utcnow()) - updated).total_seconds()


def heartbeat_fresh(client: Any, keys: Any, component: str, max_age_s: float,
                    clock: Callable[[], datetime] = cme_time.utcnow) -> tuple[bool, dict[str, Any]]:
    """A ready-made check: the component's heartbeat exists and is at most ``max_age_s`` old."""
    from multialpha import heartbeat as hb

    doc = hb.read(client, keys, component)
    age = heartbeat_age_s(doc, clock())
    ok = age is not None and age <= max_age_s
    return ok, {"component": component, "heartbeat_age_s": None if age is None else round(age, 3),
                "state": (doc or {}).get("state")}


class CountersCollector:
    """Expose a process's own counters dict at scrape time (``multialpha_<name>_total``).

    Nothing is added to the hub's or worker's hot path: the counters they
    already keep for the heartbeat are read when Prometheus scrapes.
    """

    def __init__(self, component: str, read: Callable[[], dict[str, Any]]) -> None:
        self.component = component
        self.read = read

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily

        for name, value in sorted(self.read().items()):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not name.isidentifier():
                continue
            fam = CounterMetricFamily(f"multialpha_{name}", f"{name} counted by this process", labels=["component"])
            fam.add_metric([self.component], float(value))
            yield fam


def serve_component(port: int | None, component: str, read: Callable[[], dict[str, Any]], check: Check) -> "HealthServer | None":
    """/healthz + /metrics for a hub or worker when its port is configured (None: off)."""
    if port is None:
        return None
    registry = CollectorRegistry()
    registry.register(CountersCollector(component, read))
    server = serve_health(port, check, registry)
    log.info("%s: /healthz and /metrics on %s", component, server.url)
    return server
