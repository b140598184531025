"""Live ≡ backtest on sandbox trading days: the whole live pipeline vs `multialpha backtest --all`.

Live: sandbox gateways -> hub -> Redis -> the three shipped workers (paper, shipped models, one
shared portfolio) -> the paper journal (`{ns}:orders`, event=intent), driven by `multialpha up`
at high replay speed. Backtest: `runner.run` over the same trading days, same config and models,
against the same sandbox. The order lists `(strategy, symbol, side, kind, bar_start, quantity)`
must be identical, in order. See docs/parity.md for how the two clocks are lined up.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from multialpha.backtest import results
from tests.parity import helpers as h

SPEED = 1500.0  # ~55 wall s per trading day; hub and workers keep up (no drops, no late bars: asserted)
RANGES = {
    # Fri 2025-10-31 .. Tue 11-04: US DST ends Sun 11-02 (the session opens at 23:00Z instead of 22:00Z,
    # the close moves from 21:00Z to 22:00Z, and so do the daily bars' stamps).
    "dst": (date(2025, 10, 31), date(2025, 11, 4)),
    # Wed 2025-12-10 .. Thu 12-11: equity indices roll ESZ5 -> ESH6 on trading day 12-11; the currencies
    # trade their new contract since 12-08 while Databento's calendar `c.0` is still the old one.
    "roll": (date(2025, 12, 10), date(2025, 12, 11)),
}


@pytest.mark.slow
@pytest.mark.parametrize("span", sorted(RANGES))
def test_live_orders_equal_backtest(tmp_path: Path, sandbox_store: Path, span: str) -> None:
    first, last = RANGES[span]
    cfg = h.write_config(tmp_path, first)
    live, run = h.run_live(cfg, h.env_for(tmp_path, sandbox_store), first, last, SPEED,
                           then=lambda settings: h.run_backtest(settings, first, last))

    # The live side really saw every bar, live (no replay, no drops, nothing late).
    for name, w in live.workers.items():
        assert w["replayed"] == 0 and w["overlap"] == 0 and w["dropped"] == {} and w["errors"] == 0, (name, w)
        assert w["bars"] > 5000, (name, w["bars"])
        # Every gate operation took its turn (config order per minute): none went ahead on a timeout.
        assert w["turns"]["turn_timeouts"] == 0 and w["turns"]["turn_errors"] == 0, (name, w["turns"])
    hub = (live.hub or {}).get("counters", {})
    assert hub.get("late") == 0 and hub.get("dropped") == 0 and hub.get("reconnects") == 0, hub

    backtest = results.accepted_keys(run)
    assert backtest, "no accepted order in the range: the comparison would prove nothing"
    assert live.orders == backtest
    # Entries the shared portfolio denied, and every ML veto decision (per strategy, with the
    # features it saw), match too: the strategies attempted the same trades on the same data.
    assert h.denied_keys(live.journal) == [
        (o.strategy, o.symbol, o.side, o.kind, o.bar_start, o.reason) for o in results.orders(run) if o.decision == "denied"]
    assert h.veto_keys_live(live.vetoes) == h.veto_keys_backtest(run.decisions)
