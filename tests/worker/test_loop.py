"""BusCerebro steps exactly like Backtrader's own live loop, asking only the feeds that hold a bar."""

from __future__ import annotations

import collections
from datetime import datetime, timedelta, timezone
from typing import Any

import backtrader as bt
import pytest

from multialpha.worker.feeds import FeedBus, Item, RedisLiveData, RedisResampledData, Status
from multialpha.worker.loop import BusCerebro
from multialpha.worker.resample import OHLCV
from multialpha.worker.strategy import MultiAlphaStrategy

UTC = timezone.utc
T0 = datetime(2025, 12, 3, 14, 58, tzinfo=UTC)
FEEDS = [("ES", "minute"), ("NQ", "minute"), ("ES_hour", "hour"), ("NQ_hour", "hour"), ("ES_day", "day")]


class Recorder(MultiAlphaStrategy):
    """Per step: the strategy's time, next or prenext, and every feed's (length, close, tick values);
    plus data notifications in order."""

    def __init__(self) -> None:
        self.sma = bt.indicators.SMA(self.datas[0].close, period=2)  # ES needs 2 bars: prenext before
        self.steps: list[tuple[str, str, tuple[tuple[Any, ...], ...]]] = []
        self.notes: list[tuple[str, str, int]] = []  # (time of the last step, feed, status)

    def record(self, method: str) -> None:
        now = bt.num2date(self.datetime[0]).isoformat()
        ticks = ("close", "low", "high", "open", "volume", "openinterest", "last")
        self.steps.append((now, method, tuple(
            (len(d), d.close[0] if len(d) else None, *(getattr(d, f"tick_{t}", None) for t in ticks))
            for d in self.datas)))

    def next(self) -> None:
        self.record("next")

    def prenext(self) -> None:
        self.record("prenext")

    def notify_data(self, data: Any, status: int, *args: Any, **kwargs: Any) -> None:
        self.notes.append((self.steps[-1][0] if self.steps else "", data._name, status))
        super().notify_data(data, status, *args, **kwargs)


class PureBacktrader(Recorder):
    """The reference: Backtrader's own step bookkeeping too (MultiAlphaStrategy has faster ones)."""

    _clk_update = bt.Strategy._clk_update
    _getminperstatus = bt.Strategy._getminperstatus


def bar(start: datetime, span: timedelta, close: float) -> OHLCV:
    return OHLCV(start, start + span, close, close + 1, close - 1, close, 1)


def stage(bus: FeedBus) -> None:
    """Batches as the FeedRouter makes them, including the cases where feeds do not all move together."""
    m, h = timedelta(minutes=1), timedelta(hours=1)
    bus.put_many([(name, Status(bt.feed.DataBase.LIVE)) for name, _ in FEEDS])  # status only: no step
    bus.put_many([("ES", Item(bar(T0, m, 1.0), "live"))])
    bus.put_many([("NQ", Item(bar(T0, m, 2.0), "live"))])  # same minute, its own batch: its own step
    # 14:59 closes the 14:00 hour: both stamped 15:00, one step
    bus.put_many([("ES_hour", Item(bar(T0.replace(minute=0), h, 10.0), "live")),
                  ("ES", Item(bar(T0 + m, m, 3.0), "live"))])
    # a late hour close in the same batch as a later minute: the minute waits one step (rewound)
    bus.put_many([("NQ_hour", Item(bar(T0.replace(minute=0), h, 20.0), "live")),
                  ("NQ", Item(bar(T0 + 2 * m, m, 4.0), "live"))])
    # a quiet-market flush: two hours of one feed in one batch, sorted by end
    bus.put_many([("ES_hour", Item(bar(T0.replace(minute=0) + h, h, 11.0), "live")),
                  ("ES_hour", Item(bar(T0.replace(minute=0) + 2 * h, h, 12.0), "live"))])
    bus.put_many([("ES_day", Item(bar(datetime(2025, 12, 2, 23, tzinfo=UTC), timedelta(hours=23), 30.0), "live")),
                  ("ES", Item(bar(T0.replace(hour=22, minute=0), m, 5.0), "live"))])
    bus.put_many([("ES", Status(bt.feed.DataBase.DELAYED))])
    bus.stop()


