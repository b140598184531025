"""MultiAlphaStrategy without a runtime (the backtest shape): signals only move its own book."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import backtrader as bt

from multialpha.worker.adjust import Level
from multialpha.worker.feeds import FeedBus, Item, RedisLiveData
from multialpha.worker.resample import OHLCV
from multialpha.worker.strategy import MultiAlphaStrategy

UTC = timezone.utc


class Flip(MultiAlphaStrategy):
    params = (("log", None),)

    def next(self) -> None:
        d = self.feed("ES")
        if self.position_of(d) is None:
            ok = self.enter(d, "short", "test")
        else:
            ok = self.exit(d, "test")
        pos = self.position_of("ES")
        self.p.log.append((self.bar_time(d), ok, pos and (pos.side, pos.quantity, pos.entry_price, pos.real)))


def test_book_moves_without_runtime_and_bars_are_stamped_at_close():
    bus = FeedBus()
    t0 = datetime(2025, 12, 3, 15, 0, tzinfo=UTC)
    bars = [OHLCV(t0 + timedelta(minutes=i), t0 + timedelta(minutes=i + 1), 10 + i, 11 + i, 9 + i, 10.5 + i, 5) for i in range(3)]
    cerebro = bt.Cerebro(runonce=False, preload=False, stdstats=False)
    cerebro.adddata(RedisLiveData(bus=bus, feed_name="ES", symbol="ES", span="minute", qcheck=0.0), name="ES")
    bus.put_many([("ES", Item(b, "live")) for b in bars])
    bus.stop()  # deliver what is queued, then end: a finite run
    log: list = []
    cerebro.addstrategy(Flip, log=log, symbols=("ES",), quantities={"ES": 2})
    cerebro.run()
    assert log == [
        (t0 + timedelta(minutes=1), True, ("short", 2, 10.5, False)),
        (t0 + timedelta(minutes=2), True, None),
        (t0 + timedelta(minutes=3), True, ("short", 2, 12.5, False)),
    ]


def test_a_roll_adjusted_bar_is_traded_at_its_raw_close():
    """Hour/day bars after a roll are in the anchor's level (worker/adjust.py); the book (and so the
    order) takes the raw close each such item carries, never the adjusted one."""
    bus = FeedBus()
    t0 = datetime(2025, 12, 11, 0, 0, tzinfo=UTC)
    adjusted = [OHLCV(t0 + timedelta(hours=i), t0 + timedelta(hours=i + 1), 10 + i, 11 + i, 9 + i, 10.5 + i, 5)
                for i in range(3)]
    raws = [None, 50.5 + 1, 50.5 + 2]  # the first is the anchor contract's own (raw) bar
    cerebro = bt.Cerebro(runonce=False, preload=False, stdstats=False)
    cerebro.adddata(RedisLiveData(bus=bus, feed_name="ES", symbol="ES", span="minute", qcheck=0.0), name="ES")
    for b, raw in zip(adjusted, raws):
        bus.put_many([("ES", Item(b, "live", raw_close=raw))])
    bus.stop()
    log: list = []
    cerebro.addstrategy(Flip, log=log, symbols=("ES",), quantities={"ES": 1})
    cerebro.run()
    assert [entry[2] for entry in log] == [("short", 1, 10.5, False), None, ("short", 1, 52.5, False)]


class Levels(MultiAlphaStrategy):
    params = (("log", None),)

    def next(self) -> None:
        self.p.log.append(self.adjusted_close(self.feed("ES")))


def test_adjusted_close_brings_a_minute_close_into_the_hour_series_level():
    bus = FeedBus()
    t0 = datetime(2025, 12, 11, 0, 0, tzinfo=UTC)
    bars = [OHLCV(t0 + timedelta(minutes=i), t0 + timedelta(minutes=i + 1), 6100, 6101, 6099, 6100.5 + i, 5)
            for i in range(2)]
    cerebro = bt.Cerebro(runonce=False, preload=False, stdstats=False)
    cerebro.adddata(RedisLiveData(bus=bus, feed_name="ES", symbol="ES", span="minute", qcheck=0.0), name="ES")
    bus.put_many([("ES", Item(bars[0], "live"))])  # the anchor contract: its own level
    bus.put_many([("ES", Item(bars[1], "live", level=Level(1.0, -68.5)))])  # after a roll during the run
    bus.stop()
    log: list = []
    cerebro.addstrategy(Levels, log=log, symbols=("ES",))
    cerebro.run()
    assert log == [6100.5, 6101.5 - 68.5]
