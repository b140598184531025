"""OrderIntent: TradersPost actions, validation, deterministic ids."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.orders.support import intent


def test_actions():
    assert intent(side="long").action == "buy"
    assert intent(side="short").action == "sell"
    assert intent(kind="exit", side="long").action == "exit"
    assert intent(kind="exit", side="short").action == "exit"


def test_order_id_is_deterministic_and_discriminating():
    base = intent()
    assert base.order_id == intent(reason="other text", price=1.0).order_id  # same bar, same action
    assert len({
        base.order_id,
        intent(strategy="ibs_b").order_id,
        intent(symbol="NQ").order_id,
        intent(side="short").order_id,
        intent(kind="exit").order_id,
        intent(bar_start=base.bar_start + timedelta(minutes=1)).order_id,
    }) == 6
    # The instant matters, not its timezone spelling.
    from zoneinfo import ZoneInfo

    same = intent(bar_start=base.bar_start.astimezone(ZoneInfo("America/Chicago")))
    assert same.order_id == base.order_id


@pytest.mark.parametrize("bad", [
    {"quantity": 0}, {"quantity": -1}, {"quantity": 1.5}, {"price": float("nan")}, {"price": 0.0},
    {"side": "flat"}, {"kind": "cancel"}, {"bar_start": datetime(2025, 12, 10, 15, 29)}, {"strategy": "a:b"},
])
def test_invalid_intents_raise(bad):
    with pytest.raises(ValueError):
        intent(**bad)


def test_aware_bar_start_required():
    assert intent(bar_start=datetime(2025, 12, 10, 15, 29, tzinfo=timezone.utc)).bar_start.tzinfo
