"""The unmodified databento.Historical client against the sandbox historical gateway."""

from __future__ import annotations

import warnings
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import databento as db
import databento_dbn as dbn
import pytest
import requests

from multialpha import cme_time, endpoints
from multialpha.sandbox.server import Sandbox

from .conftest import FIXTURES, SEED, HISTORY_DAYS


@pytest.fixture
def hist(ep: endpoints.Endpoints) -> db.Historical:
    return endpoints.historical_client(ep)


def _records(store: db.DBNStore) -> list:
    return list(store)


def test_warmup_sized_hourly_and_daily_bars(sb: Sandbox, hist: db.Historical) -> None:
    now = sb.state.now()
    hourly = _records(hist.timeseries.get_range(
        "GLBX.MDP3", start=now - timedelta(days=30), end=now, symbols="ES.v.0", stype_in="continuous", schema="ohlcv-1h"))  # fmt: skip
    daily = _records(hist.timeseries.get_range(
        "GLBX.MDP3", start=now - timedelta(days=400), end=now, symbols="ES.v.0", stype_in="continuous", schema="ohlcv-1d"))  # fmt: skip
    assert len(hourly) >= 338 and len(daily) >= 250
    now_ns = cme_time.to_ns(now)
    assert all(b.ts_event + cme_time.HOUR_NS <= now_ns for b in hourly)  # complete bars only
    assert all(b.ts_event % (86_400 * cme_time.NS) == 0 and b.ts_event + 86_400 * cme_time.NS <= now_ns for b in daily)
    assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in hourly + daily)
    # one bar per interval for a continuous symbol
    assert len({b.ts_event for b in hourly}) == len(hourly)


def _independent_bars(trades: list[dbn.TradeMsg], span_ns: int) -> dict[tuple[int, int], tuple[int, int, int, int, int]]:
    acc: dict[tuple[int, int], list[int]] = {}
    for t in trades:
        key = (t.instrument_id, t.ts_recv - t.ts_recv % span_ns)
        b = acc.get(key)
        if b is None:
            acc[key] = [t.price, t.price, t.price, t.price, t.size]
        else:
            b[1], b[2], b[3], b[4] = max(b[1], t.price), min(b[2], t.price), t.price, b[4] + t.size
    return {k: tuple(v) for k, v in acc.items()}  # type: ignore[misc]


@pytest.mark.parametrize("schema,span_ns", [("ohlcv-1m", cme_time.MINUTE_NS), ("ohlcv-1h", cme_time.HOUR_NS)])
def test_bars_equal_an_independent_aggregation_of_trades(hist: db.Historical, schema: str, span_ns: int) -> None:
    start, end = "2025-12-01T13:00:00Z", "2025-12-01T17:00:00Z"
    kw = dict(dataset="GLBX.MDP3", start=start, end=end, symbols=["ESZ5", "ESH6", "ESZ5-ESH6"], stype_in="raw_symbol")
    trades = _records(hist.timeseries.get_range(schema="trades", **kw))
    bars = _records(hist.timeseries.get_range(schema=schema, **kw))
    assert len(trades) > 1000
    got = {(b.instrument_id, b.ts_event): (b.open, b.high, b.low, b.close, b.volume) for b in bars}
    assert got == _independent_bars(trades, span_ns)
    assert [b.ts_event for b in bars] == sorted(b.ts_event for b in bars)


def test_daily_is_utc_date_and_eod_is_trading_day(hist: db.Historical) -> None:
    kw = dict(dataset="GLBX.MDP3", start="2025-11-24", end="2025-11-29", symbols="CLF6", stype_in="raw_symbol")
    trades = _records(hist.timeseries.get_range(schema="trades", **kw))
    daily = _records(hist.timeseries.get_range(schema="ohlcv-1d", **kw))
    eod = _records(hist.timeseries.get_range(schema="ohlcv-eod", **kw))
    day_ns = 86_400 * cme_time.NS
    assert {(b.ts_event, b.volume) for b in daily} == {
        (k[1], v[4]) for k, v in _independent_bars(trades, day_ns).items()
    }
    by_session: dict[int, int] = defaultdict(int)
    for t in trades:
        d = cme_time.trading_day(t.ts_recv)
        by_session[cme_time.to_ns(datetime(d.year, d.month, d.day, tzinfo=timezone.utc))] += t.size
    # eod covers whole sessions: only sessions fully inside [start, end) compare by volume
    full = {k: v for k, v in by_session.items() if k != min(by_session)}
    assert {b.ts_event: b.volume for b in eod if b.ts_event in full} == full
    assert len(daily) > len(eod) - 1  # a Sunday evening opens a UTC day of its own