def run(cerebro_class: type, asks: collections.Counter[str], strategy: type = Recorder) -> Recorder:
    pure = strategy is PureBacktrader  # the feeds' tick bookkeeping, Backtrader's own as well

    def counted(base: type) -> type:
        class Counted(base):  # type: ignore[valid-type,misc]
            def next(self, datamaster: Any = None, ticks: bool = True) -> Any:
                asks[self.p.feed_name] += 1
                return super().next(datamaster=datamaster, ticks=ticks)

            if pure:
                _tick_fill = bt.feed.AbstractDataBase._tick_fill

        return Counted

    Counted, CountedResampled = counted(RedisLiveData), counted(RedisResampledData)

    bus = FeedBus()
    cerebro = cerebro_class(runonce=False, preload=False, stdstats=False, live=True, exactbars=False)
    for name, span in FEEDS:
        klass = Counted if span == "minute" else CountedResampled
        cerebro.adddata(klass(bus=bus, feed_name=name, symbol=name.split("_")[0], span=span, qcheck=0.05), name=name)
    cerebro.addstrategy(strategy)
    stage(bus)
    return cerebro.run()[0]


def test_same_steps_as_backtraders_loop() -> None:
    """Our loop and clock update against Backtrader's own, on the same batches."""
    stock_asks: collections.Counter[str] = collections.Counter()
    bus_asks: collections.Counter[str] = collections.Counter()
    stock = run(bt.Cerebro, stock_asks, PureBacktrader)
    ours = run(BusCerebro, bus_asks)
    assert ours.steps == stock.steps
    assert ours.notes == stock.notes
    times = [t for t, _, _ in ours.steps]
    assert times == sorted(times) and len(times) == 9  # rewound minutes and the 2nd flushed hour: steps of their own
    assert ours.steps[3][0] == "2025-12-03T15:00:00" and ours.steps[4][0] == "2025-12-03T15:01:00"
    assert ours.steps[3][2][1][:2] == (1, 2.0)  # NQ minute held back while NQ_hour delivers 15:00
    assert ours.steps[4][2][1][:2] == (2, 4.0)
    assert ours.steps[-2][0] == "2025-12-03T22:00:00" and ours.steps[-1][2][0][:2] == (3, 5.0)  # day, then minute
    # ticks as Backtrader fills them (close, low, high, open, volume, openinterest, last), on a rewound feed too
    assert ours.steps[-1][2][0][2:] == (5.0, 4.0, 6.0, 5.0, 1.0, 0.0, 5.0)
    assert ours.steps[4][2][1][2:] == (4.0, 3.0, 5.0, 4.0, 1.0, 0.0, 4.0)
    # prenext until every feed has its minimum period (ES: 2 bars for the SMA; ES_day comes last)
    assert [m for _, m, _ in ours.steps] == ["prenext"] * 7 + ["next"] * 2
    assert ours.notes[-1] == ("2025-12-03T22:01:00", "ES", bt.feed.DataBase.DELAYED)
    # Backtrader asks every feed on every pass (twice when one feed has a bar); ours asks the holders:
    # 16 staged items + 2 rewound bars, give or take a status-only pass
    assert sum(bus_asks.values()) <= 20 and sum(bus_asks.values()) * 4 < sum(stock_asks.values())


def test_waits_on_the_bus_not_in_a_loop() -> None:
    """Nothing staged: one pass waits out qcheck on the bus (no spinning), then the stop ends the run."""
    import threading

    bus = FeedBus()
    passes: collections.Counter[str] = collections.Counter()
    real_wait = bus.wait

    def wait(timeout: float) -> Any:
        passes["wait"] += 1
        return real_wait(timeout)

    bus.wait = wait  # type: ignore[method-assign]
    cerebro = BusCerebro(runonce=False, preload=False, stdstats=False, live=True, exactbars=False)
    cerebro.adddata(RedisLiveData(bus=bus, feed_name="ES", symbol="ES", span="minute", qcheck=0.05), name="ES")
    cerebro.addstrategy(Recorder)
    stopper = threading.Timer(0.3, bus.stop)
    stopper.start()
    strat = cerebro.run()[0]
    stopper.join()
    assert strat.steps == []
    assert 2 <= passes["wait"] <= 12  # ~0.3 s / 0.05 s waits, not thousands of spins


@pytest.mark.parametrize("cerebro_class", [bt.Cerebro, BusCerebro])
def test_stop_mid_run_delivers_what_is_queued(cerebro_class: type) -> None:
    bus = FeedBus()
    cerebro = cerebro_class(runonce=False, preload=False, stdstats=False, live=True, exactbars=False)
    cerebro.adddata(RedisLiveData(bus=bus, feed_name="ES", symbol="ES", span="minute", qcheck=0.05), name="ES")
    cerebro.addstrategy(Recorder)
    for i in range(5):
        bus.put_many([("ES", Item(bar(T0 + timedelta(minutes=i), timedelta(minutes=1), float(i)), "live"))])
    bus.stop()
    strat = cerebro.run()[0]
    assert [feeds[0][1] for _, _, feeds in strat.steps] == [0.0, 1.0, 2.0, 3.0, 4.0]
