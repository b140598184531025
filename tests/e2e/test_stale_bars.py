"""Stale bars under a real `multialpha up` (issue: money-safe order lifecycle): the sandbox gateway
resets the hub's connection and refuses reconnects for 4 sim-minutes; when it is back the hub
republishes the gap's minutes with ``source: replay``. With ``worker.trade_replayed_bars`` off (the
default; the rig turns it on for its other scenarios) no entry comes from any of those bars, while
the market data stays exactly the reference's."""

from __future__ import annotations

from datetime import timedelta

import pytest

from multialpha import cme_time
from multialpha.sandbox import control
from tests.e2e import up_rig as R

pytestmark = pytest.mark.slow
GAP = timedelta(minutes=4)


def test_hub_replay_bars_after_a_gateway_reset_open_nothing(up_base, up_cache, up_reference) -> None:
    run = R.new_run(up_base, "stale-replay", up_cache)
    run.env["MULTIALPHA__WORKER__TRADE_REPLAYED_BARS"] = "false"
    try:
        run.begin()
        run.settle(R.FAULT_AT)
        st = run.sandbox()
        control.fault(st, "refuse")
        control.fault(st, "rst")
        R.poll("hub disconnected", lambda: (run.hb("hub") or {}).get("state") != "connected", context=run.tail)
        run.advance_to(R.FAULT_AT + GAP)
        control.fault(st, "accept")
        R.poll("hub reconnected", lambda: (run.hb("hub") or {}).get("state") == "connected", context=run.tail)
        out = run.finish("gateway reset, 4 sim-min refused, replay not traded")
        full = run.journal()
        sourced = run.bars(keep_source=True)
    finally:
        run.stop()
        run.rx.down()
    # Which minutes the hub republished (its bar log keeps each bar's source).
    replayed = {(sym, ms) for sym, rows in sourced.items()
                for ms, f in rows.items() if f.get("source") == "replay"}
    assert replayed, "the outage must leave minutes for the hub to replay"
    entries = [e for e in full if e.get("event") == "intent" and e.get("kind") == "entry"]
    on_replay = [e for e in entries
                 if (e["symbol"], cme_time.to_ms(cme_time.parse_iso(e["bar_start"]))) in replayed]
    assert on_replay == [], on_replay
    # The reference traded an entry in those minutes (as live bars): the scenario proves something.
    ref_entries = [e for e in up_reference.journal if e.get("event") == "intent" and e.get("kind") == "entry"
                   and (e["symbol"], cme_time.to_ms(cme_time.parse_iso(e["bar_start"]))) in replayed]
    stale = sum(int(w.get("stale_entries") or 0) for w in out.workers.values())
    assert ref_entries or stale, "no signal fell in the replayed minutes: widen GAP"
    # Market data: every bar the reference has, unchanged (the replay filled the gap exactly).
    d = R.compare(up_reference, out, full)
    assert (d["missing"], d["changed"], d["extra"], d["dup_published"]) == (0, 0, 0, 0), d
    assert d["lost"] == 0 and d["delivered_twice"] == 0, d
