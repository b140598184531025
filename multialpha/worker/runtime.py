"""The worker process: plugin strategy + feeds + warmup + catch-up + heartbeat.

``run(settings, strategy)`` does, in order:

1. resolve the strategy's plugin type (unknown -> exit 2 listing the types);
2. read the per-symbol cursor (last processed bar-log id) from Redis;
3. warm up hourly/daily bars before boundary ``T`` (cache, then Historical);
4. subscribe to the live minute channels (live bars now wait in the
   socket), replay the bar log from ``T`` (bars up to the cursor rebuild the
   open hour/day only; bars after it are *replayed*: they update indicators
   and trade only when late signals are allowed), then mark every feed LIVE;
5. run Cerebro (live settings) until SIGTERM / ``stop_event``. Its thread
   reads the channels itself whenever no bar is pending (the subscriber's
   pump), so the live join is de-duplicated by timestamp as bars are read.
   On stop the bar in hand is finished, a final heartbeat is written, exit 0.
"""

from __future__ import annotations

import collections
import gc
import logging
import os
import signal
import sys
import threading
import time
from datetime import datetime, timedelta
from typing import Any, Callable

from multialpha import cme_time, plugins, redis_acl, redis_conn
from multialpha.config import ConfigError, Settings
from multialpha.keys import Keys
from multialpha.worker.orders import still_holds
from multialpha.bar import phase_of

log = logging.getLogger(__name__)

EXIT_OK, EXIT_ERROR, EXIT_CONFIG = 0, 1, 2
MAX_CATCHUP = timedelta(days=7)  # the bar log keeps a week (hub.bar_log_maxlen)
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


def decode_log_entry(fields: dict[Any, Any]) -> Any:
    """A bar-log stream entry -> Bar (the hub's format; raises BarError on garbage)."""
    from multialpha.hub.publisher import bar_from_log

    return bar_from_log(fields)


