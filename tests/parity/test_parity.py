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

FIRST, LAST = date(2025, 12, 1), date(2025, 12, 2)  # Mon-Tue: 2 sessions, ~40k live bars
SPEED = 1500.0  # ~55 wall s per trading day; hub and workers keep up (no drops, no late bars: asserted)


@pytest.mark.slow
def test_live_orders_equal_backtest(tmp_path: Path) -> None:
    cfg = h.write_config(tmp_path, FIRST)
    live, run = h.run_live(cfg, h.env_for(tmp_path), FIRST, LAST, SPEED,
                           then=lambda settings: h.run_backtest(settings, FIRST, LAST))

    # The live side really saw every bar, live (no replay, no drops, nothing late).
    for name, w in live.workers.items():
        assert w["replayed"] == 0 and w["overlap"] == 0 and w["dropped"] == {} and w["errors"] == 0, (name, w)
        assert w["bars"] > 5000, (name, w["bars"])
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
