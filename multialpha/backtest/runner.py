"""The backtest runtime: the live worker, fed historical bars on a simulated clock.

Live ≡ backtest by construction: every strategy runs inside a
:class:`BacktestWorker`, a :class:`~multialpha.worker.runtime.Worker` whose
only differences are where bars come from (Historical, not Redis pub/sub) and
what "now" is (the simulated bar time). Everything else is the worker's own
code: plugin type and params checks (``_prepare``), the feed plan, the
``FeedRouter``/``Resampler``/``FeedBus`` feeds, the cached warmup, the
``StrategyRuntime`` methods (``on_signal`` -> features -> ML veto ->
``OrderRouter.submit``; ``after_next`` marks), and the real ``OrderRouter`` in
paper mode with the real portfolio gate (Lua) in a private, throw-away
redis-server — one implementation of max positions, the daily stop on the CME
trading day and P&L with multiplier/commission.

Lockstep: each strategy's Cerebro runs in its own thread (as each worker is
its own process live). A conductor walks the merged bar stream in (bar
start, symbol) order and, for every timestamp, sets the clock to the bar's
end (when a live worker would see it), then hands each strategy its bars in
config order and waits until that strategy's ``next()`` has finished before
the next strategy goes — the order live workers meet the gate in
(worker/turns.py). Quiet-market closes run at every minute boundary, before
that minute's bars, as live workers run them on the hub's minute-close
notices. Same input, same order -> same orders, every run.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable

from multialpha import cme_time, plugins
from multialpha.backtest import data as bt_data
from multialpha.config import ConfigError, Settings
from multialpha.worker.feeds import FeedBus, Item, Status
from multialpha.worker.runtime import Worker

log = logging.getLogger(__name__)

FLUSH_GRACE = timedelta(seconds=90)  # FeedRouter's quiet-market grace (live: the subscriber's idle flush)
Progress = Callable[[int, int, date], None]  # (trading days done, total, day being run): backtest/progress.py
Bars = tuple[dict[str, bt_data.Bars], dict[str, bt_data.Bars]]  # (front, previous front)
Seed = Callable[[Settings, Any], None]  # (backtest settings, private Redis client) before strategies start


class SimClock:
    """The simulated "now": the end of the bar being processed."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class LockstepBus(FeedBus):
    """A FeedBus the conductor can wait on: idle = everything staged was consumed and next() returned."""

    def __init__(self) -> None:
        super().__init__()
        self.failed: BaseException | None = None

    def step_done(self) -> None:
        with self.cond:
            self.hot = False
            self.cond.notify_all()

    def take(self, name: str, timeout: float) -> Item | Status | None | bool:
        item = super().take(name, timeout)
        with self.cond:
            if not (self.pending or self.staged or self.hot):
                self.cond.notify_all()  # e.g. a Status-only batch: consumed without a step
        return item

    def wait_idle(self, thread: threading.Thread) -> None:
        with self.cond:
            while self.pending or self.staged or self.hot or self.calling or self._reached:
                if not thread.is_alive():
                    raise RuntimeError(f"strategy thread {thread.name} ended early: {self.failed!r}")
                self.cond.wait(0.5)


class BacktestWorker(Worker):
    """The worker, minus Redis pub/sub, heartbeat and cursor; veto decisions also kept in memory."""

    def __init__(self, settings: Settings, strategy: str, *, clock: SimClock, client: Any) -> None:
        super().__init__(settings, strategy, clock=clock, progress=False)
        self.client = client  # the private Redis: veto journal
        self.decisions: list[dict[str, Any]] = []
        self.thread: threading.Thread | None = None
        self.cerebro: Any = None
        self.sources: set[str] = set()

    def _journal_veto(self, symbol: str, side: str, decision: Any, allow: bool, acted: bool, reason: str,
                      features: dict[str, Any]) -> None:
        super()._journal_veto(symbol, side, decision, allow, acted, reason, features)
        self.decisions.append({
            "strategy": self.name, "symbol": symbol, "side": side, "at": self.clock(),
            "bar_start": self._bar_start(symbol), "allow": allow, "acted": acted, "reason": reason,
            "probability": getattr(decision, "score", None), "features": dict(features),
        })


