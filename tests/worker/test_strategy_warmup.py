"""Warmup reaches the rules: a strategy that implements only ``next()`` sees every warmup hour and day.

During warmup the minute feeds are empty, so Backtrader calls ``prenext()``
on every warmup step; ``MultiAlphaStrategy.prenext`` runs ``next()``. These
tests drive the worker's own FeedRouter -> FeedBus -> BusCerebro path (no
Redis) and count what the strategies' rules saw against what was delivered.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from multialpha.worker.feeds import FeedBus, RedisLiveData, RedisResampledData
from multialpha.worker.loop import BusCerebro
from multialpha.worker.plan import FeedPlan, FeedSpec
from multialpha.worker.resample import OHLCV
from multialpha.worker.routing import FeedRouter
from multialpha.worker.strategy import BookPosition, MultiAlphaStrategy, Outcome

UTC = timezone.utc
T = datetime(2025, 12, 3, 15, 0, tzinfo=UTC)  # first live minute
HOUR, MINUTE = timedelta(hours=1), timedelta(minutes=1)


def warmup_bars(n_hours: int = 120, seed: int = 3) -> tuple[list[OHLCV], list[OHLCV]]:
    """``n_hours`` consecutive hourly bars ending at T, and a daily bar every 24 of them."""
    rng = np.random.default_rng(seed)
    close = 5000 * np.exp(np.cumsum(rng.normal(0, 0.003, n_hours)))
    wick = np.abs(rng.normal(0, 0.002, (2, n_hours))) * close
    hours = [OHLCV(T - (n_hours - i) * HOUR, T - (n_hours - i - 1) * HOUR, float(close[i]),
                   float(close[i] + wick[0][i]), float(close[i] - wick[1][i]), float(close[i]), 10)
             for i in range(n_hours)]
    days = []
    for k in range(0, n_hours - 23, 24):
        chunk = hours[k:k + 24]
        days.append(OHLCV(chunk[0].start, chunk[-1].end, chunk[0].open, max(h.high for h in chunk),
                          min(h.low for h in chunk), chunk[-1].close, 240))
    return hours, days


def live_minutes(hours: int = 3, price: float = 5000.0) -> list[OHLCV]:
    return [OHLCV(T + i * MINUTE, T + (i + 1) * MINUTE, price, price + 1, price - 1, price, 1)
            for i in range(hours * 60 + 1)]  # the extra minute closes the last hour


def run(strategy: type, hours: list[OHLCV], days: list[OHLCV], minutes: list[OHLCV], runtime: Any = None,
        **params: Any) -> Any:
    """The worker's feed path: warmup hour/day batches, LIVE, minute bars; then the run ends."""
    feeds = [FeedSpec("ES", "ES", "minute"), FeedSpec("ES_hour", "ES", "hour"), FeedSpec("ES_day", "ES", "day")]
    plan = FeedPlan("t", ["ES"], feeds, routes={("ES", "minute"): ["ES"], ("ES", "hour"): ["ES_hour"],
                                                ("ES", "day"): ["ES_day"]})
    bus = FeedBus()
    router = FeedRouter(plan, bus)
    router.warmup({"ES": hours}, {"ES": days})
    router.go_live(bt.feed.DataBase.LIVE)
    for m in minutes:
        router.minute("ES", m, "live", "ESZ5")
    bus.stop()
    cerebro = BusCerebro(runonce=False, preload=False, stdstats=False, live=True, exactbars=False)
    for f in feeds:
        klass = RedisLiveData if f.span == "minute" else RedisResampledData
        cerebro.adddata(klass(bus=bus, feed_name=f.name, symbol=f.symbol, span=f.span, qcheck=0.0), name=f.name)
    cerebro.addstrategy(strategy, runtime=runtime, symbols=("ES",), quantities={"ES": 1}, **params)
    return cerebro.run()[0]


class NextOnly(MultiAlphaStrategy):
    """A plugin strategy as a plugin author writes it: next() only, guarded with ready()."""

    params = (("sma", 0),)

    def __init__(self) -> None:
        if self.p.sma:  # an indicator lengthens the hour feed's minimum period: more prenext steps
            self.ind = bt.indicators.SMA(self.feed("ES", "hour").close, period=self.p.sma)
        self.seen = {"hour": [], "day": [], "minute": 0}
        self.minute_empty_steps = 0

    def next(self) -> None:
        minute, hour, day = self.feed("ES"), self.feed("ES", "hour"), self.feed("ES", "day")
        if not self.ready(minute):
            self.minute_empty_steps += 1
        for name, d in (("hour", hour), ("day", day)):
            if len(d) > len(self.seen[name]):
                self.seen[name].append((self.bar_time(d), d.phase, float(d.close[0])))
        if self.ready(minute):
            self.seen["minute"] = len(minute)


