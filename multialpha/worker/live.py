"""Phase 4 of a worker, live: bars in (the pumped subscriber), Cerebro stepping, bars done.

Builds the live machinery before catch-up (subscriber, feed bus, feed router,
turns; seeded with the warm phase's bars) so that catch-up routes into the
same feeds; then queues LIVE behind everything, builds the Cerebro and keeps
the per-step bookkeeping (:meth:`LiveRouting.after_next`: cursor, stats,
marks). The strategy's side of a step (signals, veto, orders, the book) is
worker/signals.py.

A mixin of :class:`multialpha.worker.runtime.Worker` (its state lives there).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from multialpha import cme_time, redis_conn
from multialpha.bar import phase_of
from multialpha.worker.beat import fail_fast_client
from multialpha.worker.orders import still_holds
from multialpha.worker.warm import Warmed

log = logging.getLogger(__name__)


class LiveRouting:
    def _wire(self, warmed: Warmed) -> None:
        """Subscriber, bus, feed router (seeded with the warm bars) and turns: what catch-up and live feed."""
        from multialpha.worker.feeds import FeedBus
        from multialpha.worker.routing import FeedRouter
        from multialpha.worker.subscriber import BarSubscriber

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
        warm = warmed.symbols
        for sym, w in warm.items():
            self.feed_router.seed_day(sym, w.day_resampler)
        self.feed_router.adjust_rolls(self.st.roll.adjust, warmed.historian, {s: w.contract for s, w in warm.items()})
        self.feed_router.warmup({s: w.hours for s, w in warm.items()}, {s: w.days for s, w in warm.items()})

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
