"""The session's last minute reaches the daily bar however late the hub is (FeedRouter).

Quiet-market closes normally run on the hub's minute-close notices; without notices
(``worker.notice_stale_s``) they fall back to the worker's clock, which must never close a
bucket whose last minute the hub may still publish. Deterministic: no threads, no clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from multialpha.worker.feeds import FeedBus, Item
from multialpha.worker.plan import FeedPlan, FeedSpec
from multialpha.worker.routing import FeedRouter, minute_ohlcv

UTC = timezone.utc
CLOSE = datetime(2025, 12, 3, 22, 0, tzinfo=UTC)  # Wed 16:00 CT: the trading day's end


def rig(symbols: list[str]) -> tuple[FeedRouter, FeedBus]:
    feeds = [FeedSpec(s, s, "minute") for s in symbols] + [FeedSpec(f"{s}_day", s, "day") for s in symbols]
    routes = {(s, "minute"): [s] for s in symbols} | {(s, "day"): [f"{s}_day"] for s in symbols}
    bus = FeedBus()
    return FeedRouter(FeedPlan("t", symbols, feeds, routes), bus), bus


def days(bus: FeedBus, name: str) -> list[Item]:
    return [it for _, batch in bus.staged if isinstance(batch, list) for n, it in batch if n == name]


def bar(start: datetime, close: float, volume: int = 10):
    return minute_ohlcv(start, close, close + 1, close - 1, close, volume)


def test_clock_fallback_waits_for_the_last_minute_of_a_lagging_hub():
    router, bus = rig(["ES"])
    router.minute("ES", bar(CLOSE - timedelta(minutes=2), 6000), "live")  # 21:58
    # No notice for notice_stale_s and the hub > 89 s behind: the clock is at 22:05, the
    # 21:59 bar is not out yet. The clock alone used to close the day here (close + 90 s).
    for late in (timedelta(seconds=91), timedelta(minutes=5), timedelta(hours=1)):
        assert router.flush_by_clock(CLOSE + late) == 0
    assert days(bus, "ES_day") == []
    router.minute("ES", bar(CLOSE - timedelta(minutes=1), 6010, 20), "live")  # 21:59, late
    (day,) = days(bus, "ES_day")
    assert day.bar.end == CLOSE and day.bar.close == 6010 and day.bar.volume == 30
    router.flush_by_clock(CLOSE + timedelta(hours=2))
    assert len(days(bus, "ES_day")) == 1  # and no second, one-minute day bar


def test_clock_fallback_closes_a_quiet_bucket_once_the_hub_is_past_it():
    """ES quiet at the close: NQ's first bar of the next session proves 21:59 is out (the hub
    publishes by minute), so the clock may close ES's day; before that bar it may not."""
    router, bus = rig(["ES", "NQ"])
    router.minute("ES", bar(CLOSE - timedelta(minutes=30), 6000), "live")
    router.minute("NQ", bar(CLOSE - timedelta(minutes=1), 21000), "live")  # closes NQ's day itself
    assert router.flush_by_clock(CLOSE + timedelta(minutes=50)) == 0 and days(bus, "ES_day") == []
    router.minute("NQ", bar(CLOSE + timedelta(hours=1), 21010), "live")  # 23:00, next session
    assert router.flush_by_clock(CLOSE + timedelta(hours=1, minutes=2)) == 1
    (day,) = days(bus, "ES_day")
    assert day.bar.end == CLOSE and day.bar.close == 6000


def test_notices_still_close_quiet_buckets_without_bars():
    """The notice path is unchanged: the hub's clock, bars or not."""
    router, bus = rig(["ES"])
    router.minute("ES", bar(CLOSE - timedelta(minutes=30), 6000), "live")
    router.minute_closed(CLOSE)  # "22:00 is over": due at 22:01, grace to 22:01:30
    assert days(bus, "ES_day") == []
    router.minute_closed(CLOSE + timedelta(minutes=1))
    assert [d.bar.end for d in days(bus, "ES_day")] == [CLOSE]
