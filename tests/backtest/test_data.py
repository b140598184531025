"""Backtest bars follow the hub's contract across a roll (real sandbox gateway, unmodified databento client)."""

from __future__ import annotations

from datetime import date

import numpy as np

from multialpha import cme_time
from multialpha.backtest import data as bt_data
from multialpha.contracts import ContractMap
from multialpha.worker import warmup
from multialpha.worker.cache import BarCache, CacheKey
from tests.worker.conftest import no_history
from tests.worker.test_warmup import front_trade_bars

# GC rolls to GCG6 on trading day 2025-11-25 (first notice rule); GCZ5 trades until 11-28, and
# Databento's calendar GC.c.0 stays on it until then. ES is on ESZ5 throughout.
FIRST, LAST, ROLL = date(2025, 11, 24), date(2025, 11, 26), date(2025, 11, 25)


def _by_start(bars: list[bt_data.SymbolBar]) -> dict[int, tuple]:
    return {cme_time.to_ns(sb.bar.start): (sb.bar.open, sb.bar.high, sb.bar.low, sb.bar.close, sb.bar.volume, sb.contract)
            for sb in bars}


def test_bars_across_a_roll_are_the_hubs_contract_and_cached(make_settings, source, sandbox, tmp_path):
    settings = make_settings()
    cmap = ContractMap.load(settings.path(settings.contract_map_path))
    assert cmap.front("GC", FIRST).raw_symbol == "GCZ5" and cmap.front("GC", ROLL).raw_symbol == "GCG6"
    start, end = bt_data.session_range(FIRST, LAST)
    s, e = cme_time.to_ns(start), cme_time.to_ns(end)
    cache = BarCache(tmp_path)
    # An old-format (continuous GC.c.0) cache entry with impossible prices: never read.
    n = 10
    cache.write(CacheKey(source.dataset, "ohlcv-1m", "continuous", "GC.c.0"), s, e,
                {"ts": s + np.arange(n, dtype=np.int64) * cme_time.MINUTE_NS, "open": np.ones(n), "high": np.ones(n),
                 "low": np.ones(n), "close": np.ones(n), "volume": np.ones(n, dtype=np.int64)})

    for resolution, span in (("minute", cme_time.MINUTE_NS), ("hour", cme_time.HOUR_NS)):
        h = warmup.Historian(cache, source.fetch, source.dataset)
        bars = bt_data.load_bars(h, ["ES", "GC"], start, end, resolution, cmap)
        # both roots, both GC contracts: one request (minute bars: one per trading day, FIRST .. LAST)
        assert h.requests == (3 if resolution == "minute" else 1), resolution
        assert h.contracts is cmap  # warmup on this historian follows the same map
        for root in ("ES", "GC"):
            got = _by_start(bars[root])
            assert got == front_trade_bars(sandbox.market, cmap, root, s, e, span), (root, resolution)
        gc = bars["GC"]
        assert {sb.contract for sb in gc if cme_time.trading_day(sb.bar.start) < ROLL} == {"GCZ5"}
        assert {sb.contract for sb in gc if cme_time.trading_day(sb.bar.start) >= ROLL} == {"GCG6"}
        assert {sb.contract for sb in bars["ES"]} == {"ESZ5"}

        # The check can fail: GC.c.0 after the roll is GCZ5, another price.
        cont = source.fetch(bt_data.SCHEMA[resolution], ["GC.c.0"], "continuous", warmup.day_start_ns(ROLL), e)["GC.c.0"]
        closes = dict(zip(cont["ts"].tolist(), cont["close"].tolist()))
        after = [(t, v[3]) for t, v in _by_start(gc).items() if t >= warmup.day_start_ns(ROLL)]
        assert after and sum(closes.get(t) != c for t, c in after) > len(after) // 2

        warm = warmup.Historian(cache, no_history, source.dataset)
        again = bt_data.load_bars(warm, ["ES", "GC"], start, end, resolution, cmap)
        assert {k: list(v) for k, v in again.items()} == {k: list(v) for k, v in bars.items()}
        assert warm.requests == 0


def _cols(ts0: int, n: int, px: float) -> dict[str, np.ndarray]:
    ts = ts0 + np.arange(n, dtype=np.int64) * cme_time.MINUTE_NS
    close = px + np.arange(n) / 4
    return {"ts": ts, "open": close - 0.25, "high": close + 0.5, "low": close - 0.5, "close": close,
            "volume": np.arange(n, dtype=np.int64) + 1}


def test_bar_series_keeps_columns_and_builds_each_bar_when_read():
    """A range's bars stay numpy columns: every read builds the warmup's own OHLCV objects (the
    same floats), nothing is kept, and the equity marks come from the columns."""
    t0 = cme_time.to_ns(cme_time.session_bounds(FIRST)[0])
    pieces = [("GCZ5", _cols(t0, 5000, 4000.0)), ("GCG6", _cols(t0 + 5000 * cme_time.MINUTE_NS, 3, 4100.0)),
              ("GCH6", _cols(t0, 0, 1.0))]  # 5000 rows: across a conversion chunk; an empty piece is dropped
    series = bt_data.BarSeries("GC", bt_data.SPAN["minute"], pieces, prev=True)
    want = [bt_data.SymbolBar("GC", b, c, True) for c, cols in pieces for b in warmup.to_bars(cols, bt_data.SPAN["minute"])]
    got = list(series)
    assert len(series) == len(want) == 5003 and got == want
    assert got[0] is not next(iter(series))  # built on reading, not held
    assert list(reversed(series)) == want[::-1]
    assert (series[0], series[4999], series[5000], series[-1]) == (want[0], want[4999], want[5000], want[-1])
    for bad in (5003, -5004):
        try:
            series[bad]
        except IndexError:
            continue
        raise AssertionError(f"series[{bad}] did not raise IndexError")
    marks = [(s, c, e, x) for s, c, ends, closes in bt_data.closes(series) for e, x in zip(ends.tolist(), closes.tolist())]
    assert marks == [(sb.symbol, sb.contract, cme_time.to_ns(sb.bar.end), sb.bar.close) for sb in want]
    assert list(bt_data.closes(want[:2]))[1][:2] == ("GC", "GCZ5")  # given bars (verify) as plain lists too
    assert not bt_data.BarSeries("GC", bt_data.SPAN["minute"], [pieces[2]])


def test_minute_bars_are_fetched_a_trading_day_per_request_without_gaps():
    """Minute ranges go to Historical a trading day at a time (bounded response in memory), cut
    where a trading day starts so the pieces tile the range exactly; hourly ranges in one piece."""
    start, end = bt_data.session_range(date(2025, 11, 20), date(2025, 11, 25))  # Thu .. Tue, over a weekend
    end = end - cme_time.from_ns(0).resolution * 7  # a clipped end (the data's clock)
    pieces = bt_data.fetch_pieces(start, end, "minute")
    assert len(pieces) == 4 and pieces[0][0] == start and pieces[-1][1] == end
    assert all(a < b for a, b in pieces) and all(p[1] == q[0] for p, q in zip(pieces, pieces[1:]))
    assert [cme_time.trading_day(a) for a, _ in pieces] == [date(2025, 11, d) for d in (20, 21, 24, 25)]
    assert bt_data.fetch_pieces(start, end, "hour") == [(start, end)]
