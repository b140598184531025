"""FeedRouter across a roll during a run (live and backtest share it): hour/day bars of the new
front continue in the anchor's level, the minute feed and every item's price for orders stay raw.
Deterministic: no threads, no clock; the gap comes from a Historian on a hand-made source."""

from __future__ import annotations

from datetime import timedelta

import pytest

from multialpha import cme_time
from multialpha.worker import warmup
from multialpha.worker.cache import BarCache
from multialpha.worker.feeds import FeedBus, Item
from multialpha.worker.plan import FeedPlan, FeedSpec
from multialpha.worker.routing import FeedRouter, minute_ohlcv
from tests.worker.test_adjust import BASE, ROLL, breakout_entries, level_fetch, wiggle


def items(bus: FeedBus, name: str) -> list[Item]:
    return [it for _, batch in bus.staged if isinstance(batch, list) for n, it in batch if n == name]


@pytest.mark.parametrize("mode", ["difference", "none"])
def test_a_breakout_channel_spanning_a_live_roll_does_not_fire_on_the_gap(tmp_path, mode):
    feeds = [FeedSpec("ES", "ES", "minute"), FeedSpec("ES_hour", "ES", "hour"), FeedSpec("ES_day", "ES", "day")]
    routes = {("ES", "minute"): ["ES"], ("ES", "hour"): ["ES_hour"], ("ES", "day"): ["ES_day"]}
    bus = FeedBus()
    router = FeedRouter(FeedPlan("t", ["ES"], feeds, routes), bus)
    calls: list[list[str]] = []
    historian = warmup.Historian(BarCache(tmp_path), level_fetch(calls), "GLBX.MDP3")
    router.adjust_rolls(mode, historian, {"ES": "ESZ5"})  # as after a warmup that ended before the roll

    roll_at = cme_time.from_ns(warmup.day_start_ns(ROLL))
    t = roll_at - timedelta(hours=30)
    end = cme_time.session_bounds(ROLL)[1]  # the roll day's close
    while t < end:  # one minute per hour: each closes the previous hour
        contract = "ESH6" if t >= roll_at else "ESZ5"
        c = BASE[contract] + wiggle(cme_time.to_ns(t))
        router.minute("ES", minute_ohlcv(t, c, c + 1, c - 1, c, 5), "live", contract)
        t += timedelta(hours=1)
    router.flush(end + timedelta(hours=1))

    hours = items(bus, "ES_hour")
    assert len(hours) == 54
    old = [it for it in hours if it.bar.start < roll_at]
    new = [it for it in hours if it.bar.start >= roll_at]
    raw_new = [BASE["ESH6"] + wiggle(cme_time.to_ns(it.bar.start)) for it in new]
    # The old contract (the anchor) is raw; orders on the new one are priced at its raw close.
    assert all(it.raw_close is None and it.bar.close == BASE["ESZ5"] + wiggle(cme_time.to_ns(it.bar.start))
               for it in old)
    assert [it.bar.close for it in items(bus, "ES") if it.bar.start >= roll_at] == raw_new  # minute feed raw
    entries = breakout_entries([it.bar for it in hours])
    if mode == "none":  # the test can fail: raw, the 40-point gap is a breakout
        assert [it.bar.close for it in new] == raw_new and entries and entries[0].startswith("long")
        assert historian.requests == 0  # nothing to adjust, nothing asked
    else:
        assert entries == []
        assert [it.raw_close for it in new] == raw_new
        # Minute items (raw) carry their contract's level: a minute close compares with the hours.
        minutes = items(bus, "ES")
        assert all(it.level is None for it in minutes if it.bar.start < roll_at)
        assert [it.level(it.bar.close) for it in minutes if it.bar.start >= roll_at] == [c - 40.0 for c in raw_new]
        assert [it.bar.close for it in new] == [c - 40.0 for c in raw_new]  # the anchor's level
        assert historian.requests == 1 and sorted(calls[0]) == ["ESH6", "ESZ5"]  # the gap's hours, once
        # The roll day's daily bar is in the anchor's level too; the day before it is raw.
        days = items(bus, "ES_day")
        assert [cme_time.trading_day(d.bar.start) for d in days[-2:]] == [ROLL - timedelta(days=1), ROLL]
        assert days[-2].raw_close is None and days[-2].bar.close == old[-1].bar.close
        assert days[-1].bar.high == max(it.bar.high for it in new) and days[-1].raw_close == raw_new[-1]
