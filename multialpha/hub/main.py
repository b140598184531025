"""The hub process: wires session -> resolver/aggregator -> publisher, plus
heartbeat and control, on one hub thread.

Threads: the Live client's reader thread (multialpha.lsg; its callback enqueues records), the
session thread (connect/backoff/silence), and the hub thread (everything
else: decode-free aggregation, publishing, heartbeat, control). Only the hub
thread touches bars and Redis.

:func:`run` returns the exit code; tests run it in a thread with a
``stop_event`` or as ``multialpha hub`` in a subprocess.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any, Callable

import redis
from databento_dbn import UNDEF_TIMESTAMP, ErrorMsg, SymbolMappingMsg, SystemMsg

from multialpha import cme_time, redis_acl, redis_conn
from multialpha import config as cfg
from multialpha.contracts import ContractMap
from multialpha.heartbeat import Heartbeat
from multialpha.hub.aggregator import Aggregator
from multialpha.hub.control import ControlChannel
from multialpha.hub.publisher import Publisher
from multialpha.hub.resolver import Resolver, Roll
from multialpha.hub.volumes import HistoricalVolumes, front_on
from multialpha.hub.session import Connected, Disconnected, Inbox, Session, Target
from multialpha.keys import Keys

log = logging.getLogger(__name__)

BATCH = 4096  # records per aggregation batch: bounds latency of heartbeat/control
TICK_S = 0.05  # idle wait for records; also the control poll period


def heartbeat_interval(silence_timeout_s: float) -> int:
    """Ask the gateway for heartbeats well inside our silence timeout (5..1800 s)."""
    return int(min(1800, max(5, silence_timeout_s - 10)))


def default_connector(settings: cfg.Settings) -> Callable[[], Target]:
    """Resolve endpoints on every attempt (a restarted sandbox moves ports)."""

    def connect() -> Target:
        from multialpha import endpoints
        from multialpha import logs

        ep = endpoints.resolve(settings)
        logs.register_secret(ep.api_key)
        client = endpoints.lsg_client(ep, heartbeat_interval_s=heartbeat_interval(settings.hub.silence_timeout_s))
        now = endpoints.now(ep)
        now_ns = now if isinstance(now, int) else cme_time.to_ns(now)
        return Target(client, f"{ep.live_gateway}:{ep.live_port}", now_ns)

    return connect


def redis_client(settings: cfg.Settings) -> "redis.Redis":
    """Fail fast when Redis is down (redis-py's default retries block ~3.5 s per
    call): the hub buffers bars and retries itself; one immediate retry covers a
    stale pooled connection after a Redis restart."""
    return redis_conn.connect(settings, timeout=2.0, connect_timeout=1.0, retries=1, health_check_interval=10)


class Hub:
    def __init__(
        self,
        settings: cfg.Settings,
        *,
        stop_event: threading.Event | None = None,
        connect: Callable[[], Target] | None = None,
        client: "redis.Redis | None" = None,
    ) -> None:
        self.settings = settings
        self.stop_event = stop_event or threading.Event()
        self.connect = connect or default_connector(settings)
        self.keys = Keys(settings.redis.namespace)
        self.redis = client or redis_client(settings)
        hub = settings.hub
        self.roots = settings.hub_symbols()
        self.cmap = ContractMap.load(settings.path(settings.contract_map_path))
        # front: volume roots (contract map) ask Historical for the previous session's volumes;
        # the client is built on first use, so calendar-only maps never touch Historical.
        self.resolver = Resolver(self.cmap, self.roots, {r: settings.instruments[r].product_id for r in self.roots},
                                 volumes=HistoricalVolumes.from_settings(settings))
        self.publisher = Publisher(self.redis, self.keys, hub.bar_log_maxlen, hub.redis_buffer_bars)
        self.aggregator = Aggregator(
            self.resolver, self._ticks(settings), self.publisher.add, hub.grace_s, self._on_roll, self._on_other,
            self.publisher.add_minute_closed, emit_prev=self.publisher.add_prev, overlap=self._overlap,
        )
        self.control = ControlChannel(self.redis, self.keys)
        self.heartbeat = Heartbeat(self.redis, self.keys, "hub", hub.heartbeat_ttl_s)
        self.queue = Inbox()
        self.session: Session | None = None
        self.state = "starting"
        self.errors = 0
        self.other = 0
        self._live_only = False  # a live-only connection has not sent its first mapping yet

    def _ticks(self, settings: cfg.Settings) -> dict[str, float]:
        return {r: settings.instruments[r].tick_size for r in self.roots}

    def parents(self) -> list[str]:
        return sorted(self.settings.instruments[r].product_id for r in self.roots)

    # -- record side (hub thread) -----------------------------------------------------------
    def _on_other(self, rec: Any) -> None:
        t = type(rec)
        if t is SymbolMappingMsg:
            if self._live_only:
                self._first_mapping(rec.ts_event)
            self.resolver.on_mapping(rec.instrument_id, rec.stype_in_symbol, rec.stype_out_symbol)
        elif t is SystemMsg:
            self.aggregator.advance(rec.ts_event)
            if not rec.is_heartbeat():
                log.info("gateway: %s", rec.msg)
        elif t is ErrorMsg:
            self.errors += 1
            log.error("gateway error: %s", rec.err)
        elif t is Connected:
            self.resolver.reset_mappings()
            self.aggregator.prev_routes.clear()  # instrument ids are re-announced
            if rec.start_ns is not None:
                self.aggregator.replay_until = max(self.aggregator.replay_until, rec.now_ns)
            self._whole_from(rec)
            self.state = "connected"
        elif t is Disconnected:
            resume = self.aggregator.reset(0)
            self.state = "reconnecting"
            log.warning("session %d lost (%s): partial bars dropped, replay from %s", rec.gen, rec.reason,
                        cme_time.iso_z(resume) if resume else "live")
            assert self.session is not None
            self.session.resume(resume)
        else:
            self.other += 1

    def _whole_from(self, rec: Connected) -> None:
        """Publish no minute before the first one this connection delivers whole.

        With ``start=`` (cold start, gap replay) that is the requested minute, so nothing is
        lost; live only (the gateway refused the replay) the minute in progress at connect
        is dropped, and that is logged.
        """
        agg = self.aggregator
        self._live_only = rec.start_ns is None  # the first mapping's time bounds it again
        if rec.whole_from is not None and rec.whole_from > agg.floor:
            if self._live_only:
                self._log_skipped(agg.resume_point(), rec.whole_from)
            agg.floor = rec.whole_from

    def _first_mapping(self, ts_event: int) -> None:
        """Live only: the stream began at or before its first mapping, so a minute that
        started before it may be partial (the connect-time clock can be early or skewed)."""
        self._live_only = False
        if not 0 < ts_event < UNDEF_TIMESTAMP:
            return
        first = cme_time.floor_minute_ns(ts_event) + cme_time.MINUTE_NS
        agg = self.aggregator
        if first > agg.floor:
            self._log_skipped(agg.resume_point(), first)
            agg.floor = first

    def _log_skipped(self, resume: int | None, first: int) -> None:
        last = first - cme_time.MINUTE_NS
        if resume is None or resume >= last:
            log.warning("live session without replay: minute %s is not published (not seen from its first "
                        "second); the first bar is %s", cme_time.iso_z(last), cme_time.iso_z(first))
        else:
            log.error("live session without replay: minutes %s to %s are not published (gap not replayed); "
                      "the first bar is %s", cme_time.iso_z(resume), cme_time.iso_z(last), cme_time.iso_z(first))

    def _overlap(self, day: str, fronts: dict[str, str]) -> dict[str, str]:
        """Root -> previous front on trading day ``day`` (hub.roll_overlap_days after a roll)."""
        from datetime import date

        from multialpha.hub.overlap import prev_front

        d, n = date.fromisoformat(day), self.settings.hub.roll_overlap_days
        rs = self.resolver
        out = {r: prev_front(self.cmap, r, d, n, fronts.get(r),
                             lambda day, r=r: front_on(self.cmap, rs.volumes, r, rs.product_ids[r], day))
               for r in rs.roots}
        return {r: c for r, c in out.items() if c}

    def _on_roll(self, roll: Roll) -> None:
        if roll.old is None:
            log.info("%s front contract %s (trading day %s)", roll.root, roll.new, roll.trading_day)
            return
        log.warning("ROLL %s: %s -> %s at %s (trading day %s)", roll.root, roll.old, roll.new,
                    cme_time.iso_z(roll.ts_ns), roll.trading_day)
        self.control.announce({"event": "roll", "symbol": roll.root, "old": roll.old, "new": roll.new,
                               "at": cme_time.iso_z(roll.ts_ns), "trading_day": roll.trading_day})

    # -- periodic (hub thread) --------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        s = self.session
        counters = {**self.aggregator.counters(), **self.publisher.counters(),
                    "reconnects": s.reconnects if s else 0, "gateway_errors": self.errors,
                    "control_malformed": self.control.malformed}
        return {
            "state": self.state if self.publisher.up else f"{self.state} (redis down)",
            "gateway": s.gateway if s else "",
            "streaming": bool(s and s.streaming()),
            "symbols": self.roots,
            "last_bar": dict(self.publisher.last_bar),
            "feed_clock": cme_time.iso_z(self.aggregator.clock) if self.aggregator.clock else "",
            "closed_through": self.publisher.closed_through,
            "counters": counters,
            "last_error": s.last_error if s else "",
        }

    def _beat(self) -> None:
        try:
            st = self.status()
            self.heartbeat.beat(st.pop("state"), **st)
        except redis.RedisError as e:
            log.debug("heartbeat failed: %s", e)

    def _handle(self, cmds: list) -> None:
        for cmd in cmds:
            log.info("control: %s", cmd.name)
            if cmd.name == "shutdown":
                self.stop_event.set()
            elif cmd.name == "ping":
                self.control.reply(cmd.request_id, {"id": cmd.request_id, "reply": "pong", "pid": os.getpid(),
                                                    "state": self.state, "counters": self.status()["counters"]})
            elif cmd.name == "reload":
                self._reload()

    def _reload(self) -> None:
        try:
            fresh = cfg.load(self.settings.source_path)
        except cfg.ConfigError as e:
            log.error("reload refused: %s", e)
            return
        roots = fresh.hub_symbols()
        self.settings = fresh
        if roots == self.roots:
            log.info("reload: instrument set unchanged")
            return
        log.warning("reload: instruments %s -> %s; resubscribing", self.roots, roots)
        self.roots = roots
        self.resolver.set_roots(roots, {r: fresh.instruments[r].product_id for r in roots})
        self.aggregator.set_roots(self._ticks(fresh))
        if self.session:
            self.session.resubscribe(self.parents())

    # -- the loop ----------------------------------------------------------------------------
    def _restore(self) -> int | None:
        deadline = time.monotonic() + 10
        while not self.stop_event.is_set():
            try:
                last = self.publisher.last_logged(self.roots)
                resume = self.aggregator.restore(last)
                if resume:
                    log.info("bar log ends at %s: replaying from there", cme_time.iso_z(resume))
                return resume
            except redis.RedisError as e:
                if time.monotonic() > deadline:
                    log.error("redis unreachable, starting without the bar log (no duplicate can result): %s", e)
                    return None
                self.stop_event.wait(0.2)
        return None

    def run(self) -> int:
        hub = self.settings.hub
        resume = self._restore()
        if self.stop_event.is_set():
            return 0
        self.session = Session(
            self.connect, self.queue, dataset=self.settings.databento.dataset, symbols=self.parents(),
            schema=self.settings.databento.schema_, start_ns=resume, silence_timeout_s=hub.silence_timeout_s,
            reconnect_initial_s=hub.reconnect_initial_s, reconnect_cap_s=hub.reconnect_cap_s,
        )
        self.session.start()
        self.state = "connecting"
        from multialpha.health import serve_component

        health = serve_component(hub.health_port, "hub", lambda: self.status()["counters"],
                                 lambda: (self.state == "connected" and self.publisher.up, {"state": self.state}))
        drain = self.queue.drain
        next_beat = 0.0
        next_poll = 0.0
        try:
            while not self.stop_event.is_set():
                batch = drain(BATCH, TICK_S)
                if batch:
                    self.aggregator.process(batch)
                # At once when caught up; under a backlog every BACKLOG_FLUSH_S (publisher.py). Behind
                # = this drain took a full batch and more wait: in a live market the reader thread
                # adds records while a batch is aggregated, and that alone is no backlog.
                waiting = len(self.queue)
                self.publisher.flush_paced(waiting if len(batch) == BATCH else 0)
                now = time.monotonic()
                if now >= next_poll:
                    next_poll = now + TICK_S
                    self._handle(self.control.poll())
                if now >= next_beat:
                    next_beat = now + 1.0
                    self._beat()
        finally:
            if health:
                health.close()
            self._shutdown()
        return 0

    def _shutdown(self) -> None:
        """Stop reading; the partial minute is NOT published; flush what is finished."""
        self.state = "stopping"
        if self.session:
            self.session.stop(timeout=2.0)
        self.aggregator.release_ready()  # complete bars; their minute's notice is not sent
        self.publisher.flush(force=True)
        if self.publisher.pending:
            log.error("exiting with %d finished bars unpublished (redis down)", len(self.publisher.pending))
        self.control.close()
        try:
            self.heartbeat.clear()
        except redis.RedisError:
            pass
        log.info("hub stopped: %s", self.status()["counters"])


def run(settings: cfg.Settings, *, stop_event: threading.Event | None = None, **kw: Any) -> int:
    """Run the hub until SIGTERM/SIGINT, a ``shutdown`` command or ``stop_event``.

    Returns 0 after a clean stop, 2 when the configuration cannot work (no
    instruments, a root missing from the contract map): nothing to retry.
    """
    redis_acl.set_role("hub")  # redis.acl: this process connects as the hub's user
    try:
        hub = Hub(settings, stop_event=stop_event, **kw)
    except (ValueError, OSError, KeyError) as e:
        log.error("hub cannot start: %s", e)
        return 2
    if not hub.roots:
        log.error("hub cannot start: no enabled strategy or hub-fed reference feed names an instrument")
        return 2
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum: int, frame: Any) -> None:
            log.info("signal %d: shutting down", signum)
            hub.stop_event.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    return hub.run()
