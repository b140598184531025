"""Realistic fills in the backtest: slippage moves every fill, never a decision, and the summary
shows the results with and without it."""

from __future__ import annotations

import pytest

from multialpha.backtest import results
from multialpha.config import BacktestSettings
from tests.backtest.helpers import run, veto


def test_one_tick_of_slippage_costs_two_ticks_per_round_trip(make_settings, source) -> None:
    base = veto(make_settings(portfolio={"max_positions": 50, "daily_stop_loss": 1e9}), "off")
    flat = base.model_copy(update={"backtest": BacktestSettings(slippage_ticks=0)})
    # 1 tick per side by default; NQ overrides it with 3 (per instrument)
    nq = base.instruments["NQ"].model_copy(update={"slippage_ticks": 3})
    slip = base.model_copy(update={"backtest": BacktestSettings(slippage_ticks=1),
                                   "instruments": {**base.instruments, "NQ": nq}})
    r0, r1 = run(flat, ["breakout"], source), run(slip, ["breakout"], source)
    assert results.accepted_keys(r0) == results.accepted_keys(r1)  # the same decisions
    t0, t1 = results.trades(r0), results.trades(r1)
    closed = [(a, b) for a, b in zip(t0, t1) if not a.open]
    assert {b.symbol for _, b in closed} >= {"NQ"} and len({b.symbol for _, b in closed}) >= 2
    for a, b in closed:
        spec, ticks = slip.instruments[b.symbol], (3 if b.symbol == "NQ" else 1)
        assert a.pnl - b.pnl == pytest.approx(2 * ticks * spec.tick_size * spec.multiplier * b.quantity), b
        assert b.pnl_no_slippage == a.pnl  # "without slippage" is the zero-slippage run's figure
        d = 1 if b.side == "long" else -1  # each fill moved against the trader
        assert b.entry_price - a.entry_price == pytest.approx(d * ticks * spec.tick_size)
        assert a.exit_price - b.exit_price == pytest.approx(d * ticks * spec.tick_size)
    s0 = results.summary(r0, t0, results.equity_curve(r0, t0))
    s1 = results.summary(r1, t1, results.equity_curve(r1, t1))
    assert s1["net_pnl_no_slippage"] == pytest.approx(s0["net_pnl"], abs=0.01)
    assert s1["realized_pnl_no_slippage"] == pytest.approx(s0["realized_pnl"], abs=0.01)
    assert s1["slippage"] == pytest.approx(s0["net_pnl"] - s1["net_pnl"], abs=0.01) and s1["slippage"] > 0
    assert s0["slippage"] == 0.0
