"""The one simulated fill: paper orders fill slippage ticks against the trader, and the gate books
the position and its realised P&L at exactly that fill (real Redis, real gate)."""

from __future__ import annotations

from datetime import timedelta

from multialpha import cme_time
from multialpha.keys import Keys
from multialpha.orders import fills, journal
from multialpha.orders.router import OrderRouter
from tests.orders.support import intent


def test_fill_price_is_worse_by_the_ticks_on_each_side(settings_for) -> None:
    s = settings_for(MULTIALPHA__BACKTEST__SLIPPAGE_TICKS="2", MULTIALPHA__INSTRUMENTS__CL__SLIPPAGE_TICKS="3")
    assert s.slippage_ticks("ES") == 2 and s.slippage_ticks("CL") == 3  # the instrument overrides the default
    # buys (entry long, exit short) pay more, sells (entry short, exit long) get less
    assert fills.fill_price(s, "ES", "long", "entry", 6000.25) == 6000.75
    assert fills.fill_price(s, "ES", "short", "exit", 6000.25) == 6000.75
    assert fills.fill_price(s, "ES", "short", "entry", 6000.25) == 5999.75
    assert fills.fill_price(s, "ES", "long", "exit", 6000.25) == 5999.75
    assert fills.fill_price(s, "CL", "long", "entry", 60.07) == 60.1  # no binary noise: exactly 60.10
    assert fills.slippage_cost(s, "CL", 2) == 3 * 0.01 * 1000 * 2
    s0 = settings_for(MULTIALPHA__BACKTEST__SLIPPAGE_TICKS="0")
    assert fills.fill_price(s0, "ES", "long", "entry", 6000.25) == 6000.25


def test_paper_round_trip_books_the_fills_in_the_gate_and_the_journal(settings_for, redis_client, clock) -> None:
    s = settings_for()  # shipped default: 1 tick per side
    r = OrderRouter(s, redis_client, "breakout", clock=clock)
    t0 = clock.now - timedelta(seconds=30)
    e = r.submit(intent(side="short", price=6000.25, bar_start=t0))
    clock.advance(60)
    x = r.submit(intent(side="short", kind="exit", price=5990.0, bar_start=t0 + timedelta(minutes=1)))
    assert e.accepted and x.accepted
    intents = {ev["kind"]: ev for ev in journal.read(redis_client, Keys(s.redis.namespace)) if ev["event"] == "intent"}
    assert (intents["entry"]["price"], intents["entry"]["fill_price"]) == ("6000.25", "6000.0")  # sold 1 tick lower
    assert (intents["exit"]["price"], intents["exit"]["fill_price"]) == ("5990.0", "5990.25")  # bought back higher
    # The gate's realised P&L of the day is the trade at its fills: short 1 ES from 6000.00 to 5990.25.
    day = r.gate.day_key(cme_time.trading_day(t0))
    realized = float(redis_client.hget(day, "realized"))
    comm = s.commission("breakout", "ES")
    assert realized == (6000.0 - 5990.25) * 50 - 2 * comm
    # ... which is the signal-price P&L minus exactly 2 ticks x multiplier x quantity.
    assert realized == (6000.25 - 5990.0) * 50 - 2 * comm - 2 * 0.25 * 50
    r.close()