@dataclass
class BacktestRun:
    """What a finished run leaves behind (see :mod:`multialpha.backtest.results`)."""

    settings: Settings  # the backtest's settings (private Redis, paper)
    strategies: list[str]
    start: datetime
    end: datetime
    resolution: str
    journal: list[dict[str, str]]  # the order journal stream (intents, denials, outcomes)
    decisions: list[dict[str, Any]]
    counters: dict[str, dict[str, int]]
    bars: dict[str, bt_data.Bars]  # BarSeries (numpy columns) from Historical, lists when given (verify)
    day_realized: dict[str, float] = field(default_factory=dict)  # gate's realised $ per trading day
    open_positions: list[dict[str, str]] = field(default_factory=list)
    steps: int = 0
    prev_bars: dict[str, bt_data.Bars] = field(default_factory=dict)  # old fronts after rolls


def backtest_settings(settings: Settings, host: str, port: int, **portfolio: Any) -> Settings:
    """The user's settings pointed at the private Redis; orders always paper (nothing can leave)."""
    upd: dict[str, Any] = {
        "redis": settings.redis.model_copy(update={"host": host, "port": port, "password": "", "tls": False, "db": 0}),
        "orders": settings.orders.model_copy(update={"mode": "paper"}),
    }
    if portfolio:
        upd["portfolio"] = settings.portfolio.model_copy(update=portfolio)
    return settings.model_copy(update=upd)


def _drop_model_vetoes() -> None:
    from multialpha.mlveto import plugin as model_veto

    model_veto.unregister_all(plugins.get_plugin_manager())


def run(
    settings: Settings,
    strategies: list[str],
    start: datetime,
    end: datetime,
    *,
    fetch: Any,
    dataset: str,
    data_now: datetime,
    resolution: str = "minute",
    progress: Progress | None = None,
    portfolio: dict[str, Any] | None = None,
    bars: Bars | None = None,
    seed: Seed | None = None,
) -> BacktestRun:
    """Run ``strategies`` (config order) together over bars starting in [start, end).

    ``fetch`` is a :class:`~multialpha.worker.warmup.Fetch` (Databento
    Historical or the sandbox); ``data_now`` is where the data ends (the
    sandbox clock): the range is clipped there. ``bars`` (front, previous-front bars per
    symbol) replaces the Historical bars of the range (``multialpha verify`` passes the hub's bar
    logs; warmup still reads Historical up to ``start``); ``seed(settings, client)`` runs on the
    private Redis before any strategy starts (verify: the day's starting book). Raises ConfigError for config problems and
    :class:`~multialpha.backtest.data.DataUnavailable` when there are no bars.
    """
    from multialpha.managed_redis import ManagedRedis

    if resolution not in bt_data.SPAN:
        raise ConfigError(settings.source_path, "--resolution", f"must be minute or hour, got {resolution!r}")
    end = min(end, cme_time.from_ns(cme_time.floor_minute_ns(cme_time.to_ns(data_now))))
    if end <= start:
        raise bt_data.DataUnavailable(
            f"no data before {cme_time.iso_z(data_now)} (the data's clock) in the range starting {cme_time.iso_z(start)}")
    with ManagedRedis() as server:
        client = server.client(decode_responses=True)
        bt_settings = backtest_settings(settings, server.host, server.port, **(portfolio or {}))
        try:
            if seed is not None:
                seed(bt_settings, client)
            return _run(bt_settings, client, strategies, start, end, fetch, dataset, data_now, resolution, progress,
                        bars)
        finally:
            _drop_model_vetoes()
            client.close()


