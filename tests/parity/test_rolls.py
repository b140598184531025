"""Live ≡ backtest across contract rolls, with positions open at the roll, for each roll policy.

One `multialpha up` run over sandbox trading days 2025-12-05 .. 12-11 (the FX roll on 12-08,
the equity-index roll on 12-11) with three workers of the test strategy ``roll_holder``
(tests/backtest/roll_plugin.py: long on its first live hour of each symbol, never exits on its
own), one per roll policy and each on its own equity index and currency: whatever happens to a
position at a roll is the runtime's roll policy. The plugin reaches the `up`-started workers the
way any third-party plugin does: an installed distribution's ``multialpha`` entry point (a
dist-info directory on PYTHONPATH). The backtest runs the same days, same config.

Asserted: the accepted orders are identical in order (strategy, symbol, side, kind, bar start,
quantity) and so are their contract, price and reason; each policy did what it says; every exit
names the contract its entry opened and every order is priced at its own contract's bar close
from the hub's bar logs (front or previous front).
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import pytest

from multialpha import plugins
from multialpha.backtest import results
from tests.backtest import roll_plugin
from tests.conftest import REPO
from tests.parity import helpers as h

SPEED = 3000.0  # one cheap strategy on two symbols per worker keeps up (asserted below)
FIRST, LAST = date(2025, 12, 5), date(2025, 12, 11)
POLICIES = {  # strategy -> (policy, equity index, currency)
    "fwd": ("forward", "ES", "6S"),
    "exiter": ("exit", "NQ", "6E"),
    "holder": ("hold", "RTY", "6J"),
}


@pytest.fixture
def holder_plugin() -> Iterator[None]:
    """In this process (the backtest): registered directly."""
    pm = plugins.get_plugin_manager()
    pm.register(roll_plugin, name="test-roll-holder")
    yield
    pm.unregister(name="test-roll-holder")


def install_plugin(site: Path) -> str:
    """A distribution with a ``multialpha`` entry point, found by importlib.metadata on sys.path."""
    dist = site / "multialpha_test_roll_holder-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: multialpha-test-roll-holder\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[multialpha]\ntest-roll-holder = tests.backtest.roll_plugin\n")
    return str(site)


def strategies() -> dict[str, Any]:
    return {name: {"strategy_type": "roll_holder", "enabled": True, "roll": {"policy": policy},
                   "webhook_url_env": f"TEST_ROLL_{name.upper()}_URL",
                   "instruments": {index: {"size": 1}, fx: {"size": 2}}}
            for name, (policy, index, fx) in POLICIES.items()}


def live_orders(journal: list[dict[str, str]]) -> list[tuple[str, ...]]:
    return [(j["strategy"], j["symbol"], j["side"], j["kind"], j["bar_start"], j["quantity"], j["contract"],
             repr(float(j["price"])), j["signal_reason"]) for j in journal if j.get("event") == "intent"]


@pytest.mark.slow
def test_live_equals_backtest_across_the_rolls_with_each_policy(tmp_path: Path, sandbox_store: Path, holder_plugin: None) -> None:
    # Room for all six positions, and no daily stop: it would flatten them before the rolls.
    cfg = h.write_config(tmp_path, FIRST, {"max_positions": 6, "daily_stop_loss": 1e9}, strategies=strategies(),
                         reference_feeds={}, ml_veto={"mode": "off"})
    path = os.pathsep.join(filter(None, [install_plugin(tmp_path / "site"), str(REPO), os.environ.get("PYTHONPATH")]))
    live, run = h.run_live(cfg, h.env_for(tmp_path, sandbox_store, {"PYTHONPATH": path}), FIRST, LAST, SPEED,
                           then=lambda settings: h.run_backtest(settings, FIRST, LAST), bar_logs=True)

    for name, w in live.workers.items():  # every bar seen live, in turn
        assert w["replayed"] == 0 and w["dropped"] == {} and w["errors"] == 0, (name, w)
        assert w["turns"]["turn_timeouts"] == 0, (name, w["turns"])
    hub = (live.hub or {}).get("counters", {})
    assert hub.get("late") == 0 and hub.get("dropped") == 0 and hub.get("prev_bars", 0) > 0, hub

    # live ≡ backtest: the same orders, in the same contracts, at the same prices, for the same reasons
    assert live.orders == results.accepted_keys(run)
    backtest = [(o.strategy, o.symbol, o.side, o.kind, o.bar_start, str(o.quantity), o.contract, repr(o.price),
                 o.signal_reason) for o in results.orders(run) if o.decision == "accepted"]
    assert live_orders(live.journal) == backtest

    # Each contract at its own price: the close of that contract's newest bar at the order's bar (a
    # roll's re-entry is priced at the new front's latest close, which may be a quiet minute earlier);
    # every exit closes what its entry opened.
    def own_close(symbol: str, contract: str, at: str) -> float:
        starts = [t for (s, c, t) in live.bar_closes if (s, c) == (symbol, contract) and t <= at]
        assert starts, (symbol, contract, at)
        return live.bar_closes[(symbol, contract, max(starts))]

    held: dict[tuple[str, str], str] = {}
    for j in (j for j in live.journal if j.get("event") == "intent"):
        assert float(j["price"]) == own_close(j["symbol"], j["contract"], j["bar_start"]), j
        if j["kind"] == "entry":
            held[(j["strategy"], j["symbol"])] = j["contract"]
        else:
            assert held.pop((j["strategy"], j["symbol"])) == j["contract"], j

    # What each policy did at the rolls (FX on 12-08, equity indices on 12-11).
    tagged = [(j["strategy"], j["symbol"], j["kind"], j["contract"], j["signal_reason"].split(":")[0])
              for j in live.journal if j.get("event") == "intent" and ":" in j["signal_reason"]]
    assert sorted(tagged) == sorted([
        ("fwd", "6S", "exit", "6SZ5", "roll"), ("fwd", "6S", "entry", "6SH6", "roll"),
        ("exiter", "6E", "exit", "6EZ5", "roll"),
        ("holder", "6J", "exit", "6JZ5", "expiry"),  # hold: its old contract's last overlap day, 12-09
        ("fwd", "ES", "exit", "ESZ5", "roll"), ("fwd", "ES", "entry", "ESH6", "roll"),
        ("exiter", "NQ", "exit", "NQZ5", "roll"),
    ]), tagged  # (in bar order, which live and backtest share: asserted above)
    # hold: RTY is still held in RTYZ5 at the end (its last overlap day, 12-12, is after the range)
    assert held == {("fwd", "6S"): "6SH6", ("fwd", "ES"): "ESH6", ("holder", "RTY"): "RTYZ5"}, held