def test_limit_and_definitions(hist: db.Historical) -> None:
    store = hist.timeseries.get_range(
        "GLBX.MDP3", start="2025-12-01", end="2025-12-02", symbols="ES.FUT", stype_in="parent", schema="trades", limit=25
    )
    assert len(_records(store)) == 25
    defs = _records(hist.timeseries.get_range(
        "GLBX.MDP3", start="2025-11-30", end="2025-12-02", symbols="ES.FUT", stype_in="parent", schema="definition"))  # fmt: skip
    syms = {d.raw_symbol for d in defs}
    assert {"ESZ5", "ESH6", "ESZ5-ESH6"} <= syms
    spread = next(d for d in defs if d.raw_symbol == "ESZ5-ESH6")
    assert spread.instrument_class == "S"
    assert all(d.min_price_increment == 250_000_000 for d in defs)


def test_end_after_now_is_clipped_with_a_warning(sb: Sandbox, hist: db.Historical) -> None:
    now = sb.state.now()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recs = _records(hist.timeseries.get_range(
            "GLBX.MDP3", start=now - timedelta(hours=1), end=now + timedelta(days=2), symbols="ES.FUT", stype_in="parent"))  # fmt: skip
    assert recs and max(r.ts_recv for r in recs) < cme_time.to_ns(now)
    assert any("available end" in str(w.message) for w in caught)


def test_errors_are_json_detail_with_status(sb: Sandbox, ep: endpoints.Endpoints, hist: db.Historical) -> None:
    with pytest.raises(db.BentoClientError) as e:
        db.Historical("db-" + "y" * 29, gateway=ep.historical_gateway).timeseries.get_range(
            "GLBX.MDP3", start="2025-12-01", end="2025-12-02", symbols="ES.FUT", stype_in="parent")  # fmt: skip
    assert e.value.http_status == 401
    with pytest.raises(db.BentoClientError) as e:
        hist.timeseries.get_range("GLBX.MDP3", start="2025-12-01", end="2025-12-02", symbols="ES.FUT", stype_in="parent", schema="mbo")
    assert e.value.http_status == 422 and "mbo" in e.value.message
    with pytest.raises(db.BentoClientError) as e:
        hist.timeseries.get_range("GLBX.MDP3", start=sb.state.now() + timedelta(hours=1), symbols="ES.FUT", stype_in="parent")
    assert e.value.http_status == 422 and "available end" in e.value.message
    with pytest.raises(db.BentoClientError) as e:
        hist.timeseries.get_range("GLBX.MDP3", start="2025-12-01", end="2025-12-02", symbols="ES", stype_in="parent")
    assert e.value.http_status == 422
    store = hist.timeseries.get_range("GLBX.MDP3", start="2025-12-01", end="2025-12-02", symbols="XXZ5", stype_in="raw_symbol")
    assert _records(store) == [] and store.metadata.not_found == ["XXZ5"]
    sb.faults.hist_error(503)
    with pytest.raises(db.BentoServerError) as e5:
        hist.timeseries.get_range("GLBX.MDP3", start="2025-12-01", end="2025-12-02", symbols="ES.FUT", stype_in="parent")
    assert e5.value.http_status == 503


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.dbn.zst")), ids=lambda p: p.name.split(".")[1])
def test_real_databento_files_are_served_unchanged(hist: db.Historical, path: Path) -> None:
    original = db.DBNStore.from_file(path)
    meta = original.metadata
    served = hist.timeseries.get_range(
        meta.dataset, start=meta.start, end=meta.end, symbols=meta.symbols, stype_in=meta.stype_in, schema=meta.schema
    )
    assert served.metadata == meta
    assert [bytes(r) for r in served] == [bytes(r) for r in original]
    assert len(_records(served)) > 0