def _run(settings: Settings, client: Any, strategies: list[str], start: datetime, end: datetime, fetch: Any,
         dataset: str, data_now: datetime, resolution: str, progress: Progress | None,
         given: Bars | None = None) -> BacktestRun:
    import backtrader as bt

    from multialpha.contracts import ContractMap
    from multialpha.orders.router import OrderRouter
    from multialpha.worker import warmup
    from multialpha.worker.cache import BarCache
    from multialpha.worker.routing import FeedRouter

    clock = SimClock(start)
    _drop_model_vetoes()
    workers: list[BacktestWorker] = []
    for name in strategies:
        w = BacktestWorker(settings, name, clock=clock, client=client)
        w._prepare()  # the worker's own checks: plugin type, params, model veto registration
        w.router = OrderRouter(settings, client, name, clock=clock)
        workers.append(w)

    cmap = ContractMap.load(settings.path(settings.contract_map_path))
    historian = warmup.Historian(BarCache(warmup.cache_root(settings)), fetch, dataset, contracts=cmap)
    sources = sorted({s for w in workers for s in w.plan.sources})
    if given is not None:
        bars, prev_bars = given
    else:
        bars = bt_data.load_bars(historian, sources, start, end, resolution, cmap)
        prev_bars = bt_data.load_prev_bars(historian, sources, start, end, resolution,
                                           settings.hub.roll_overlap_days)

    for w in workers:
        w.historian = historian
        w.sources = set(w.plan.sources)
        w.bus = LockstepBus()
        w.feed_router = FeedRouter(w.plan, w.bus, FLUSH_GRACE)
        warm = warmup.warm_all(historian, w.plan.warm_sources(), start, settings.worker.warmup_daily_bars,
                               settings.worker.warmup_hourly_bars, progress=False, adjust=w.st.roll.adjust)
        for sym, sw in warm.items():
            w.feed_router.seed_day(sym, sw.day_resampler)
        w.feed_router.adjust_rolls(w.st.roll.adjust, historian, {s: x.contract for s, x in warm.items()})
        w.feed_router.warmup({s: x.hours for s, x in warm.items()}, {s: x.days for s, x in warm.items()})
        w.feed_router.go_live(bt.feed.DataBase.LIVE)  # history before `start` is warmup; from here on it trades
        w.cerebro = w._build_cerebro()
        w.thread = threading.Thread(target=_cerebro_target(w), name=f"backtest.{w.name}", daemon=True)
        w.thread.start()
    for w in workers:
        w.bus.wait_idle(w.thread)  # warmup consumed (its signals only moved the strategies' own books)

    steps = 0
    days = cme_time.trading_days(cme_time.trading_day(start), cme_time.trading_day(end - timedelta(microseconds=1)))
    day_index = {d: i for i, d in enumerate(days)}
    day_close: datetime | None = None  # close of the trading day being run: the next day starts at/after it
    span = bt_data.SPAN[resolution]
    minute = timedelta(minutes=1)
    boundary = start  # next minute boundary to run quiet-market closes at
    try:
        for t, group_iter in itertools.groupby(bt_data.merged(bars, prev_bars), key=lambda sb: sb.bar.start):
            group = list(group_iter)
            if progress is not None and (day_close is None or t >= day_close):
                day = cme_time.trading_day(t)
                day_close = cme_time.session_bounds(day)[1]
                progress(day_index.get(day, 0), len(days), day)
            # Live, the hub's notice "minute b-1 is over" makes every worker close what is
            # due at b (FeedRouter.minute_closed), in turn order, before minute b's bars.
            while boundary < t:
                clock.now = boundary
                for w in workers:
                    if w.feed_router.flush(boundary, "live", boundary):
                        w.bus.wait_idle(w.thread)
                boundary += minute
            boundary = max(boundary, t) + minute
            for w in workers:
                clock.now = t
                if w.feed_router.flush(t, "live", t):
                    w.bus.wait_idle(w.thread)
                clock.now = t + span
                for sb in group:
                    if sb.prev:
                        if sb.symbol in w.plan.traded:  # as the hub's prev channel: positions only
                            w.rolls.on_prev_bar(sb)
                    elif sb.symbol in w.sources:
                        w.feed_router.minute(sb.symbol, sb.bar, "live", sb.contract)
                w.bus.wait_idle(w.thread)
            steps += 1
        clock.now = min(end + FLUSH_GRACE, data_now)
        for w in workers:
            w.feed_router.flush(clock.now)
            w.bus.wait_idle(w.thread)
        if progress is not None and days:
            progress(len(days), len(days), days[-1])
    finally:
        for w in workers:
            w.bus.stop()
        for w in workers:
            if w.thread is not None:
                w.thread.join(30)
    for w in workers:
        if w.bus.failed is not None:
            raise RuntimeError(f"strategy {w.name} crashed: {w.bus.failed!r}") from w.bus.failed
        w.router.close()

    from multialpha.keys import Keys
    from multialpha.portfolio.gate import Gate

    keys = Keys(settings.redis.namespace)
    journal = [dict(f, id=i) for i, f in client.xrange(keys.orders())]
    gate = Gate(settings, client)
    day_realized = {}
    for k in client.scan_iter(keys.portfolio("day", "*")):
        day_realized[k.rsplit(":", 1)[-1]] = float(client.hget(k, "realized") or 0.0)
    return BacktestRun(
        settings=settings, strategies=list(strategies), start=start, end=end, resolution=resolution,
        journal=journal, decisions=[d for w in workers for d in w.decisions],
        counters={w.name: dict(w.counters) for w in workers}, bars=bars, day_realized=day_realized,
        open_positions=gate.positions(), steps=steps, prev_bars=prev_bars,
    )


def _cerebro_target(w: BacktestWorker) -> Callable[[], None]:
    def target() -> None:
        try:
            w.cerebro.run()
        except BaseException as e:  # surfaced by the conductor
            log.exception("strategy %s crashed", w.name)
            w.bus.failed = e
            with w.bus.cond:
                w.bus.cond.notify_all()

    return target
