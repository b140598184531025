"""The IBS README's decided edge cases, each pinned by a test (issue #19).

- A daily bar that exits a position never arms a new entry (rule 3 before rule 1).
- The entry hour is the first hourly bar that *exists* after the signal day's
  close: when the 17:00-18:00 CT hour printed no trade, the next hour that did.
- An hourly bar ending at the signal day's close (delivered with it) is not the entry hour.
- Held days count completed daily bars after the entry, the entry's own trading day included.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from multialpha_ibs.rules import IbsRules, Params

UTC = timezone.utc
HOUR = timedelta(hours=1)
# Trading day Tue 2025-12-02 closes at 16:00 CT = 22:00Z; Wed's session opens 17:00 CT = 23:00Z.
DAY_END = datetime(2025, 12, 2, 22, tzinfo=UTC)
NEXT_OPEN_HOUR_END = DAY_END + 2 * HOUR  # 17:00-18:00 CT closes at 00:00Z


def test_a_day_that_exits_never_arms_an_entry() -> None:
    # Long held max_hold_days: the exit day's IBS (0.0) would arm a long if flat, but it exits instead.
    r = IbsRules(Params(max_hold_days=1))
    r.restore("long")
    act = r.on_day(DAY_END, 110.0, 100.0, 100.0)
    assert act is not None and act.kind == "exit" and r.position is None
    assert r.armed is None
    assert r.on_hour(NEXT_OPEN_HOUR_END, 90.0) is None  # would confirm a long; nothing is armed
    # The next daily bar, now flat, arms as usual.
    r.on_day(DAY_END + 24 * HOUR, 110.0, 100.0, 100.0)
    assert r.armed is not None and r.armed[0] == "long"


def test_a_short_exiting_on_low_ibs_does_not_flip_long() -> None:
    r = IbsRules(Params(allow_short=True))
    r.restore("short")
    act = r.on_day(DAY_END, 110.0, 100.0, 100.5)  # IBS 0.05 <= 1 - exit_ibs: short exits
    assert act is not None and act.kind == "exit" and act.side == "short"
    assert r.armed is None and r.on_hour(NEXT_OPEN_HOUR_END, 90.0) is None


def test_missing_open_hour_enters_on_the_first_existing_hour() -> None:
    r = IbsRules(Params())
    r.on_day(DAY_END, 110.0, 100.0, 101.0)  # IBS 0.1: long armed at signal close 101
    # The 15:00-16:00 CT hour arrives in the same step as the day: it is not the entry hour.
    assert r.on_hour(DAY_END, 99.0) is None and r.armed is not None
    # No bar for 17:00-18:00 CT (no trade); 18:00-19:00 CT is the first hour that exists.
    act = r.on_hour(NEXT_OPEN_HOUR_END + HOUR, 100.5)
    assert act is not None and act.kind == "entry" and act.side == "long" and act.price == 100.5


def test_first_existing_hour_above_the_signal_close_drops_the_signal() -> None:
    r = IbsRules(Params())
    r.on_day(DAY_END, 110.0, 100.0, 101.0)
    assert r.on_hour(NEXT_OPEN_HOUR_END + 2 * HOUR, 102.0) is None  # reverted already: dropped
    assert r.armed is None
    assert r.on_hour(NEXT_OPEN_HOUR_END + 3 * HOUR, 95.0) is None  # a later, lower hour does not enter


def test_held_days_include_the_entry_day() -> None:
    r = IbsRules(Params(max_hold_days=2, exit_ibs=0.99))
    r.on_day(DAY_END, 110.0, 100.0, 101.0)
    assert r.on_hour(NEXT_OPEN_HOUR_END, 100.0) is not None  # entered at 18:00 CT on Wednesday's session
    assert r.on_day(DAY_END + 24 * HOUR, 110.0, 100.0, 105.0) is None  # Wednesday completes: held 1
    act = r.on_day(DAY_END + 48 * HOUR, 110.0, 100.0, 105.0)  # Thursday: held 2 -> exit
    assert act is not None and act.kind == "exit" and "held 2 days" in act.reason
