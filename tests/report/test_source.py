"""Journal events -> fills: outcomes decide what reached the market; bad entries are skipped."""

from __future__ import annotations

import logging

from multialpha import config as cfg
from multialpha.report import source
from tests.conftest import SHIPPED_CONFIG

SETTINGS = cfg.load(SHIPPED_CONFIG, environ={})


def intent(oid: str, kind: str = "entry", **kw: str) -> dict[str, str]:
    return {"id": f"1-{oid}", "event": "intent", "order_id": oid, "strategy": "breakout", "symbol": "ES",
            "kind": kind, "side": "long", "quantity": "1", "price": "6000.25", "contract": "ESZ5",
            "bar_start": "2025-12-02T15:00:00Z", **kw}


def outcome(oid: str, result: str) -> dict[str, str]:
    return {"event": "outcome", "order_id": oid, "result": result}


def test_outcomes_decide_what_is_a_fill() -> None:
    events = [
        intent("a", fill_price="6000.5"), outcome("a", "paper"),
        intent("b"), outcome("b", "rejected"),  # the broker refused it: no position
        intent("c"), outcome("c", "ambiguous"),  # the gate keeps it on the book: so does the report
        intent("d"), outcome("d", "failed"), {"event": "reviewed", "order_id": "d"},  # an operator said filled
        {"event": "denied", "kind": "entry", "order_id": "e"}, {"event": "expired", "kind": "entry", "order_id": "f"},
    ]
    fills, denied = source.fills(SETTINGS, events)
    assert [f for f in fills if f.fill_price is not None][0].fill_price == 6000.5
    assert sorted(f.signal_price for f in fills) == [6000.25] * 3
    assert len(fills) == 3 and denied == 2
    [a] = [f for f in fills if f.fill_price is not None]
    assert a.at.isoformat() == "2025-12-02T15:01:00+00:00"  # the signal bar's close
    assert (a.tick, a.multiplier, a.commission) == (0.25, 50.0, SETTINGS.commission("breakout", "ES"))


def test_a_malformed_entry_is_logged_and_skipped(caplog) -> None:
    events = [intent("a", price="not-a-number"), intent("b", symbol="XX"), intent("c", quantity=""),
              intent("d")]
    with caplog.at_level(logging.WARNING, logger="multialpha.report.source"):
        fills, _ = source.fills(SETTINGS, events)
    assert [f.signal_price for f in fills] == [6000.25]  # only d
    assert caplog.text.count("journal entry 1-") == 3 and "1-a" in caplog.text and "1-b" in caplog.text
