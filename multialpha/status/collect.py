"""Build the status document from Redis only (and the config for names/limits).

One plain-data document (schema in :mod:`multialpha.status.schema`) feeds the
TUI, ``status --json`` and the supervisor's alert rules, so all three always
agree. Every reader here tolerates missing or malformed data: a component
that has not written yet shows as down, never as a crash of ``status``.

The document is assembled here from its parts: :mod:`~multialpha.status.raw`
(reading Redis, ONE pipelined round trip when nothing changed),
:mod:`~multialpha.status.sections`, :mod:`~multialpha.status.pnl` (the gate's P&L and
its per-strategy attribution) and :mod:`~multialpha.status.overall`.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any, Callable

import redis

from multialpha import cme_time
from multialpha.config import Settings
from multialpha.status import redis_nodes
from multialpha.status.overall import overall
from multialpha.status.pnl import journal_realized, portfolio
from multialpha.status.raw import Collector, Raw
from multialpha.status.sections import _orders, errors, hub_lag, model_problems, processes, strategies, symbols
from multialpha.verify import store as verify_store

log = logging.getLogger("multialpha.status")

SCHEMA = "multialpha.status/1"


def market_clock(settings: Settings) -> tuple[str, Callable[[], datetime]]:
    """The clock bars are stamped in: the sandbox's replay clock on the sandbox, else real UTC."""
    if settings.databento.uses_sandbox:
        from multialpha import runtime
        from multialpha.sandbox.state import SandboxState

        path = runtime.sandbox_state_path(settings)
        state = SandboxState.read(path)
        if state is not None:
            return "sandbox", state.now
        if path.exists():
            log.warning("unreadable sandbox state file; using wall time for market time")
    return "wall", cme_time.utcnow


def build(settings: Settings, raw: Raw, now: datetime, source: str, mnow: datetime,
          environ: dict[str, str]) -> dict[str, Any]:
    """The document from what :meth:`Collector.read` returned (no I/O)."""
    beats = raw.beats
    supervisor, procs = processes(settings, beats, now)
    market_open = cme_time.is_open(mnow)
    lag_hub = hub_lag(beats, mnow, market_open)
    port = portfolio(settings, raw, mnow)
    day = cme_time.trading_day(mnow)
    realized = journal_realized(settings, raw.journal_today, day)
    models = model_problems(settings, beats, raw.vetoes)
    strats = strategies(settings, beats, procs, _orders(raw.orders_recent), port, realized, models, environ)
    # The strategies add up to the gate's day P&L: what the journal cannot attribute is said.
    port["unattributed_pnl"] = round(port["day_pnl"] - sum(s["pnl_today"] for s in strats), 2)
    modes = sorted({s["mode"] for s in strats if s["state"] != "DISABLED"})
    syms = symbols(settings, raw, mnow, lag_hub)
    doc = {
        "schema": SCHEMA,
        "generated": cme_time.iso_z(now.replace(microsecond=0)),
        "namespace": settings.redis.namespace,
        "clock": {"source": source, "market_now": cme_time.iso_z(mnow.replace(microsecond=0))},
        "market_open": market_open,
        "hub_lag_s": lag_hub,
        "order_mode": {"summary": modes[0] if len(modes) == 1 else ("mixed" if modes else "paper"),
                       "strategies": {s["name"]: s["mode"] for s in strats}},
        "supervisor": supervisor,
        "processes": procs,
        "symbols": syms,
        "strategies": strats,
        "portfolio": port,
        "errors": errors(raw, procs, beats),
        "verify": verify_store.newest(raw.verify),
    }
    doc["overall"] = overall(doc, lag_hub)
    doc["ok"] = doc["overall"]["state"] in ("OK", "WARN")
    return doc


class Status:
    """A reusable status reader: one :class:`Collector` across refreshes (the live view)."""

    def __init__(self, settings: Settings, client: "redis.Redis", clock: Callable[[], datetime] = cme_time.utcnow,
                 environ: dict[str, str] | None = None,
                 market: tuple[str, Callable[[], datetime]] | None = None) -> None:
        self.settings, self.clock, self.market = settings, clock, market
        self.environ = dict(os.environ if environ is None else environ)
        self.collector = Collector(settings, client)
        self.round_trips = 0

    def __call__(self) -> dict[str, Any]:
        now = self.clock()
        if self.market is not None:
            source, mclock = self.market
        elif self.clock is cme_time.utcnow:
            source, mclock = market_clock(self.settings)
        else:
            source, mclock = "wall", self.clock
        mnow = mclock()
        raw = self.collector.read(cme_time.trading_day(mnow))
        self.round_trips = raw.round_trips
        doc = build(self.settings, raw, now, source, mnow, self.environ)
        doc["redis"] = redis_nodes.read(self.settings, self.collector.client)  # primary, replicas, lag
        return doc


def collect(settings: Settings, client: "redis.Redis", clock: Callable[[], datetime] = cme_time.utcnow,
            environ: dict[str, str] | None = None,
            market: tuple[str, Callable[[], datetime]] | None = None) -> dict[str, Any]:
    """The whole status document. ``client`` must use decode_responses=True.

    ``clock`` is wall time (heartbeat ages); ``market`` is (name, clock) for bar lag,
    session and trading day — the sandbox replay clock on the sandbox.
    """
    return Status(settings, client, clock, environ, market)()


def order_mode_words(doc: dict[str, Any], short: bool = False) -> str:
    m = doc["order_mode"]["summary"]
    if short:
        return {"live": "LIVE orders", "mixed": "MIXED orders"}.get(m, "PAPER")
    if m == "live":
        return "LIVE — orders are sent to TradersPost"
    if m == "mixed":
        live = [n for n, v in doc["order_mode"]["strategies"].items() if v == "live"]
        return f"MIXED — live orders for {', '.join(live)}; the rest paper"
    return "PAPER — orders are journaled only, nothing is sent"