def test_same_seed_same_bytes(sb: Sandbox, ep: endpoints.Endpoints, sandbox_settings, tmp_path) -> None:
    form = {
        "dataset": "GLBX.MDP3", "start": "2025-12-01T14:00:00Z", "end": "2025-12-01T15:00:00Z", "symbols": "ES.FUT,6E.FUT",
        "schema": "trades", "stype_in": "parent", "stype_out": "instrument_id", "encoding": "dbn", "compression": "none",
    }  # fmt: skip
    endpoints.trust_sandbox_ca(ep)

    def fetch(e: endpoints.Endpoints) -> bytes:
        r = requests.post(f"{e.historical_gateway}/v0/timeseries.get_range", data=form, auth=(e.api_key, ""), timeout=30)
        r.raise_for_status()
        return r.content

    with Sandbox(sandbox_settings, seed=SEED, speed=0, days=HISTORY_DAYS, state_file=tmp_path / "other.json") as other:
        other.set_clock(sb.state.now())
        a, b = fetch(ep), fetch(endpoints.from_state(other.state))
    assert len(a) > 10_000 and a == b


def test_control_endpoint_reaches_faults_and_clock(sb: Sandbox, ep: endpoints.Endpoints) -> None:
    from multialpha.sandbox import control

    out = control.fault(ep.sandbox, "stall")
    assert out["stalled"] and sb.faults.stalled
    control.fault(ep.sandbox, "clear")
    assert not sb.faults.stalled
    control.set_clock(ep.sandbox, datetime(2025, 12, 3, 16, tzinfo=timezone.utc))
    assert sb.state.now() == datetime(2025, 12, 3, 16, tzinfo=timezone.utc)
    assert control.state(ep.sandbox)["faults"]["stalled"] is False


def test_dataset_range_and_symbology_resolve(sb: Sandbox, hist: db.Historical) -> None:
    rng = hist.metadata.get_dataset_range("GLBX.MDP3")
    assert cme_time.parse_iso(rng["end"]) == sb.state.now()
    assert cme_time.parse_iso(rng["start"]) == cme_time.session_bounds(sb.market.first_day)[0]
    out = hist.symbology.resolve("GLBX.MDP3", symbols=["ES.v.0"], stype_in="continuous", stype_out="instrument_id",
                                 start_date="2025-12-08", end_date="2025-12-13")  # fmt: skip
    ids = {d: sb.market.instruments("ES", date.fromisoformat(d))[0].instrument_id for d in ("2025-12-10", "2025-12-11")}
    intervals = out["result"]["ES.v.0"]
    # ES.v.0 follows the previous trading day's volume: one day after the calendar roll (12-11)
    assert [(i["d0"], i["d1"]) for i in intervals] == [("2025-12-08", "2025-12-12"), ("2025-12-12", "2025-12-13")]
    assert [int(i["s"]) for i in intervals] == [ids["2025-12-10"], ids["2025-12-11"]]
    assert ids["2025-12-10"] != ids["2025-12-11"]  # the roll: ESZ5 then ESH6


@pytest.mark.parametrize(
    "text",
    ["2025-12-01", "2025-12-01T13:00:00Z", "2025-12-01T13:00:00+00:00", "2025-12-01T13:00:00.123456789-06:00",
     "2025-12-01T13:00", "2025-12-01 13:00:05.5", "2025-12-01T13:00:00+0530", "1764594000000000000"],
)  # fmt: skip
def test_time_parsing_matches_pandas(text: str) -> None:
    import pandas as pd

    from multialpha.sandbox.historical_request import parse_time

    ts = pd.Timestamp(int(text)) if text.isdigit() else pd.Timestamp(text)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts
    assert parse_time(text, "start") == ts.value
