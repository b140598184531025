"""The report's numbers against hand computations (pure functions, no I/O)."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone

import pytest

from multialpha import cme_time
from multialpha.report import compute
from multialpha.report.compute import Fill

# Mon 2025-12-01 .. Wed 2025-12-03; 15:00Z is 09:00 CT, inside each day's session.
DAYS = [date(2025, 12, 1), date(2025, 12, 2), date(2025, 12, 3)]


def at(day: date, hour: int = 15, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=timezone.utc)


def es(kind: str, when: datetime, signal: float, fill: float | None, side: str = "long", strategy: str = "s1",
       qty: int = 1) -> Fill:
    return Fill(strategy, "ES", side, kind, qty, "ESZ5", when, signal, fill, tick=0.25, multiplier=50.0,
                commission=2.5)


def test_round_trip_pnl_at_fills_and_at_signals() -> None:
    long_ = compute.RoundTrip(es("entry", at(DAYS[0]), 6000.0, 6000.25), es("exit", at(DAYS[0], 16), 6010.0, 6009.75))
    # 50 x (6009.75 - 6000.25) - 2 x 2.50 = 470; at the signals 50 x 10 - 5 = 495
    assert long_.pnl == 470.0 and long_.pnl_no_slippage == 495.0
    short = compute.RoundTrip(es("entry", at(DAYS[0]), 6000.0, 5999.75, side="short", qty=2),
                              es("exit", at(DAYS[1]), 5990.0, 5990.25, side="short", qty=2))
    # 2 x 50 x (5999.75 - 5990.25) - 2 x 2 x 2.50 = 940; the exit's trading day
    assert short.pnl == 940.0 and short.day == DAYS[1]
    assert short.entry.slippage_ticks == 1.0 and short.exit.slippage_ticks == 1.0
    assert short.exit.slippage_usd == 0.25 * 50 * 2
    # a fill better than the signal is negative slippage; an unknown fill is None
    assert es("entry", at(DAYS[0]), 6000.0, 5999.5).slippage_ticks == -2.0
    assert es("entry", at(DAYS[0]), 6000.0, None).slippage_ticks is None


def test_pairing_keeps_the_open_entry() -> None:
    fills = [es("entry", at(DAYS[0]), 1, 1), es("entry", at(DAYS[0]), 1, 1, strategy="s2"),
             es("exit", at(DAYS[1]), 2, 2), es("exit", at(DAYS[1]), 3, 3, strategy="nobody")]
    trips, open_ = compute.pair(fills)
    assert [(t.entry.strategy, t.exit.signal_price) for t in trips] == [("s1", 2)]
    assert [f.strategy for f in open_] == ["s2"]  # an exit without an entry pairs with nothing


def test_stats_equal_a_hand_computation() -> None:
    capital = 100_000.0
    trips = [
        # day 1: +470 (long 6000.25 -> 6009.75)
        compute.RoundTrip(es("entry", at(DAYS[0], 14), 6000.0, 6000.25), es("exit", at(DAYS[0], 16), 6010.0, 6009.75)),
        # day 2: nothing. day 3: -30 (long 6000.25 -> 6000.25 ... minus 2 x 2.50, then -25 more)
        compute.RoundTrip(es("entry", at(DAYS[2], 14), 6000.0, 6000.25), es("exit", at(DAYS[2], 15), 5999.75, 5999.75)),
    ]
    st = compute.stats(trips, [], DAYS, capital)
    day3 = 50 * (5999.75 - 6000.25) - 5.0  # -30
    assert st["daily"] == {DAYS[0]: 470.0, DAYS[1]: 0.0, DAYS[2]: day3}
    assert st["equity"] == [100_470.0, 100_470.0, 100_470.0 + day3]
    assert st["drawdown"] == [0.0, 0.0, -day3]
    assert st["max_drawdown"] == -day3 and st["max_drawdown_pct"] == pytest.approx(30 / 100_470)
    assert st["net_pnl"] == 440.0 and st["trades"] == 2 and st["win_rate"] == 0.5
    assert st["net_pnl_no_slippage"] == (50 * 10 - 5) + (50 * -0.25 - 5)
    assert st["slippage_ticks"] == 3.0  # 1 + 1 on the first trip, 1 + 0 on the second
    assert st["slippage_usd"] == 3 * 0.25 * 50
    assert st["commission"] == 10.0
    r = [470 / capital, 0.0, -30 / capital]
    mean = sum(r) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / 2)
    assert st["sharpe"] == pytest.approx(mean / sd * math.sqrt(252))
    down = math.sqrt((30 / capital) ** 2 / 3)
    assert st["sortino"] == pytest.approx(mean / down * math.sqrt(252))
    # exposure: held 2 h + 1 h of three 23-hour sessions
    assert st["exposure"] == pytest.approx(3 / (3 * 23))


def test_undefined_ratios_are_none_not_zero() -> None:
    assert compute.sharpe([0.01]) is None and compute.sharpe([0.0, 0.0]) is None
    assert compute.sortino([0.01, 0.02]) is None  # no losing day: no downside deviation
    st = compute.stats([], [], DAYS[:1], 1000.0)
    assert st["win_rate"] is None and st["net_pnl"] == 0.0 and st["exposure"] == 0.0


def test_exposure_merges_overlaps_and_skips_the_closed_market() -> None:
    start, end = cme_time.session_bounds(DAYS[0])[0], cme_time.session_bounds(DAYS[1])[1]
    one = (at(DAYS[0], 14), at(DAYS[0], 16))
    overlap = (at(DAYS[0], 15), at(DAYS[0], 17))  # two positions at once count once: 14:00-17:00
    # held 21:30-23:30Z across the 16:00-17:00 CT halt (22:00-23:00Z in December): 60 open minutes
    across = (at(DAYS[0], 21, 30), at(DAYS[0], 23, 30))
    got = compute.exposure([one, overlap, across], start, end)
    assert got == pytest.approx((3 * 60 + 60) / (2 * 23 * 60))
    open_ = compute.exposure([(at(DAYS[1], 14), end + timedelta(days=3))], start, end)  # open past the end: clipped
    assert open_ == pytest.approx((cme_time.session_bounds(DAYS[1])[1] - at(DAYS[1], 14)).total_seconds() / (2 * 23 * 3600))


def test_the_sessions_last_bar_books_into_its_own_trading_day() -> None:
    # The 15:59 CT bar (21:59Z in December) fills at its close, 16:00 CT: already the next
    # trading day by the clock, but its P&L belongs to the bar's day, as the gate books it.
    trip = compute.RoundTrip(es("entry", at(DAYS[0], 14), 6000.0, 6000.0), es("exit", at(DAYS[0], 22), 6001.0, 6001.0))
    assert cme_time.trading_day(trip.exit.at) == DAYS[1] and trip.day == DAYS[0]
    assert compute.daily_pnl([trip], DAYS)[DAYS[0]] == 50.0 - 5.0