class Worker:
    def __init__(
        self,
        settings: Settings,
        strategy: str,
        *,
        stop_event: threading.Event | None = None,
        router: Any = None,
        clock: Callable[[], datetime] | None = None,
        fetch: Any = None,
        progress: bool | None = None,
    ) -> None:
        self.settings = settings
        self.name = strategy
        self.stop_event = stop_event or threading.Event()
        self.router = router
        self.clock = clock
        self.fetch = fetch
        self.progress = progress
        self.keys = Keys(settings.redis.namespace)
        self.state = "starting"
        self.counters: collections.Counter[str] = collections.Counter()
        self.last_bar: dict[str, datetime] = {}
        self.latencies: collections.deque[float] = collections.deque(maxlen=2048)
        self.cursor: dict[str, int] = {}  # symbol -> last processed bar start (ms)
        self.historian: Any = None
        self.subscriber: Any = None
        self.feed_router: Any = None
        self.bus: Any = None
        self.strategy_obj: Any = None
        self.trade_late = settings.worker.trade_replayed_bars
        self._buffer: list[tuple[Any, int, bool]] = []  # (bar, recv_ns, previous front?) until live
        self._live_routing = False
        self._seen: dict[str, int] = {}
        self._minute_feeds: tuple[Any, list[tuple[str, Any, Any]]] | None = None  # (strategy, [(sym, feed, clock)])
        self._hb_stop = threading.Event()
        self._hb_wake = threading.Event()
        self._hb_thread: threading.Thread | None = None
        self._health: Any = None  # /healthz + /metrics server when worker.health_port_base is set
        self.cursor_writer: Any = None  # worker/cursor.py (live only)
        self.started_mono = time.monotonic()
        self.live_after_s: float | None = None
        self.dataset = settings.databento.dataset
        self.turns: Any = None  # worker/turns.py: config-order turns at the gate (live only)
        self.closed_through: datetime | None = None  # newest minute-close notice reached
        self._notice_mono = 0.0  # monotonic time of the newest notice (or of going live)
        self._stale_logged = False
        self.owns_process = False  # run() in the main thread: the heap is ours to tune
        self.gc_frozen = 0  # objects gc.freeze() moved out of the collector's reach at LIVE
        self.model_status: dict[str, dict[str, Any]] = {}  # symbol -> {usable, reason} (ML veto on)
        self.plugin: dict[str, str] = {}  # the strategy's plugin: name, dist, version loaded (set in _prepare)
        from multialpha.worker.flatten import Flattener

        self.flattener = Flattener(strategy)  # daily stop / `multialpha flatten` exits
        from multialpha.worker.rolls import RollManager

        self.rolls = RollManager(self)  # roll policy, old-contract prices, expiry (worker/rolls.py)

    # -- entry ---------------------------------------------------------------------
    def run(self) -> int:
        try:
            prepared = self._prepare()
        except ConfigError as e:
            print(f"config error: {e}", file=sys.stderr)
            return EXIT_CONFIG
        if prepared is not None:
            return prepared
        try:
            return self._run_live()
        except Exception as e:
            if self.stop_event.is_set():
                # Told to stop mid-warmup: the sandbox or Redis may be going down with us.
                log.info("stopped while %s (%s: %s)", self.state, type(e).__name__, e)
                return 0
            self.counters["errors"] += 1
            self.state = "error"
            log.exception("worker %s failed", self.name)
            return EXIT_ERROR
        finally:
            self._shutdown()

    def _prepare(self) -> int | None:
        from multialpha.worker.plan import build_plan

        if self.name not in self.settings.strategies:
            known = ", ".join(sorted(self.settings.strategies))
            raise ConfigError(self.settings.source_path, "strategies", f"unknown strategy {self.name!r}; known: {known}")
        self.st = self.settings.strategies[self.name]
        self.stype = plugins.strategy_type_of(self.settings, self.name)
        self.plugin = plugins.provider_of(self.st.strategy_type)  # the version this process runs (heartbeat)
        if self.stype.late_signals is not None:
            self.trade_late = self.stype.late_signals
        self.plan = build_plan(self.settings, self.name, self.stype)
        self.cls = self.stype.load_class()
        if self.settings.ml_veto.mode != "off":
            from multialpha.mlveto import plugin as model_veto

            veto = model_veto.register(plugins.get_plugin_manager(), self.settings, self.name, self.st.strategy_type)
            # Per symbol: is a model usable, and if not why (status shows it before any signal).
            from multialpha.mlveto.loader import Refusal

            self.model_status = {sym: {"usable": not isinstance(m, Refusal), "reason": getattr(m, "reason", "")}
                                 for sym, m in veto.gate.models.items()}
        from multialpha.worker.strategy import MultiAlphaStrategy

        if not (isinstance(self.cls, type) and issubclass(self.cls, MultiAlphaStrategy)):
            raise ConfigError(
                self.settings.source_path, f"strategies.{self.name}.strategy_type",
                f"{self.st.strategy_type!r}: {self.cls!r} is not a MultiAlphaStrategy subclass",
            )
        known = set(self.cls.params._getkeys())
        for key in self.st.params:
            if key not in known:
                raise ConfigError(
                    self.settings.source_path, f"strategies.{self.name}.params.{key}",
                    f"unknown parameter for strategy_type {self.st.strategy_type!r}; known: "
                    + ", ".join(sorted(known - {"runtime", "symbols", "quantities"})),
                )
        return None

    # -- the pieces --------------------------------------------------------------
    def _resolve_endpoints(self) -> None:
        """Clock and Historical fetch: the sandbox's when there is no API key."""
        if self.clock is not None and self.fetch is not None:
            return
        from multialpha.worker import warmup

        try:
            from multialpha import endpoints
        except ImportError:  # endpoints (issue 3) not there: the real service
            if self.clock is None:
                self.clock = cme_time.utcnow
            if self.fetch is None:
                key, dataset = self.settings.databento.api_key, self.settings.databento.dataset

                def factory() -> Any:
                    from multialpha.worker.histclient import HistoricalClient

                    return HistoricalClient(key, "https://hist.databento.com")

                self.fetch = warmup.databento_fetch(factory, dataset)
            self.dataset = self.settings.databento.dataset
            return
        ep = endpoints.resolve(self.settings)
        self.dataset = ep.dataset
        if self.clock is None:
            self.clock = lambda: endpoints.now(ep)
        if self.fetch is None:
            self.fetch = warmup.databento_fetch(lambda: endpoints.bars_client(ep), ep.dataset)

    def _boundary(self, now: datetime) -> datetime:
        """Start of catch-up: the current hour, or the hour of the oldest unprocessed bar."""
        first = now
        for sym in self.plan.sources:
            ms = self.cursor.get(sym)
            if ms is not None:
                first = min(first, cme_time.from_ns(ms * 1_000_000) + timedelta(minutes=1))
        first = max(first, now - MAX_CATCHUP)
        return cme_time.hour_bucket(first)

    def _read_cursor(self, client: Any) -> None:
        raw = client.hgetall(self.keys.worker_cursor(self.name))
        for k, v in raw.items():
            k = k.decode() if isinstance(k, bytes) else k
            v = v.decode() if isinstance(v, bytes) else v
            try:
                self.cursor[k] = int(str(v).split("-")[0])
            except ValueError:
                log.warning("ignoring bad cursor %s=%r", k, v)

    def _on_live_bar(self, bar: Any, recv_ns: int) -> None:
        """A pumped bar: buffered until catch-up is queued (bars read while subscribing), then routed.

        A bar the hub republished after a gap (``source: replay``) is stale: it is routed as a
        replayed bar, which updates indicators and exits but never opens a position."""
        with self.feed_router.lock:
            if not self._live_routing:
                self._buffer.append((bar, recv_ns, False))
                return
        self._route_bar(bar, phase_of(bar), recv_ns)

    def _on_prev_bar(self, bar: Any, recv_ns: int) -> None:
        """A pumped previous-front bar (worker/rolls.py): buffered with the front bars until
        catch-up is queued, so it keeps its place behind its minute's front bars."""
        with self.feed_router.lock:
            if not self._live_routing:
                self._buffer.append((bar, recv_ns, True))
                return
        self.rolls.on_prev_bar(bar)

    def _route_bar(self, bar: Any, phase: str, recv_ns: int = 0, deliver: bool = True) -> bool:
        from multialpha.worker.routing import minute_ohlcv

        o = minute_ohlcv(bar.start, bar.open, bar.high, bar.low, bar.close, bar.volume)
        return self.feed_router.minute(bar.symbol, o, phase, bar.contract, recv_ns, deliver)

    def _on_minute_closed(self, minute: datetime) -> None:
        """A pumped notice from the hub; quiet-market closes follow the market's clock."""
        with self.feed_router.lock:
            if not self._live_routing:
                return  # catch-up is still being queued; the next notice counts
            self._notice_mono = time.monotonic()
            self._stale_logged = False
            self.feed_router.minute_closed(minute)

    def _on_marker(self, minute: datetime) -> None:
        """Cerebro thread: every step of minutes up to ``minute`` is done."""
        self.closed_through = minute
        if self.turns is not None:
            self.turns.finished(minute)

    def _await_turn(self) -> None:
        """Before a gate operation: wait for this strategy's turn in the step's minute."""
        if self.turns is not None and self.bus is not None and self.bus.turn is not None:
            self.turns.wait(self.bus.turn)

    def _on_idle(self) -> None:
        """Every qcheck in the pumps: retry a cursor write a failed connection left unsent; and,
        without minute-close notices for a while (fallback only), close hours/days by the clock."""
        if self.cursor_writer is not None:
            self.cursor_writer.retry()
        if self._live_routing and self.flattener.reason:
            self.flattener.run(self.strategy_obj)  # between steps, on Cerebro's thread
        if not self._live_routing or self.clock is None:
            return
        if time.monotonic() - self._notice_mono < self.settings.worker.notice_stale_s:
            return
        if not self._stale_logged:
            self._stale_logged = True
            log.warning("no minute-close notice from the hub for %.0fs: quiet-market closes follow the clock, "
                        "up to the newest minute bar received",
                        self.settings.worker.notice_stale_s)
        try:
            self.feed_router.flush_by_clock(self.clock())
        except Exception:
            self.counters["errors"] += 1
            log.exception("quiet-market flush failed")

    def _fill_current_hour(self, client: Any, boundary: datetime, now: datetime) -> None:
        """Minutes between the boundary and the bar log's first bar come from Historical (cached).

        Without them the open hour (and today's daily bar) would miss the
        minutes traded before the hub's log begins — e.g. hub and worker
        started mid-hour. Minutes at or before the cursor only feed the
        resamplers (already processed). Best effort: on a Historical error the
        hour simply starts later (logged).
        """
        from multialpha.worker import warmup
        from multialpha.worker.routing import minute_ohlcv

        end_all = cme_time.from_ns(cme_time.floor_minute_ns(cme_time.to_ns(now)))
        rows: list[tuple[datetime, str, Any]] = []
        for sym in self.plan.warm_sources():
            first = client.xrange(self.keys.bar_log(sym), min=f"{cme_time.to_ms(boundary)}-0", max="+", count=1)
            end = end_all
            if first:
                end = min(end, cme_time.from_ns(int(str(first[0][0]).split("-")[0]) * 1_000_000))
            if end <= boundary:
                continue
            try:
                cols = self.historian.minutes(sym, boundary, end)
            except Exception as e:
                log.warning("could not fetch %s minutes %s..%s (%s); the hour starts with the live bars",
                            sym, cme_time.iso_z(boundary), cme_time.iso_z(end), e)
                continue
            for b in warmup.to_bars(cols, timedelta(minutes=1)):
                rows.append((b.start, sym, b))
        rows.sort(key=lambda r: (r[0], r[1]))
        for start, sym, b in rows:
            cur = self.cursor.get(sym)
            deliver = cur is None or cme_time.to_ms(start) > cur
            self.feed_router.minute(
                sym, minute_ohlcv(b.start, b.open, b.high, b.low, b.close, b.volume), "warmup", deliver=deliver
            )

    def _catch_up(self, client: Any, boundary: datetime) -> None:
        """Replay the bar log from ``boundary``; bars after the cursor count as replayed.

        The previous front's bars (a roll overlap) after the cursor are replayed too, each behind
        its minute's front bars as the hub published them, so a restarted worker rolls and exits
        on the same bar as one that stayed up (flagged late; entries refused as stale)."""
        from multialpha.bar import BarError

        start_ms = cme_time.to_ms(boundary)
        bars: list[Any] = []
        for sym in self.plan.sources:
            for entry_id, fields in client.xrange(self.keys.bar_log(sym), min=f"{start_ms}-0", max="+"):
                try:
                    bar = decode_log_entry(fields)
                except BarError as e:
                    self.counters["bad_log_entries"] += 1
                    log.warning("bad bar-log entry %s %s: %s", sym, entry_id, e)
                    continue
                if bar.symbol == sym:
                    bars.append(bar)
        # (start, previous front?, symbol): per minute the front bars first, as the hub publishes
        items = [(b.start, False, b.symbol, b) for b in bars]
        items += [(b.start, True, b.symbol, b) for b in self.rolls.logged_prev_bars(client, self.plan.traded, boundary)]
        items.sort(key=lambda t: t[:3])
        for _, old, _, bar in items:
            cur = self.cursor.get(bar.symbol)
            if old:  # only after the cursor: before it, acted on before the restart
                if cur is not None and bar.start_ms > cur:
                    self.rolls.on_prev_bar(bar, phase="replay")
            elif cur is not None and bar.start_ms <= cur:
                self._route_bar(bar, "warmup", deliver=False)  # processed before the restart
            elif cur is None:
                self._route_bar(bar, "warmup")
            else:
                if self._route_bar(bar, "replay"):
                    self.counters["replayed"] += 1

    def _recover_gap(self) -> None:
        """After a Redis reconnect (in a pump): bars published meanwhile come from the bar log."""
        from multialpha.bar import BarError

        recovered = 0
        items: list[tuple[datetime, bool, str, Any]] = []
        for sym in self.plan.sources:
            last = self.feed_router.last_minute.get(sym)
            if last is None:
                continue
            lo = cme_time.to_ms(last) + 1
            for _, fields in self.client.xrange(self.keys.bar_log(sym), min=f"{lo}-0", max="+"):
                try:
                    bar = decode_log_entry(fields)
                except BarError:
                    self.counters["bad_log_entries"] += 1
                    continue
                if bar.symbol == sym:
                    items.append((bar.start, False, sym, bar))
        if self.feed_router.last_minute:  # and the previous front's, each behind its minute's front bars
            since = min(self.feed_router.last_minute.values())  # on_prev_bar drops what it already had
            olds = self.rolls.logged_prev_bars(self.client, self.plan.traded, since)
            items += [(b.start, True, b.symbol, b) for b in olds]
        items.sort(key=lambda t: t[:3])
        for _, old, _, bar in items:
            if old:
                self.rolls.on_prev_bar(bar, phase="replay")
            elif self._route_bar(bar, "replay"):
                recovered += 1
        self.counters["replayed"] += recovered
        log.warning("bar subscription restored; %d bars recovered from the bar log", recovered)

    def _go_live(self) -> None:
        import backtrader as bt

        with self.feed_router.lock:
            self.feed_router.go_live(bt.feed.DataBase.LIVE)
            buffered, self._buffer = self._buffer, []
            for bar, recv_ns, old in buffered:
                if old:
                    self.rolls.on_prev_bar(bar)
                else:
                    self._route_bar(bar, phase_of(bar), recv_ns)
            self._live_routing = True
            self._notice_mono = time.monotonic()

    def _build_cerebro(self) -> Any:
        from multialpha.worker.feeds import RedisLiveData, RedisResampledData
        from multialpha.worker.loop import BusCerebro

        cerebro = BusCerebro(runonce=False, preload=False, stdstats=False, live=True, exactbars=False)
        q = self.settings.worker.qcheck_s
        order = {"minute": 0, "hour": 1, "day": 2}
        for f in sorted(self.plan.feeds, key=lambda f: order[f.span]):  # Cerebro's own polling order
            klass = RedisLiveData if f.span == "minute" else RedisResampledData
            kw: dict[str, Any] = {"bus": self.bus, "feed_name": f.name, "symbol": f.symbol, "span": f.span, "qcheck": q}
            if klass is RedisResampledData:
                kw["neutral"] = f.neutral is not None
            cerebro.adddata(klass(**kw), name=f.name)
        quantities = {sym: inst.size for sym, inst in self.st.instruments.items()}
        cerebro.addstrategy(self.cls, runtime=self, symbols=tuple(self.plan.traded), quantities=quantities, **self.st.params)
        return cerebro

    def _run_live(self) -> int:
        from multialpha.worker import warmup
        from multialpha.worker.cache import BarCache
        from multialpha.worker.cursor import CursorWriter
        from multialpha.worker.feeds import FeedBus
        from multialpha.worker.routing import FeedRouter
        from multialpha.worker.subscriber import BarSubscriber

        client = redis_conn.connect(self.settings, decode_responses=True)
        self.client = client
        self.cursor_writer = CursorWriter(lambda: fail_fast_client(self.settings), self.keys.worker_cursor(self.name))
        self.state = "warming"
        self._start_heartbeat()
        self._resolve_endpoints()
        if self.router is None:
            from multialpha.worker.orders import default_router

            try:
                self.router = default_router(
                    self.settings, redis_conn.connect(self.settings, decode_responses=True), self.name, self.clock
                )
            except ImportError as e:
                log.error("order router unavailable (%s); cannot run a live worker", e)
                return EXIT_ERROR
        for ref in self.plan.feeds:
            if ref.neutral is not None:
                log.warning("reference feed %s (%s) has no data source: flat bars at %s", ref.name, ref.symbol, ref.neutral)
        self._read_cursor(client)
        now = self.clock()
        boundary = self._boundary(now)
        warm_enabled = self.settings.worker.warmup_daily_bars > 0 or self.settings.worker.warmup_hourly_bars > 0
        from multialpha.contracts import ContractMap

        # Warmup reads the contract the hub trades each day: the same map as the hub.
        self.historian = warmup.Historian(
            BarCache(warmup.cache_root(self.settings)), self.fetch, self.dataset,
            contracts=ContractMap.load(self.settings.path(self.settings.contract_map_path)),
        )
        warm = warmup.warm_all(
            self.historian, self.plan.warm_sources(), boundary,
            self.settings.worker.warmup_daily_bars, self.settings.worker.warmup_hourly_bars, self.progress,
            adjust=self.st.roll.adjust,
        )
        log.info(
            "warmup: %d symbols before %s (%d Historical requests, %d cached ranges)",
            len(warm), cme_time.iso_z(boundary), self.historian.requests, self.historian.cached_ranges,
        )
        # The subscriber is pumped by Cerebro's thread whenever no bar is pending (worker/feeds.py).
        # RESP2: redis-py 8 defaults to RESP3, where every pub/sub message takes its push path
        # (a logger lookup and a str() of the whole message); ~4 us of a ~25 us read.
        self.subscriber = BarSubscriber(
            lambda: fail_fast_client(self.settings, protocol=2), self.keys, self.plan.sources, self._on_live_bar,
            self._on_idle, self.settings.worker.qcheck_s, self._recover_gap, self._on_minute_closed,
            on_control=self.flattener.on_control,
            on_prev_bar=self._on_prev_bar,
        )
        self.bus = FeedBus(on_marker=self._on_marker, feeder=self.subscriber.pump)
        self.feed_router = FeedRouter(self.plan, self.bus)
        if self.settings.worker.turn_timeout_s > 0:
            from multialpha.worker.turns import Turns

            self.turns = Turns(redis_conn.connect(self.settings), self.keys, self.name,
                               list(self.settings.enabled_strategies), self.settings.worker.turn_timeout_s)
        for sym, w in warm.items():
            self.feed_router.seed_day(sym, w.day_resampler)
        self.feed_router.adjust_rolls(self.st.roll.adjust, self.historian, {s: w.contract for s, w in warm.items()})
        self.feed_router.warmup({s: w.hours for s, w in warm.items()}, {s: w.days for s, w in warm.items()})
        if not self.subscriber.subscribe(10.0):
            log.error("could not subscribe to the bar channels within 10 s")
            return EXIT_ERROR
        if warm_enabled:
            self._fill_current_hour(client, boundary, now)
        self._catch_up(client, boundary)
        self._go_live()
        cerebro = self._build_cerebro()
        threading.Thread(target=self._stop_watch, name="stop-watch", daemon=True).start()
        if self.stop_event.is_set():
            self.bus.stop()
        try:
            cerebro.run()
        except Exception:
            self.counters["errors"] += 1
            self.state = "error"
            log.exception("strategy %s crashed", self.name)
            return EXIT_ERROR
        return EXIT_OK

    def _stop_watch(self) -> None:
        self.stop_event.wait()
        log.info("stopping: finishing the bar in hand")
        self.state = "stopping"
        if self.subscriber is not None:
            self.subscriber.stop()
        if self.bus is not None:
            self.bus.stop(drop_backlog=True)  # finish the bar in hand only: exit within 5 s

    def _shutdown(self) -> None:
        if self._health is not None:
            self._health.close()
        if self.cursor_writer is not None:
            if not self.cursor_writer.flush():
                log.warning("the last cursor did not reach Redis: a restart replays those bars again")
            self.cursor_writer.close()
        self._hb_stop.set()
        self._hb_wake.set()
        if self._hb_thread is not None:
            self._hb_thread.join(2.0)
        if self.subscriber is not None:
            self.subscriber.close()
        if self.state not in ("error",):
            self.state = "stopped"
        try:
            self._beat()
        except Exception:
            log.warning("final heartbeat failed", exc_info=True)
        if self.router is not None and hasattr(self.router, "close"):
            try:
                self.router.close()
            except Exception:
                log.warning("router close failed", exc_info=True)

    # -- StrategyRuntime -----------------------------------------------------------
    def _restore(self, strategy: Any, force: bool = False) -> None:
        """Before the first order can leave, the book becomes what the router holds.

        Without late trading, going LIVE restores again: positions the replay
        only simulated must not survive into live trading.
        """
        if self.strategy_obj is strategy and not force:
            return
        from multialpha.worker.strategy import BookPosition

        held, positions = [], [p for p in self.router.open_positions() if p.symbol in self.st.instruments]
        for p in positions:
            held.append(BookPosition(p.symbol, p.side, p.quantity, p.entry_price, p.entry_time, real=True))
        strategy.restore_book(held)
        self.rolls.restored(positions)
        self.strategy_obj = strategy
        log.info("%d open positions restored from the order router", len(held))

    def before_next(self, strategy: Any) -> None:
        """The first bar that may trade (replayed or live) finds the real book in place: a replayed
        bar may exit a real position (entries on it are refused unless late trading is on)."""
        if self.strategy_obj is not None:
            return
        for sym in self.plan.traded:
            feed = strategy.feed(sym)
            if len(feed) and feed.phase in ("live", "replay"):
                self._restore(strategy)
                return

    def on_live(self, strategy: Any) -> None:
        self._restore(strategy, force=not self.trade_late)
        self.state = "live"
        self.live_after_s = time.monotonic() - self.started_mono
        log.info("LIVE after %.2fs", self.live_after_s)
        if self.owns_process:
            # Imports and warmup built ~1M objects that live as long as the worker. Frozen, they
            # are out of the collector's full passes, which otherwise stall a live bar for
            # 30-40 ms every so often. (Not in a test's thread: it would pin the test's garbage.)
            gc.collect()
            gc.freeze()
            # Counted once: get_freeze_count() walks the whole frozen list (~3 ms, GIL held).
            self.gc_frozen = gc.get_freeze_count()
        self._hb_wake.set()

    def on_signal(self, strategy: Any, kind: str, symbol: str, side: str, price: float, reason: str) -> Any:
        from multialpha.worker.strategy import Outcome

        feed = strategy.feed(symbol)
        phase = feed.phase if len(feed) else "warmup"
        late = phase == "replay"
        held = strategy.book.get(symbol) if kind == "exit" else None
        if held is not None and held.real:
            # A real position's exit always reaches the router, whatever bar raised it (a replayed
            # bar, or a minute feed whose newest bar is still a warmup one while an hour or day bar
            # signals): dropping it from the book in simulation would leave the broker holding it.
            return self._submit(strategy, "exit", symbol, side, price, reason, late, held.quantity)
        if phase == "warmup" or (not late and not strategy.all_live):
            return Outcome(True, False, "simulated")
        self._restore(strategy)
        if kind == "exit":
            # Exits act on stale (replayed) bars too: a position the strategy wants out of is risk.
            pos = strategy.book.get(symbol)
            if pos is None or not pos.real:
                return Outcome(True, False, "simulated position")
            return self._submit(strategy, "exit", symbol, side, price, reason, late, pos.quantity)
        if late and not self.trade_late:
            # Never a position from a stale bar (the hub's replay after a gap, or our own catch-up):
            # refused here, before the veto and the gate; the router would refuse it too.
            self.counters["stale_entries"] += 1
            log.info("entry %s %s on a replayed bar refused (worker.trade_replayed_bars is off)", side, symbol)
            return Outcome(False, False, "stale bar: entries on replayed bars are off")
        vetoed = self._veto(strategy, symbol, side)
        if vetoed is not None:
            return Outcome(False, False, vetoed)
        return self._submit(strategy, "entry", symbol, side, price, reason, late, strategy.quantity_for(symbol))

    def _veto(self, strategy: Any, symbol: str, side: str) -> str | None:
        """None = allowed; else the veto reason. Follows ml_veto.mode / on_missing."""
        mode = self.settings.ml_veto.mode
        if mode == "off" or not self.st.instruments[symbol].ml_enabled:
            return None
        data = {"minute": strategy.feed(symbol)}
        for tf in ("hour", "day"):
            if tf in self.stype.timeframes:
                data[tf] = strategy.feed(symbol, tf)
        for alias in self.st.reference_feeds:
            data[alias] = strategy.ref(alias)
        features: dict[str, Any] = {}
        stype = self.st.strategy_type
        try:
            for part in plugins.scoped_hook("multialpha_features", stype)(
                    strategy=self.name, symbol=symbol, side=side, data=data):
                if part:
                    features.update(part)
            decision = plugins.scoped_hook("multialpha_ml_veto", stype)(
                strategy=self.name, symbol=symbol, side=side, features=features)
        except Exception as e:
            self.counters["errors"] += 1
            log.exception("veto hook failed for %s %s", symbol, side)
            decision, err = None, f"veto error: {type(e).__name__}"
        else:
            err = ""
        if decision is None:
            allow = self.settings.ml_veto.on_missing == "allow"
            reason = err or f"no veto model answered; on_missing={self.settings.ml_veto.on_missing}"
        else:
            allow, reason = bool(decision.allow), decision.reason
        acted = allow or mode == "shadow"
        self._journal_veto(symbol, side, decision, allow, acted, reason, features)
        if allow:
            return None
        self.counters["vetoes"] += 1
        if mode == "shadow":
            log.info("shadow veto (not enforced) %s %s: %s", symbol, side, reason)
            return None
        log.info("vetoed %s %s: %s", symbol, side, reason)
        return reason or "vetoed"

    def _journal_veto(self, symbol: str, side: str, decision: Any, allow: bool, acted: bool, reason: str,
                      features: dict[str, Any]) -> None:
        """Every veto decision, allowed or not, for status and later analysis."""
        from multialpha.mlveto.record import record

        try:
            record(self.client, self.keys, strategy=self.name, symbol=symbol, side=side, at=self.clock(),
                   allow=allow, acted=acted, mode=self.settings.ml_veto.mode, reason=reason, features=features,
                   probability=getattr(decision, "score", None),
                   model_sha256=str((getattr(decision, "extra", None) or {}).get("model_sha256", "")),
                   bar_start=self._bar_start(symbol))
        except Exception:
            log.warning("veto journal write failed", exc_info=True)

    def _bar_start(self, symbol: str) -> datetime | None:
        """Start of the minute bar the strategy is deciding on (None before it has one)."""
        from multialpha.worker.strategy import minute_bar_start

        st = self.strategy_obj
        return minute_bar_start(st.feed(symbol)) if st is not None else None

    def _submit(self, strategy: Any, kind: str, symbol: str, side: str, price: float, reason: str, late: bool, qty: int) -> Any:
        from multialpha.worker.orders import make_intent
        from multialpha.worker.strategy import Outcome, minute_bar_start

        feed = strategy.feed(symbol)
        contract = feed.contract or self._front(symbol, minute_bar_start(feed))
        if kind == "exit":  # priced at the HELD contract's close, not the new front's
            price = self.rolls.exit_price(symbol, price)
        intent = make_intent(
            strategy=self.name, symbol=symbol, side=side, kind=kind, quantity=qty, price=price,
            bar_start=minute_bar_start(feed), contract=contract, reason=reason, late=late,
        )
        try:
            if not self.flattener.active:  # flatten exits take no slot: they need no turn
                self._await_turn()
            decision = self.router.submit(intent)
        except Exception:
            self.counters["errors"] += 1
            log.exception("order router failed on %s %s", kind, symbol)
            return Outcome(False, False, "router error")
        self.rolls.submitted(kind, symbol, contract, bool(decision.accepted))
        self.counters["orders"] += 1 if decision.accepted else 0
        self.counters["rejected"] += 0 if decision.accepted else 1
        log.info("%s %s %s x%d @ %s -> %s %s", kind, side, symbol, qty, price, "accepted" if decision.accepted else "rejected", decision.reason)
        return Outcome(bool(decision.accepted), True, decision.reason)

    def _front(self, symbol: str, when: datetime) -> str:
        from multialpha.contracts import ContractMap

        try:
            return ContractMap.load(self.settings.path(self.settings.contract_map_path)).front(symbol, when).raw_symbol
        except Exception:
            return ""

    def after_next(self, strategy: Any) -> None:
        """After each Strategy.next: record processed minute bars (cursor, stats, marks)."""
        if self._minute_feeds is None or self._minute_feeds[0] is not strategy:
            routes = [(sym, self.plan.routes.get((sym, "minute"))) for sym in self.plan.sources]
            feeds = [(sym, strategy.getdatabyname(r[0])) for sym, r in routes if r]
            # with each feed's datetime buffer: its length without three nested len() calls
            self._minute_feeds = (strategy, [(sym, f, f.lines.datetime) for sym, f in feeds])
        advanced: dict[str, str] = {}
        now_ns = time.perf_counter_ns()
        for sym, feed, clock in self._minute_feeds[1]:
            n = clock.lencount
            if n <= self._seen.get(sym, 0):
                continue
            self._seen[sym] = n
            start = feed.bar_start  # the bar just processed: a feed advances only onto its last load
            self.last_bar[sym] = start
            ms = cme_time.to_ms(start)
            advanced[sym] = f"{ms}-0"
            self.cursor[sym] = ms
            self.counters["bars"] += 1
            if feed.phase == "live" and feed.recv_ns:
                self.latencies.append((now_ns - feed.recv_ns) / 1e6)
            if sym in self.rolls.held:  # a rolled or expiring contract: roll / forced exit
                self.rolls.after_bar(strategy, sym, feed)
            pos = strategy.book.get(sym)
            held = (pos is not None and pos.real) or still_holds(self.router, sym)
            if held and feed.phase == "live":  # a closing position is still marked until delivered
                try:
                    self._await_turn()
                    flatten = self.router.mark(sym, float(feed.close[0]), start, contract=feed.contract or None)
                except Exception:
                    self.counters["errors"] += 1
                    log.warning("mark failed for %s", sym, exc_info=True)
                else:
                    if flatten:
                        self.flattener.request(flatten)
        if self.flattener.reason:
            self.flattener.run(strategy)
        if advanced and self.cursor_writer is not None:
            # Sent now, reply read later: no round trip on the bar path, and a kill -9
            # replays at most the bars whose HSET was still in flight.
            self.cursor_writer.write(advanced)

    # -- heartbeat ---------------------------------------------------------------
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


def run(
    settings: Settings,
    strategy: str,
    *,
    stop_event: threading.Event | None = None,
    router: Any = None,
    clock: Callable[[], datetime] | None = None,
    fetch: Any = None,
    progress: bool | None = None,
) -> int:
    """Run one strategy worker until stopped; returns the process exit code.

    In the main thread SIGTERM and SIGINT set ``stop_event``. ``router``
    defaults to ``multialpha.orders.router.OrderRouter``; ``clock`` and
    ``fetch`` default to the resolved endpoints (sandbox or Databento).
    """
    redis_acl.set_role(f"worker.{strategy}")  # redis.acl: this process connects as its strategy's user
    stop = stop_event or threading.Event()
    main = threading.current_thread() is threading.main_thread()
    if main:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    worker = Worker(settings, strategy, stop_event=stop, router=router, clock=clock, fetch=fetch, progress=progress)
    worker.owns_process = main
    return worker.run()