@pytest.mark.parametrize("sma", [0, 30])
def test_next_only_strategy_sees_every_warmup_bar(sma: int) -> None:
    hours, days = warmup_bars()
    st = run(NextOnly, hours, days, live_minutes(), sma=sma)
    warm_hours = [h for h in st.seen["hour"] if h[1] == "warmup"]
    warm_days = [d for d in st.seen["day"] if d[1] == "warmup"]
    assert len(warm_hours) == len(hours) and len(warm_days) == len(days)
    assert [h[0] for h in warm_hours] == [h.end for h in hours]
    assert [h[2] for h in warm_hours] == [h.close for h in hours]
    assert [d[0] for d in warm_days] == [d.end for d in days]
    assert st.minute_empty_steps == len(hours)  # every warmup step ran next() with an empty minute feed
    assert len(st.seen["hour"]) == len(hours) + 3 and st.seen["minute"] == 3 * 60 + 1  # and live went on


def wilder_atr(hours: list[OHLCV], n: int) -> float:
    """The README's ATR, computed with pandas over the given hours (the plugin test's reference)."""
    df = pd.DataFrame({"high": [h.high for h in hours], "low": [h.low for h in hours],
                       "close": [h.close for h in hours]})
    prev = df["close"].shift(1)
    tr = pd.concat([df["high"], prev], axis=1).max(axis=1) - pd.concat([df["low"], prev], axis=1).min(axis=1)
    tr.iloc[0] = df["high"].iloc[0] - df["low"].iloc[0]
    seeded = tr.iloc[n - 1:].copy()
    seeded.iloc[0] = tr.iloc[:n].mean()
    return float(seeded.ewm(alpha=1 / n, adjust=False).mean().iloc[-1])


def test_breakout_rules_are_full_after_warmup() -> None:
    from multialpha_breakout.strategy import BreakoutStrategy

    hours, days = warmup_bars()
    st = run(BreakoutStrategy, hours, days, [])  # warmup only: the rules' state at the first live minute
    rules = st.rules["ES"]
    assert st.seen["ES"] == len(hours)
    assert list(rules.highs) == [h.high for h in hours[-20:]]  # the 20-hour channel is full
    assert rules.atr == pytest.approx(wilder_atr(hours, 14), rel=1e-12)


def test_ibs_rules_see_every_warmup_day_and_hour() -> None:
    from multialpha_ibs.rules import ibs
    from multialpha_ibs.strategy import IbsStrategy

    hours, days = warmup_bars()
    st = run(IbsStrategy, hours, days, [])
    assert st.seen["ES"] == [len(days), len(hours)]
    last = days[-1]
    assert st.rules["ES"].last_ibs == pytest.approx(ibs(last.high, last.low, last.close))


class RestoringRuntime:
    """The worker's rules in small: warmup signals simulated, the real book restored at the first live bar."""

    def __init__(self, held: BookPosition) -> None:
        self.held = held
        self.restored = False
        self.signals: list[tuple[str, str, str, bool]] = []  # (kind, side, phase, real)

    def on_signal(self, strategy: Any, kind: str, symbol: str, side: str, price: float, reason: str) -> Outcome:
        feed = strategy.feed(symbol)
        phase = feed.phase if len(feed) else "warmup"
        real = phase == "live" and (kind == "entry" or strategy.book[symbol].real)
        self.signals.append((kind, side, phase, real))
        return Outcome(True, real, "ok" if real else "simulated")

    def on_live(self, strategy: Any) -> None:
        pass

    def before_next(self, strategy: Any) -> None:
        feed = strategy.feed("ES")
        if not self.restored and len(feed) and feed.phase == "live":
            strategy.restore_book([self.held])
            self.restored = True

    def after_next(self, strategy: Any) -> None:
        pass


def test_breakout_restored_position_gets_a_real_atr_stop_from_warmup() -> None:
    from multialpha_breakout.strategy import BreakoutStrategy

    hours, days = warmup_bars()
    held = BookPosition("ES", "long", 1, 5000.0, T - 5 * HOUR, real=True)
    rt = RestoringRuntime(held)
    # Live minutes far above the warmup range: a zero stop distance would not matter, but a
    # flat price right at the entry would exit on a zero-distance stop (close <= best - 0).
    st = run(BreakoutStrategy, hours, days, live_minutes(3, price=held.entry_price), runtime=rt)
    rules = st.rules["ES"]
    assert rt.restored
    # Restored at the first live hour, before that hour reached the rules: the ATR of the warmup hours.
    assert rules.stop_dist == pytest.approx(2.0 * wilder_atr(hours, 14), rel=1e-12)
    assert rules.stop_dist > 0
    assert not any(s[2] == "live" and s[0] == "exit" and "trailing" in s[1] for s in rt.signals)
    assert all(not real for _, _, phase, real in rt.signals if phase == "warmup")  # nothing ordered in warmup


def test_breakout_restore_before_any_atr_waits_for_the_first_atr() -> None:
    from multialpha_breakout.rules import BreakoutRules, Params

    rules = BreakoutRules(Params(atr_period=3))
    rules.restore("long", 100.0)
    assert rules.stop_dist is None
    # Flat closes at the entry: with a zero stop each would exit; without a known ATR none does.
    assert rules.on_hour(101.0, 99.0, 100.0) is None and rules.on_hour(101.0, 99.0, 100.0) is None
    assert rules.on_hour(101.0, 99.0, 100.0) is None  # third hour: ATR = 2, stop = 100 - 4
    assert rules.stop_dist == pytest.approx(2.0 * 2.0)
    act = rules.on_hour(100.0, 95.0, 95.5)
    assert act is not None and act.kind == "exit" and "trailing stop" in act.reason
