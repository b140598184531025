"""Backtrader live feeds fed from outside Cerebro through one :class:`FeedBus`.

Every feed (minute, hour, day, reference) is a ``bt.feed.DataBase`` whose
``_load`` pops from its own deque. The live loop (worker/loop.py) waits once
per pass on the bus, for at most ``qcheck``, and only while *nothing at all*
is pending: in a worker it reads the market data itself through the bus's
``feeder`` (the subscriber's pump), elsewhere it waits on the one condition
variable all feeds share. Either way a bar for any feed wakes the loop at
once — no busy loop, no per-feed ``qcheck`` stall. The loop then asks only
the feeds :meth:`FeedBus.wait` names. (Backtrader's stock loop, which asks
every feed, also works with these feeds: the first feed asked does the wait.)

Bars are stamped at their **close** in naive UTC (``start + span``), per
FIELD_NOTES. Items also carry their phase (``warmup``, ``replay``, ``live``)
so the strategy base class knows whether a signal may trade; LIVE/DELAYED
status changes travel through the same deques, in order with the bars.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

import backtrader as bt

from multialpha import cme_time
from multialpha.worker.resample import OHLCV

SPANS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
_TF = {
    "minute": (bt.TimeFrame.Minutes, 1),
    "hour": (bt.TimeFrame.Minutes, 60),
    "day": (bt.TimeFrame.Days, 1),
}


@dataclass(frozen=True, slots=True)
class Status:
    """A LIVE/DELAYED notification queued in order with the bars."""

    status: int


@dataclass(frozen=True, slots=True)
class Item:
    bar: OHLCV
    phase: str  # warmup | replay | live
    contract: str = ""
    recv_ns: int = 0  # perf counter when the worker received it (latency stats)
    raw_close: float | None = None  # the raw close of a roll-adjusted hour/day bar (worker/adjust.py)
    level: Any = None  # a minute bar's adjust.Level into its hour/day series' level (None: the same level)


@dataclass(frozen=True, slots=True)
class Marker:
    """Not a bar: reached once every batch staged before it was consumed (a minute's close)."""

    minute: datetime


@dataclass(frozen=True, slots=True)
class Call:
    """Not a bar: ``fn`` runs in Cerebro's thread once every batch staged before it was consumed.

    The previous front's bars after a roll (worker/rolls.py) travel this way: they act on
    positions in order with the minute's other bars, but never step the strategy."""

    fn: Callable[[], None]


class FeedBus:
    """Per-feed deques plus one shared wake-up; thread-safe producer side.

    Producers stage *batches* (one timestamp's worth: a minute bar and the
    hour/day bars it closed). A batch is released into the feed deques only
    at the start of a Cerebro step, so one step sees one batch and feeds are
    not loaded ahead and rewound (that made a 3,500-bar warmup twice as slow).
    A batch may carry its *turn* (the minute it belongs to, see
    worker/turns.py), readable as :attr:`turn` during its step. A
    :class:`Marker` is staged like a batch; ``on_marker`` runs (in Cerebro's
    thread) once everything before it has been consumed.
    """

    def __init__(self, on_marker: Callable[[datetime], None] | None = None,
                 feeder: Callable[[float], None] | None = None) -> None:
        # One lock; hot paths take it directly (a Condition's with-statement is Python-level code).
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        # Called (in Cerebro's thread, lock released) instead of waiting when nothing is
        # pending: it may stage batches; it returns within its timeout argument.
        self.feeder = feeder
        self.queues: dict[str, collections.deque[Item | Status]] = {}
        self.staged: collections.deque[tuple[datetime | None, list[tuple[str, Item | Status]] | Marker | Call]] = \
            collections.deque()
        self.pending = 0  # items released into the deques, not yet taken
        self.stopping = False
        self.hot = False  # a bar was handed to Cerebro in the current step
        self.turn: datetime | None = None  # turn of the batch in the current step
        self.on_marker = on_marker or (lambda minute: None)
        self._reached: list[datetime | Call] = []  # markers and calls reached, not yet run
        self.calling = 0  # reached markers/calls being run (outside the lock): not idle yet
        self.asks_known = False  # the loop asks only feeds :meth:`wait` named (BusCerebro), never idle ones

    def register(self, name: str) -> collections.deque[Item | Status]:
        return self.queues.setdefault(name, collections.deque())

    def put_many(self, items: list[tuple[str, Item | Status]], turn: datetime | None = None) -> None:
        """Stage one batch (delivered together, in order after earlier batches)."""
        if not items:
            return
        with self.lock:
            self.staged.append((turn, items))
            if self.feeder is None:  # with a feeder nobody waits on the condition: Cerebro's thread pumps
                self.cond.notify_all()

    def put_marker(self, minute: datetime) -> None:
        with self.lock:
            self.staged.append((None, Marker(minute)))
            if self.feeder is None:
                self.cond.notify_all()

    def put_call(self, fn: Callable[[], None]) -> None:
        with self.lock:
            self.staged.append((None, Call(fn)))
            if self.feeder is None:
                self.cond.notify_all()

    def _run_reached(self, reached: list[datetime | Call]) -> None:
        """Outside the lock (they may talk to Redis); ``calling`` keeps the bus busy meanwhile."""
        try:
            for r in reached:
                if isinstance(r, Call):
                    r.fn()
                else:
                    self.on_marker(r)
        finally:
            with self.lock:
                self.calling -= 1
                self.cond.notify_all()

    def _take_reached(self) -> list[datetime | Call]:
        """(Lock held.)"""
        reached, self._reached = self._reached, []
        if reached:
            self.calling += 1
        return reached

    def _release(self) -> None:
        while self.pending == 0 and not self.hot and self.staged:
            turn, batch = self.staged.popleft()
            if isinstance(batch, Marker):
                self._reached.append(batch.minute)
                continue
            if isinstance(batch, Call):
                self._reached.append(batch)
                continue
            for name, item in batch:
                self.queues[name].append(item)
            self.pending += len(batch)
            self.turn = turn
            return

    def stop(self, drop_backlog: bool = False) -> None:
        """Feeds deliver what is queued (or, with ``drop_backlog``, only what is in hand), then end."""
        with self.cond:
            if drop_backlog:
                self.staged.clear()
                for q in self.queues.values():
                    q.clear()
                self.pending = 0
            self.stopping = True
            self.cond.notify_all()

    def backlog(self) -> int:
        return self.pending + sum(len(b) for _, b in self.staged if not isinstance(b, (Marker, Call)))

    def step_done(self) -> None:
        """Cerebro finished a step (Strategy.next ran): the next ask may release/wait again."""
        self.hot = False

    def take(self, name: str, timeout: float) -> Item | Status | None | bool:
        """Next item for ``name``; None = nothing yet; False = stopped and drained.

        Only waits while nothing is pending *and* nothing was delivered in the
        current Cerebro step: once one feed has a bar, the other feeds of the
        same pass (and Cerebro's retries) must answer at once, or the bar in
        hand would sit until the next one arrives.
        """
        return self._poll(name, timeout, True)

    def ready(self, name: str, timeout: float) -> bool | None:
        """Like :meth:`take` without taking: True when ``name`` has an item waiting."""
        return self._poll(name, timeout, False)  # type: ignore[return-value]

    def wait(self, timeout: float) -> list[str] | bool:
        """The live loop's one wait per pass (worker/loop.py): the feeds holding an item now.

        Releases the next batch, waiting (or pumping) up to ``timeout`` when
        nothing at all is pending; [] = nothing came in time; False = stopped
        and drained.
        """
        with self.lock:
            self._fill(timeout, None)
            reached = self._take_reached()
            if self.pending:
                out: list[str] | bool = [name for name, q in self.queues.items() if q]
            elif self.stopping and not self.staged:
                out = False
            else:
                out = []
        if reached:
            self._run_reached(reached)
        return out

    def _fill(self, timeout: float, q: collections.deque[Item | Status] | None) -> None:
        """(Lock held.) Release the next batch; first wait or pump for one if nothing at all is pending."""
        self._release()
        if ((q is None or not q) and self.pending == 0 and not self.staged and not self.stopping and not self.hot
                and timeout > 0 and not self._reached):
            if self.feeder is None:
                self.cond.wait(timeout)
            else:
                self.cond.release()
                try:
                    self.feeder(timeout)
                finally:
                    self.cond.acquire()
            self._release()

    def _poll(self, name: str, timeout: float, pop: bool) -> Item | Status | None | bool:
        q = self.queues[name]
        with self.lock:
            self._fill(timeout, q)
            reached = self._take_reached()
            if q:
                if pop:
                    self.pending -= 1
                    item = q.popleft()
                    if isinstance(item, Item):
                        self.hot = True
                    out: Item | Status | None | bool = item
                else:
                    out = True
            elif self.stopping and self.pending == 0 and not self.staged:
                out = False
            else:
                out = None
        if reached:
            self._run_reached(reached)
        return out


class BusData(bt.feed.DataBase):
    """A live feed of already-built bars (the base of the feeds below)."""

    params = (("bus", None), ("feed_name", ""), ("symbol", ""), ("span", "minute"), ("qcheck", 0.5))

    def __init__(self) -> None:
        tf, comp = _TF[self.p.span]
        self._timeframe = tf
        self._compression = comp
        self.bus: FeedBus = self.p.bus
        self.bus.register(self.p.feed_name)
        self.phase = "warmup"  # phase of the bar most recently loaded
        self.contract = ""
        self.bar_start: datetime | None = None  # aware UTC start of the latest bar
        self.recv_ns = 0
        self.raw_close: float | None = None  # latest bar's raw close if it was roll-adjusted, else None
        self.level: Any = None  # latest (minute) bar's adjust.Level into the hour/day series, None: same
        self.loaded = 0
        self._ma_bufs: tuple[Any, ...] | None = None  # the line buffers _load writes, looked up once
        self._ma_tick: tuple[float, ...] = ()  # the loaded bar in Backtrader's line order (close first)
        self._ma_plain = False  # set at start: Backtrader's load() reduces to forward + _load

    def islive(self) -> bool:
        return True

    def haslivedata(self) -> bool:
        return bool(self.bus.queues[self.p.feed_name])

    def start(self) -> None:
        super().start()
        self.put_notification(self.DELAYED)

    def _start_finish(self) -> None:
        super()._start_finish()
        # Nothing of Backtrader's load() beyond forward + _load applies: no filters (no bar
        # stack), no input timezone, no from/to dates. A subclass adding one gets Backtrader's.
        self._ma_plain = (not self._filters and self._tzinput is None
                          and self.fromdate == float("-inf") and self.todate == float("inf"))

    def load(self) -> bool | None:
        if self.bus.asks_known and self._ma_plain and not self._barstack and not self._barstash:
            # Asked by BusCerebro, so an item is waiting: Backtrader's load() reduces to this.
            self.forward()
            got = self._load()
            if not got:  # a status only: as Backtrader's, None = nothing yet, False = the end
                self.backwards(force=True)
            return got
        if not self._barstack and not self._barstash:
            # Backtrader's own loop asks every feed on every pass, and its load() moves all
            # lines forward and back again when nothing comes: ask the bus first.
            ready = self.bus.ready(self.p.feed_name, self._qcheck)
            if ready is not True:
                return ready
        return super().load()

    def _tick_fill(self, force: bool = False) -> None:
        # Backtrader's: "the bar is the tick". It builds and looks up seven attribute names per
        # call; this sets the same attributes from the bar _load wrote. That is always the bar in
        # hand when Backtrader asks: a feed rewound by the loop delivers that same bar later,
        # without loading another. (With filters a bar may come from the stack: Backtrader's.)
        if not self._ma_plain or not self._ma_tick:
            super()._tick_fill(force)
        elif force or getattr(self, "tick_close", None) is None:
            (self.tick_close, self.tick_low, self.tick_high, self.tick_open, self.tick_volume,
             self.tick_openinterest) = self._ma_tick
            self.tick_last = self.tick_close

    def _load(self) -> bool | None:
        while True:
            item = self.bus.take(self.p.feed_name, self._qcheck)
            if item is None or item is False:
                return item
            if isinstance(item, Status):
                self.put_notification(item.status)
                continue
            bar = item.bar
            bufs = self._ma_bufs
            if bufs is None:
                ln = self.lines
                bufs = self._ma_bufs = (ln.datetime, ln.open, ln.high, ln.low, ln.close, ln.volume, ln.openinterest)
            dt, op, hi, lo, cl, vol, oi = bufs
            dt[0] = bt.date2num(cme_time.bt_close_stamp(bar.end, timedelta(0)))
            op[0] = bar.open
            hi[0] = bar.high
            lo[0] = bar.low
            cl[0] = bar.close
            vol[0] = bar.volume
            oi[0] = 0.0
            self._ma_tick = (  # as the lines hold them (doubles), in their order
                float(bar.close), float(bar.low), float(bar.high), float(bar.open), float(bar.volume), 0.0)
            self.phase = item.phase
            self.contract = item.contract or self.contract
            self.bar_start = bar.start
            self.recv_ns = item.recv_ns
            self.raw_close = item.raw_close
            self.level = item.level
            self.loaded += 1
            return True


class RedisLiveData(BusData):
    """The live 1-minute feed of one symbol (bars from ``market:{SYMBOL}:1min``)."""


class RedisResampledData(BusData):
    """Hourly or daily bars of one symbol, resampled outside Backtrader.

    ``neutral`` marks a reference feed with no data source: flat bars at the
    configured neutral level, so strategies can tell they are synthetic.
    """

    params = (("neutral", False),)
