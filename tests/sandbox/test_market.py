"""The synthetic market: determinism, calendar, contracts and roll, price grid, bars."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import numpy as np

from multialpha import cme_time
from multialpha.config import Settings
from multialpha.contracts import ContractMap
from multialpha.sandbox.market import SyntheticMarket, aggregate_minutes, rollup

D = cme_time.NS


def _range(day: date) -> tuple[int, int]:
    o, c = cme_time.session_bounds(day)
    return cme_time.to_ns(o), cme_time.to_ns(c)


def test_same_seed_same_bytes_other_seed_other_bytes(sandbox_settings: Settings) -> None:
    a = SyntheticMarket(sandbox_settings, 5, days=30)
    b = SyntheticMarket(sandbox_settings, 5, days=30)
    c = SyntheticMarket(sandbox_settings, 6, days=30)
    lo, hi = _range(date(2025, 12, 2))
    # b generates a later day first: days must not depend on generation order
    b.trades("ES", *_range(date(2025, 12, 4)))
    assert a.trades("ES", lo, hi).tobytes() == b.trades("ES", lo, hi).tobytes()
    assert a.trades("ES", lo, hi).tobytes() != c.trades("ES", lo, hi).tobytes()


def test_trades_only_inside_sessions_and_on_tick_grid(sandbox_settings: Settings) -> None:
    m = SyntheticMarket(sandbox_settings, 5, days=30)
    # Thursday .. Tuesday spans a weekend closure and daily halts (and no DST change: fine)
    lo = cme_time.to_ns(cme_time.session_bounds(date(2025, 12, 4))[0])
    hi = cme_time.to_ns(cme_time.session_bounds(date(2025, 12, 9))[1])
    for root in ("ES", "6J", "ZB", "CL"):
        t = m.trades(root, lo, hi)
        assert len(t) > 0
        assert all(cme_time.is_open(int(x)) for x in t["ts_recv"][:: max(1, len(t) // 2000)])
        assert all(cme_time.is_open(int(x)) for x in (t["ts_recv"][0], t["ts_recv"][-1]))
        assert np.all(np.diff(t["ts_recv"].astype(np.int64)) > 0)  # strictly increasing per root
        assert np.all(t["ts_recv"] >= t["ts_event"])
        tick_ns = round(sandbox_settings.instruments[root].tick_size * 1e9)
        assert np.all(t["price"] % tick_ns == 0)
    # nothing on Saturday or during a halt hour
    sat = cme_time.to_ns(cme_time.session_bounds(date(2025, 12, 5))[1])
    sun_open = cme_time.to_ns(cme_time.session_bounds(date(2025, 12, 8))[0])
    assert len(m.trades("ES", sat, sun_open)) == 0


def test_price_level_near_config_and_intensity_differs_by_product(sandbox_settings: Settings) -> None:
    m = SyntheticMarket(sandbox_settings, 5, days=30)
    day = m.from_date
    lo, hi = _range(day)
    es = m.trades("ES", lo, hi)
    n6 = m.trades("6N", lo, hi)
    front = m.instruments("ES", day)[0].instrument_id
    last = es[es["instrument_id"] == front]["price"][-1] / 1e9
    assert abs(last / sandbox_settings.instruments["ES"].sandbox_price - 1) < 0.05
    assert len(es) > 10 * len(n6) > 0
    # thin products have quiet minutes (no bar), busy ES has almost none in US hours
    minutes_6n = {int(x) // cme_time.MINUTE_NS for x in n6["ts_recv"]}
    assert len(minutes_6n) < (hi - lo) // cme_time.MINUTE_NS * 0.8


def test_front_by_contract_map_is_busiest_and_volume_migrates(sandbox_settings: Settings) -> None:
    m = SyntheticMarket(sandbox_settings, 5, days=30)
    cm = ContractMap.load(sandbox_settings.path(sandbox_settings.contract_map_path))
    next_share = []
    for day in cme_time.trading_days(date(2025, 12, 1), date(2025, 12, 16)):
        insts = {i.instrument_id: i for i in m.instruments("ES", day)}
        counts = Counter(m.trades("ES", *_range(day))["instrument_id"].tolist())
        outright = {iid: n for iid, n in counts.items() if not insts[iid].is_spread}
        busiest = insts[max(outright, key=outright.get)]
        assert busiest.raw_symbol == cm.front("ES", day).raw_symbol, day
        h6 = next(i for i in insts.values() if i.raw_symbol == "ESH6")
        next_share.append(counts[h6.instrument_id] / sum(outright.values()))
        assert any(i.is_spread for i in insts.values())
    assert cm.roll_date(cm.front("ES", date(2025, 12, 1))) == date(2025, 12, 11)
    # ESH6's share rises into the roll and it is the front from 2025-12-11 on
    assert next_share[0] < 0.1 < next_share[7] and next_share[8] > 0.5


def test_spreads_priced_front_minus_next(sandbox_settings: Settings) -> None:
    m = SyntheticMarket(sandbox_settings, 5, days=30)
    day = date(2025, 12, 3)
    insts = m.instruments("ES", day)
    spread = next(i for i in insts if i.is_spread)
    assert spread.raw_symbol == "ESZ5-ESH6"
    t = m.trades("ES", *_range(day))
    sp = t[t["instrument_id"] == spread.instrument_id]["price"] / 1e9
    z5 = t[t["instrument_id"] == insts[0].instrument_id]["price"] / 1e9
    h6 = t[t["instrument_id"] == insts[1].instrument_id]["price"] / 1e9
    assert len(sp) > 0
    assert abs(np.median(sp) - (np.median(z5) - np.median(h6))) < 15  # same order as the legs' difference
    assert np.median(sp) < 0  # ES is in contango: deferred above front


def test_minute_bars_equal_independent_aggregation(sandbox_settings: Settings) -> None:
    m = SyntheticMarket(sandbox_settings, 5, days=30)
    t = m.trades("6E", *_range(date(2025, 12, 2)))
    expect: dict[tuple[int, int], list[int]] = {}
    for rec in t:
        key = (int(rec["instrument_id"]), int(rec["ts_recv"]) // cme_time.MINUTE_NS * cme_time.MINUTE_NS)
        p, s = int(rec["price"]), int(rec["size"])
        if key not in expect:
            expect[key] = [p, p, p, p, s]
        else:
            b = expect[key]
            b[1], b[2], b[3], b[4] = max(b[1], p), min(b[2], p), p, b[4] + s
    got = {
        (int(b["instrument_id"]), int(b["ts_event"])): [int(b["open"]), int(b["high"]), int(b["low"]), int(b["close"]), int(b["volume"])]
        for b in aggregate_minutes(t)
    }
    assert got == expect


def test_rollup_hour_matches_minutes(sandbox_settings: Settings) -> None:
    m = SyntheticMarket(sandbox_settings, 5, days=30)
    mins = m.minute_bars("CL", date(2025, 12, 2))
    hours = rollup(mins, cme_time.HOUR_NS, 0x22)
    for h in hours[:20]:
        sel = mins[(mins["instrument_id"] == h["instrument_id"]) & (mins["ts_event"] // cme_time.HOUR_NS == h["ts_event"] // cme_time.HOUR_NS)]
        assert h["open"] == sel["open"][0] and h["close"] == sel["close"][-1]
        assert h["high"] == sel["high"].max() and h["low"] == sel["low"].min() and h["volume"] == sel["volume"].sum()


def test_days_before_history_are_empty(sandbox_settings: Settings) -> None:
    m = SyntheticMarket(sandbox_settings, 5, days=10)
    before = m.first_day - timedelta(days=7)
    assert len(m.trades("ES", *_range(cme_time.previous_trading_day(before)))) == 0
    assert len(m.trades("ES", *_range(m.first_day))) > 0


def test_trades_range_is_exact_to_the_nanosecond(sandbox_settings: Settings) -> None:
    m = SyntheticMarket(sandbox_settings, 5, days=30)
    lo, hi = _range(date(2025, 12, 2))
    t = m.trades("6J", lo, hi)
    cut = int(t["ts_recv"][100])
    assert int(m.trades("6J", cut + 1, hi)["ts_recv"][0]) == int(t["ts_recv"][101])
    assert int(m.trades("6J", cut, hi)["ts_recv"][0]) == cut
    assert int(m.trades("6J", lo, cut)["ts_recv"][-1]) == int(t["ts_recv"][99])


def test_listed_front_agrees_with_contract_map_for_every_root_and_day(sandbox_settings: Settings) -> None:
    m = SyntheticMarket(sandbox_settings, 5, days=30)
    cm = ContractMap.load(sandbox_settings.path(sandbox_settings.contract_map_path))
    for root in m.roots:
        for day in cme_time.trading_days(date(2024, 12, 20), date(2026, 1, 10)):
            insts = m.instruments(root, day)
            assert insts[0].raw_symbol == cm.front(root, day).raw_symbol, (root, day)
            assert insts[1].raw_symbol == cm.next_after(cm.front(root, day)).raw_symbol
            assert insts[0].share > max(i.share for i in insts[1:])
            assert all(day <= i.expiry for i in insts)
