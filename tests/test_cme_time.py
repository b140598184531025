"""The CME trading day and bar boundaries, across DST and weekends."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from multialpha import cme_time as t

UTC = t.UTC


def ct(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=t.CHICAGO)


@pytest.mark.parametrize(
    "instant,day",
    [
        (ct(2025, 11, 11, 16, 59), date(2025, 11, 12)),  # halt belongs to the next session
        (ct(2025, 11, 11, 17, 0), date(2025, 11, 12)),   # 17:00 CT opens the next trading day
        (ct(2025, 11, 11, 15, 59), date(2025, 11, 11)),
        (ct(2025, 11, 7, 17, 30), date(2025, 11, 10)),   # Friday evening -> Monday
        (ct(2025, 11, 9, 17, 0), date(2025, 11, 10)),    # Sunday open -> Monday
        (ct(2025, 11, 8, 12, 0), date(2025, 11, 10)),    # Saturday (closed) -> Monday
    ],
)
def test_trading_day(instant: datetime, day: date) -> None:
    assert t.trading_day(instant) == day
    assert t.trading_day(t.to_ns(instant.astimezone(UTC))) == day


def test_session_bounds_follow_dst() -> None:
    # US DST ended 2025-11-02: 17:00 CT is 22:00 UTC before, 23:00 UTC after.
    o, c = t.session_bounds(date(2025, 10, 31))
    assert (o.hour, c.hour) == (22, 21)
    o, c = t.session_bounds(date(2025, 11, 4))
    assert (o.hour, c.hour) == (23, 22)
    # Monday's session opens on Sunday, 23 hours long across the change.
    o, c = t.session_bounds(date(2025, 11, 3))
    assert o == datetime(2025, 11, 2, 23, 0, tzinfo=UTC) and c - o == timedelta(hours=23)
    with pytest.raises(ValueError):
        t.session_bounds(date(2025, 11, 8))


def test_is_open() -> None:
    assert t.is_open(ct(2025, 11, 11, 10, 0))
    assert not t.is_open(ct(2025, 11, 11, 16, 30))   # daily halt
    assert not t.is_open(ct(2025, 11, 8, 10, 0))     # Saturday
    assert t.is_open(ct(2025, 11, 9, 17, 1))         # Sunday evening open


def test_ns_round_trip_and_iso() -> None:
    dt = datetime(2025, 11, 9, 20, 0, tzinfo=UTC)
    ns = t.to_ns(dt)
    assert ns == 1_762_718_400 * t.NS
    assert t.from_ns(ns) == dt
    assert t.iso_z(dt) == t.iso_z(ns) == "2025-11-09T20:00:00Z"
    assert t.parse_iso("2025-11-09T20:00:00Z") == dt
    assert t.parse_iso("2025-11-09T14:00:00-06:00") == dt
    with pytest.raises(ValueError):
        t.parse_iso("2025-11-09T20:00:00")
    with pytest.raises(ValueError):
        t.to_ns(datetime(2025, 1, 1))


def test_iso_z_pads_the_year_writes_microseconds_and_converts_offsets() -> None:
    assert t.iso_z(datetime(5, 1, 2, 3, 4, 5, tzinfo=UTC)) == "0005-01-02T03:04:05Z"
    assert t.iso_z(datetime(2025, 11, 9, 20, 0, 0, 5, tzinfo=UTC)) == "2025-11-09T20:00:00.000005Z"
    assert t.iso_z(t.parse_iso("2025-11-09T14:00:00-06:00")) == "2025-11-09T20:00:00Z"
    assert t.iso_z(t.to_ns(datetime(2025, 11, 9, 20, 0, 0, 999999, tzinfo=UTC)) + 999) == "2025-11-09T20:00:00.999999Z"

    class Stamp(datetime):  # a datetime subclass (pandas' Timestamp is one) takes the strftime path
        def isoformat(self, *a: object, **k: object) -> str:
            raise AssertionError("not used for a subclass")

    assert t.iso_z(Stamp(2025, 11, 9, 20, 0, tzinfo=UTC)) == "2025-11-09T20:00:00Z"
    for dt in (datetime(2025, 11, 9, 20, 0, 0, 5, tzinfo=UTC), datetime(999, 12, 31, 23, 59, tzinfo=UTC)):
        assert t.parse_iso(t.iso_z(dt)) == dt


def test_floors_and_buckets() -> None:
    ns = t.to_ns(datetime(2025, 11, 9, 20, 7, 31, 5, tzinfo=UTC))
    assert t.from_ns(t.floor_minute_ns(ns)) == datetime(2025, 11, 9, 20, 7, tzinfo=UTC)
    assert t.from_ns(t.floor_hour_ns(ns)) == datetime(2025, 11, 9, 20, 0, tzinfo=UTC)
    bar = datetime(2025, 11, 11, 2, 15, tzinfo=UTC)  # Monday 20:15 CT -> trading day Tue
    assert t.day_bucket(bar) == datetime(2025, 11, 10, 23, 0, tzinfo=UTC)
    assert t.day_close(bar) == datetime(2025, 11, 11, 22, 0, tzinfo=UTC)
    assert t.hour_bucket(bar) == datetime(2025, 11, 11, 2, 0, tzinfo=UTC)
    assert t.bt_close_stamp(bar) == datetime(2025, 11, 11, 2, 16)  # naive UTC, at the close


def test_business_day_helpers() -> None:
    assert t.next_trading_day(date(2025, 11, 7)) == date(2025, 11, 10)
    assert t.previous_trading_day(date(2025, 11, 10)) == date(2025, 11, 7)
    assert t.add_business_days(date(2025, 11, 10), -2) == date(2025, 11, 6)
    assert len(t.trading_days(date(2025, 11, 3), date(2025, 11, 16))) == 10


def test_to_ms_is_the_bar_log_id() -> None:
    when = datetime(2025, 12, 1, 15, 0, tzinfo=t.UTC)
    assert t.to_ms(when) == 1764601200000 == t.to_ns(when) // 1_000_000
    assert t.from_ns(t.to_ms(when) * 1_000_000) == when


def test_business_days_between_is_numpys_busday_count() -> None:
    import numpy as np

    first = date(2024, 12, 23)  # around a year end, every weekday as a start
    for a in (first + timedelta(days=i) for i in range(12)):
        for n in range(-30, 31):
            b = a + timedelta(days=n)
            assert t.business_days_between(a, b) == int(np.busday_count(a, b)), (a, b)
