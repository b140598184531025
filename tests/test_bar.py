"""The bar message: round trip and the boundary checks every consumer relies on."""

from __future__ import annotations

import json
import random
import struct
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


_KEYS = sorted(GOOD)
_FLOATS = (0.0, -0.0, 1.0, -1.0, 1e9, 1e-9, 5e-324, 1.7976931348623157e308, float("nan"), float("inf"), float("-inf"))


def _any_text(rng: random.Random, n: int) -> str:
    """Text of any code points (surrogates included), mostly ASCII so JSON-looking bits occur."""
    wide = rng.random() < 0.5
    return "".join(chr(rng.randrange(0x110000)) if wide and rng.random() < 0.5 else chr(rng.randrange(32, 127))
                   for _ in range(rng.randrange(n + 1)))


def _any_value(rng: random.Random) -> object:
    roll = rng.random()
    if roll < 0.1:
        return None
    if roll < 0.2:
        return rng.random() < 0.5
    if roll < 0.45:  # any size, edges included (st.integers() is unbounded)
        return rng.choice((0, 1, -1, 2**63, -(2**63) - 1, rng.randint(-(2**70), 2**70) >> rng.randrange(71)))
    if roll < 0.7:  # any double: special values, or any 64-bit pattern (NaN payloads, subnormals)
        return rng.choice(_FLOATS) if rng.random() < 0.3 else struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
    return _any_text(rng, 30)


def _payload(rng: random.Random) -> object:
    roll = rng.random()
    if roll < 1 / 3:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(301)))
    if roll < 2 / 3:
        return _any_text(rng, 300)
    # Half start from GOOD (a few fields replaced or dropped), so decodable bars occur and the
    # ordering assertion below is exercised, not only the BarError path.
    doc = dict(GOOD) if rng.random() < 0.5 else {}
    for _ in range(rng.randrange(1, len(_KEYS) + 1) if not doc else rng.randrange(1, 4)):
        key = rng.choice(_KEYS)
        if doc and rng.random() < 0.2:
            doc.pop(key, None)
        else:
            doc[key] = _any_value(rng)
    return doc


# The input space of st.one_of(binary(<=300), text(<=300), dictionaries(GOOD's keys, none|bool|int|
# float|text(<=30))), drawn from a hypothesis seed: hypothesis's own text/binary/dict strategies cost
# ~3 ms of CPU per example here (~10 ms wall on the loaded box, 20 s for 2000), a seeded draw ~0.6 ms.
@settings(max_examples=2000, deadline=None)
@given(st.integers(0, 2**64).map(lambda seed: _payload(random.Random(seed))))
def test_decoder_never_raises_anything_but_bar_error(payload: object) -> None:
    data = json.dumps(payload) if isinstance(payload, dict) else payload
    try:
        bar = Bar.from_json(data)  # type: ignore[arg-type]
    except BarError:
        return
    assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
