"""The worker's heartbeat and health, beating through every phase (starting .. stopped).

The heartbeat thread writes ``heartbeat:worker.NAME`` every second (at once on
a state change): state, per-symbol lag, counters, latency, memory, the veto
models and the plugin version; ``multialpha status`` reads it. With
``worker.health_port_base`` the same state is served on /healthz and /metrics.

A mixin of :class:`multialpha.worker.runtime.Worker` (its state lives there).
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import timedelta
from typing import Any

from multialpha import cme_time, redis_conn
from multialpha.config import Settings

log = logging.getLogger(__name__)

HUB_SILENT = timedelta(minutes=10)  # every source silent this long in an open market -> degraded


def fail_fast_client(settings: Settings, **kw: Any) -> Any:
    """For connections that retry on their own (subscriber, cursor, heartbeat): redis-py's default
    retries block ~4.5 s on a refused connect, on the bar path and past SIGTERM's 5 s budget.
    (Catch-up, router and turns have no retry loop of their own: they keep redis-py's defaults.)"""
    return redis_conn.connect(settings, connect_timeout=1.0, timeout=2.0, retries=0, **kw)


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Beating:
    def _start_heartbeat(self) -> None:
        from multialpha.heartbeat import Heartbeat

        self.hb = Heartbeat(
            fail_fast_client(self.settings, decode_responses=True), self.keys, f"worker.{self.name}",
            ttl_s=self.settings.worker.heartbeat_ttl_s,
        )
        self._hb_thread = threading.Thread(target=self._hb_loop, name="heartbeat", daemon=True)
        self._hb_thread.start()
        base = self.settings.worker.health_port_base
        if base is not None:  # worker i (config order) serves on base + i
            from multialpha.health import serve_component

            port = base + list(self.settings.strategies).index(self.name)
            self._health = serve_component(port, f"worker.{self.name}", lambda: dict(self.counters),
                                           lambda: (self.health() == "live", {"state": self.health()}))

    def _hb_loop(self) -> None:
        while not self._hb_stop.is_set():
            try:
                self._beat()
            except Exception:
                log.warning("heartbeat failed", exc_info=True)
            self._hb_wake.wait(1.0)  # every second, or at once on a state change
            self._hb_wake.clear()

    def health(self) -> str:
        if self.state != "live":
            return self.state
        if self.subscriber is not None and not self.subscriber.connected:
            return "degraded"
        if self.clock is not None and self.last_bar:
            now = self.clock()
            newest = max(self.last_bar.values()) + timedelta(minutes=1)
            if cme_time.is_open(now) and now - newest > HUB_SILENT:
                return "degraded"
        return "live"

    def _beat(self) -> None:
        self.counters["beats"] += 1
        now = self.clock() if self.clock is not None else cme_time.utcnow()
        symbols = {}
        for sym in self.plan.sources if hasattr(self, "plan") else []:
            lb = self.last_bar.get(sym) or (self.feed_router.last_minute.get(sym) if self.feed_router else None)
            symbols[sym] = {
                "last_bar": cme_time.iso_z(lb) if lb else None,
                "lag_s": round((now - lb - timedelta(minutes=1)).total_seconds(), 1) if lb else None,
            }
        lat = sorted(self.latencies)
        fields = {
            "strategy": self.name,
            "symbols": symbols,
            "bars": self.counters["bars"],
            "replayed": self.counters["replayed"],
            "vetoes": self.counters["vetoes"],
            "orders": self.counters["orders"],
            "rejected": self.counters["rejected"],
            "stale_entries": self.counters["stale_entries"],  # entries refused on replayed bars
            "errors": self.counters["errors"] + (self.cursor_writer.errors if self.cursor_writer is not None else 0),
            "dropped": dict(self.subscriber.dropped) if self.subscriber is not None else {},
            "overlap": self.feed_router.overlap if self.feed_router is not None else 0,
            "backlog": self.bus.backlog() if self.bus is not None else 0,
            "rss_mb": round(rss_mb(), 1),
            "latency_ms": {"p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)]} if lat else {},
            "live_after_s": round(self.live_after_s, 3) if self.live_after_s is not None else None,
            "historical_requests": self.historian.requests if self.historian is not None else 0,
            "closed_through": cme_time.iso_z(self.closed_through) if self.closed_through else None,
            "turns": self.turns.counters() if self.turns is not None else {},
            "gc_frozen": self.gc_frozen,
            "models": self.model_status,
            "plugin": self.plugin,
        }
        self.hb.beat(self.health(), **fields)
