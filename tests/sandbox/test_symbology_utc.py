"""Sandbox symbology on UTC dates, as Databento reports it (multialpha/sandbox/utcmap.py).

An evening-session record (after 17:00 CT, before 00:00 UTC) belongs to the next CME trading
day but to the current UTC date; the official client's ``to_df()`` names it through a mapping
interval covering that UTC date. Continuous symbols name one instrument per UTC date, so a
roll takes effect at 00:00 UTC.
"""

from __future__ import annotations

import warnings
from datetime import date, datetime, timezone

import databento as db
import databento_dbn as dbn
import pytest

from multialpha import cme_time, endpoints
from multialpha.sandbox import utcmap
from multialpha.sandbox.server import Sandbox

from .test_live import _client

UTC = timezone.utc
ROLL_EVENING = (datetime(2025, 12, 10, 23, 0, tzinfo=UTC), datetime(2025, 12, 10, 23, 30, tzinfo=UTC))


@pytest.fixture
def hist(ep: endpoints.Endpoints) -> db.Historical:
    return endpoints.historical_client(ep)


def _df(hist: db.Historical, symbols: str, stype_in: str, start: datetime, end: datetime):
    store = hist.timeseries.get_range("GLBX.MDP3", schema="trades", symbols=symbols, stype_in=stype_in,
                                      start=start, end=end)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas 3 deprecation inside the client
        return store, store.to_df()


@pytest.mark.parametrize("symbols,stype_in", [("ES.FUT", "parent"), ("ES.c.0", "continuous"), ("ESZ5", "raw_symbol")])
def test_evening_session_records_all_have_a_symbol(hist: db.Historical, symbols: str, stype_in: str) -> None:
    """Sunday 2025-11-30 23:00-23:30 UTC: trading day Monday 12-01, UTC date 11-30."""
    _, df = _df(hist, symbols, stype_in, datetime(2025, 11, 30, 23, tzinfo=UTC), datetime(2025, 11, 30, 23, 30, tzinfo=UTC))
    assert len(df) > 100
    assert df["symbol"].notna().all() and (df["symbol"] != "").all()
    if stype_in != "parent":
        assert set(df["symbol"]) == {symbols}


def test_continuous_roll_takes_effect_at_utc_midnight(sb: Sandbox, hist: db.Historical) -> None:
    """ES rolls ESZ5 -> ESH6 on trading day 2025-12-11 (calendar); ES.v.0 follows the previous
    day's volume, so it rolls on trading day 2025-12-12, whose session opens 12-11 23:00 UTC.
    ES.v.0 on UTC date 12-11 (its evening included) is ESZ5, from 00:00 UTC 12-12 ESH6."""
    sb.set_clock(datetime(2025, 12, 12, 2, tzinfo=UTC))
    ids = {raw: iid for iid, raw in sb.market.raw_symbols("ES", date(2025, 12, 11)).items()}
    v_evening = (datetime(2025, 12, 11, 23, 0, tzinfo=UTC), datetime(2025, 12, 11, 23, 30, tzinfo=UTC))
    store, evening = _df(hist, "ES.v.0", "continuous", *v_evening)
    assert len(evening) > 10 and set(evening["symbol"]) == {"ES.v.0"}
    assert set(evening["instrument_id"]) == {ids["ESZ5"]}
    _, night = _df(hist, "ES.v.0", "continuous", datetime(2025, 12, 12, 0, tzinfo=UTC), datetime(2025, 12, 12, 1, tzinfo=UTC))
    assert set(night["symbol"]) == {"ES.v.0"} and set(night["instrument_id"]) == {ids["ESH6"]}
    intervals = store.mappings["ES.v.0"]
    assert [(str(i["start_date"]), str(i["end_date"]), i["symbol"]) for i in intervals] == [
        ("2025-12-11", "2025-12-12", str(ids["ESZ5"]))
    ]
    # Parent symbology on the same evening names every outright and spread it carries.
    _, par = _df(hist, "ES.FUT", "parent", *ROLL_EVENING)
    assert par["symbol"].notna().all() and {"ESZ5", "ESH6"} <= set(par["symbol"])


def test_resolve_across_a_roll_on_utc_dates(sb: Sandbox, hist: db.Historical) -> None:
    sb.set_clock(datetime(2025, 12, 13, 12, tzinfo=UTC))
    ids = {raw: str(iid) for iid, raw in sb.market.raw_symbols("ES", date(2025, 12, 11)).items()}
    out = hist.symbology.resolve("GLBX.MDP3", symbols=["ES.v.0"], stype_in="continuous", stype_out="instrument_id",
                                 start_date="2025-12-07", end_date="2025-12-13")
    # Sunday 12-07 carries Monday's evening session; ES.v.0 (previous day's volume) rolls one
    # trading day after the calendar roll of 12-11: on UTC date 12-12.
    assert [(i["d0"], i["d1"], i["s"]) for i in out["result"]["ES.v.0"]] == [
        ("2025-12-07", "2025-12-12", ids["ESZ5"]), ("2025-12-12", "2025-12-13", ids["ESH6"]),
    ]
    raw = hist.symbology.resolve("GLBX.MDP3", symbols=["ESH6"], stype_in="raw_symbol", stype_out="instrument_id",
                                 start_date="2025-12-04", end_date="2025-12-10")
    # Thursday 12-04 .. Tuesday 12-09: one interval, the Saturday (no session) bridged.
    assert [(i["d0"], i["d1"], i["s"]) for i in raw["result"]["ESH6"]] == [("2025-12-04", "2025-12-10", ids["ESH6"])]


def test_live_mapping_intervals_are_utc_dates(sb: Sandbox, ep: endpoints.Endpoints) -> None:
    sb.set_clock(datetime(2025, 12, 10, 23, 5, tzinfo=UTC))  # trading day 12-11's evening
    client, col = _client(ep, "ES.FUT", "parent")
    try:
        col.wait(lambda c: len(c.of(dbn.TradeMsg)) > 0, "trades")
    finally:
        client.terminate()
    maps = col.of(dbn.SymbolMappingMsg)
    assert maps
    day0 = cme_time.to_ns(datetime(2025, 12, 10, tzinfo=UTC))
    assert {(m.start_ts, m.end_ts) for m in maps} == {(day0, day0 + 2 * utcmap.DAY_NS)}  # UTC dates 12-10, 12-11


def test_mapping_day_and_session_dates() -> None:
    assert utcmap.session_dates(date(2025, 12, 1)) == (date(2025, 11, 30), date(2025, 12, 1))  # Monday opens Sunday
    assert utcmap.mapping_day(date(2025, 11, 30)) == date(2025, 12, 1)  # Sunday follows Monday
    assert utcmap.mapping_day(date(2025, 12, 10)) == date(2025, 12, 10)
    assert utcmap.session_dates(date(2025, 7, 1)) == (date(2025, 6, 30), date(2025, 7, 1))  # CDT: 22:00Z open
