"""Periods and sections of a report (pure: no Redis, no files)."""

from __future__ import annotations

from datetime import date

import pytest

from multialpha.report import build
from tests.report.test_compute import DAYS, at, es


def test_no_fill_and_no_period_is_an_error_but_a_given_period_is_an_empty_report() -> None:
    with pytest.raises(build.EmptyJournal):
        build.period([], None, None)
    rep = build.build([], DAYS[0], DAYS[-1], 1000.0, ["s1", "s2"])
    assert [s.name for s in rep.sections] == ["s1", "s2", "portfolio"]
    assert all(s.stats["net_pnl"] == 0.0 and s.stats["equity"] == [1000.0] * 3 for s in rep.sections)


def test_default_period_and_fills_after_it_are_not_seen() -> None:
    fills = [es("entry", at(DAYS[0]), 6000.0, 6000.0), es("exit", at(DAYS[1]), 6001.0, 6001.0),
             es("entry", at(DAYS[1], 16), 6000.0, 6000.0, strategy="s2"),
             es("exit", at(DAYS[2]), 6002.0, 6002.0, strategy="s2")]
    assert build.period(fills, None, None) == (DAYS[0], DAYS[2])
    rep = build.build(fills, DAYS[0], DAYS[1], 1000.0, ["s1", "s2"])  # s2's exit is on DAYS[2]: after the period
    s1, s2, port = rep.sections
    assert s1.stats["net_pnl"] == 50.0 - 5.0 and s2.stats["trades"] == 0 and s2.stats["open_at_end"] == 1
    assert port.stats["net_pnl"] == s1.stats["net_pnl"] and port.stats["open_at_end"] == 1
    assert rep.days == [DAYS[0], DAYS[1]]
    with pytest.raises(ValueError, match="no CME trading day"):
        build.build(fills, date(2025, 12, 6), date(2025, 12, 7), 1.0, ["s1"])  # a weekend
