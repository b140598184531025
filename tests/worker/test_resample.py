"""The session-aware resampler: clock hours, CME trading days, DST, quiet closes, late bars."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from multialpha.worker.resample import OHLCV, Resampler, bucket, resample

UTC = timezone.utc
M = timedelta(minutes=1)
H = timedelta(hours=1)


def minute(start: datetime, price: float, volume: float = 1) -> OHLCV:
    return OHLCV(start, start + M, price, price + 1, price - 1, price, volume)


def test_hour_closes_on_its_last_minute():
    r = Resampler("hour")
    t = datetime(2025, 12, 3, 14, 58, tzinfo=UTC)
    assert r.add(minute(t, 10)) == []
    (h,) = r.add(minute(t + M, 12, 2))
    assert (h.start, h.end) == (datetime(2025, 12, 3, 14, tzinfo=UTC), datetime(2025, 12, 3, 15, tzinfo=UTC))
    assert (h.open, h.high, h.low, h.close, h.volume) == (10, 13, 9, 12, 3)
    assert r.current is None


def test_gap_closes_the_previous_hour_before_opening_the_next():
    r = Resampler("hour")
    t = datetime(2025, 12, 3, 14, 10, tzinfo=UTC)
    r.add(minute(t, 10))
    (h,) = r.add(minute(t + 2 * H, 20))
    assert h.end == datetime(2025, 12, 3, 15, tzinfo=UTC) and h.close == 10
    assert r.current.start == datetime(2025, 12, 3, 16, tzinfo=UTC)


def test_quiet_flush_and_late_bar():
    r = Resampler("hour")
    t = datetime(2025, 12, 3, 14, 10, tzinfo=UTC)
    r.add(minute(t, 10))
    assert r.flush(datetime(2025, 12, 3, 14, 59, tzinfo=UTC)) == []
    (h,) = r.flush(datetime(2025, 12, 3, 15, 0, tzinfo=UTC))
    assert h.end == datetime(2025, 12, 3, 15, tzinfo=UTC)
    r.add(minute(t + H, 11))
    assert r.add(minute(t, 9)) == [] and r.late == 1


def test_trading_day_buckets_across_the_session_and_dst():
    # CST: 3 Dec 2025's day runs 2 Dec 23:00Z .. 3 Dec 22:00Z.
    s, e = bucket("day", datetime(2025, 12, 2, 23, 0, tzinfo=UTC))
    assert (s, e) == (datetime(2025, 12, 2, 23, tzinfo=UTC), datetime(2025, 12, 3, 22, tzinfo=UTC))
    assert bucket("day", datetime(2025, 12, 2, 21, 59, tzinfo=UTC))[1] == datetime(2025, 12, 2, 22, tzinfo=UTC)
    # CDT Friday 31 Oct closes 21:00Z; the Sunday 2 Nov 23:00Z (CST) open belongs to Monday 3 Nov.
    assert bucket("day", datetime(2025, 10, 31, 20, 59, tzinfo=UTC))[1] == datetime(2025, 10, 31, 21, tzinfo=UTC)
    s, e = bucket("day", datetime(2025, 11, 2, 23, 0, tzinfo=UTC))
    assert (s, e) == (datetime(2025, 11, 2, 23, tzinfo=UTC), datetime(2025, 11, 3, 22, tzinfo=UTC))
    # CDT Sunday open is 22:00Z (spring forward 9 Mar 2025).
    assert bucket("day", datetime(2025, 3, 9, 22, 0, tzinfo=UTC))[0] == datetime(2025, 3, 9, 22, tzinfo=UTC)


def test_days_from_hours_equal_days_from_minutes():
    """The warmup path (hours -> days) and the live path (minutes -> days) agree."""
    start = datetime(2025, 10, 30, 22, 0, tzinfo=UTC)  # a CDT session, across the DST weekend
    minutes = []
    t, price = start, 100.0
    while t < datetime(2025, 11, 4, 23, 0, tzinfo=UTC):
        if (t.minute * 7 + t.hour) % 5 and _open(t):  # quiet minutes included
            price += ((t.minute % 7) - 3) * 0.25
            minutes.append(minute(t, price, 1 + t.minute % 3))
        t += M
    hours = resample(minutes, "hour")
    by_hours = resample(hours, "day")
    by_minutes = resample(minutes, "day")
    assert by_hours == by_minutes
    assert [d.end.isoformat() for d in by_minutes] == [
        "2025-10-31T21:00:00+00:00", "2025-11-03T22:00:00+00:00", "2025-11-04T22:00:00+00:00",
    ]


def _open(t: datetime) -> bool:
    from multialpha import cme_time

    return cme_time.is_open(t)
