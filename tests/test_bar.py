"""The bar message: round trip and the boundary checks every consumer relies on."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multialpha.bar import Bar, BarError
from multialpha.cme_time import UTC

GOOD = {"symbol": "ES", "timestamp": "2025-11-09T20:00:00Z", "open": 4500.25, "high": 4501.5,
        "low": 4499.75, "close": 4500.0, "volume": 1250, "contract": "ESZ5", "trades": 311, "source": "live"}


def test_round_trip_matches_the_contract() -> None:
    bar = Bar.from_json(json.dumps(GOOD))
    assert bar.start == datetime(2025, 11, 9, 20, 0, tzinfo=UTC)
    assert bar.start_ms == 1_762_718_400_000
    assert json.loads(bar.to_json()) == GOOD


@pytest.mark.parametrize(
    "patch",
    [
        {"open": float("nan")}, {"high": float("inf")}, {"low": -1}, {"close": 0}, {"open": 1e12},
        {"open": "4500"}, {"volume": -5}, {"volume": 1.5}, {"volume": True}, {"trades": -1},
        {"timestamp": "2025-11-09T20:00:30Z"}, {"timestamp": "2025-11-09T20:00:00"}, {"timestamp": 1},
        {"symbol": ""}, {"symbol": 5}, {"source": "made-up"}, {"high": 4490.0}, {"low": 4502.0},
    ],
)
def test_insane_bars_are_rejected(patch: dict) -> None:
    with pytest.raises(BarError):
        Bar.from_json(json.dumps({**GOOD, **patch}))


@pytest.mark.parametrize("payload", ["", "{", "[]", "null", '"x"', "{}", "x" * 5000, b"\xff\xfe"])
def test_garbage_is_rejected(payload: str | bytes) -> None:
    with pytest.raises(BarError):
        Bar.from_json(payload)


def test_missing_field_is_named() -> None:
    doc = dict(GOOD)
    del doc["close"]
    with pytest.raises(BarError, match="close"):
        Bar.from_json(json.dumps(doc))


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300),
                 st.dictionaries(st.sampled_from(list(GOOD)), st.one_of(
                     st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30)))))
def test_decoder_never_raises_anything_but_bar_error(payload: object) -> None:
    data = json.dumps(payload) if isinstance(payload, dict) else payload
    try:
        bar = Bar.from_json(data)  # type: ignore[arg-type]
    except BarError:
        return
    assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
