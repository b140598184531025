"""Bar JSON (multialpha/bar.py): any payload -> Bar or BarError, never anything else."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta, timezone


from multialpha import cme_time
from multialpha.bar import MAX_PAYLOAD, SOURCES, Bar, BarError
from tests.fuzz.helpers import (
    CASES, dumps_loose, fuzz, ints, json_values, nested, one_of, random_bytes, random_json, random_text, seeded,
)

FIELDS = ("symbol", "timestamp", "open", "high", "low", "close", "volume", "contract", "trades", "source")
_EPOCH0, _EPOCH1 = -62135596800, 253402214400  # 0001-01-01 .. 9999-12-30 in Unix seconds


def valid_doc(rng: random.Random) -> dict:
    a, b, c, d = sorted(rng.choice((rng.uniform(1e-9, 1e4), rng.uniform(1, 1e9), 1e9, 1e-9)) for _ in range(4))
    o, cl = (b, c) if rng.random() < 0.5 else (c, b)
    start = datetime.fromtimestamp(rng.randrange(_EPOCH0, _EPOCH1) // 60 * 60, timezone.utc)
    return {
        "symbol": random_text(rng, 15) or "ES",
        "timestamp": cme_time.iso_z(start),
        "open": o, "high": d, "low": a, "close": cl,
        "volume": rng.choice((0, 1, 10**9, rng.randrange(10**9))),
        "contract": random_text(rng, 12),
        "trades": rng.choice((0, rng.randrange(10**6))),
        "source": rng.choice(sorted(SOURCES)),
    }


def odd_timestamp(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.3:
        return rng.choice([
            "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:00-01:00", "9999-12-31T23:59:00Z",
            "2025-11-09T20:00:00Z", "2025-11-09T20:00:30Z", "2025-11-09T20:00Z", "", "Z",
            "2025-11-09T20:00:00", "2025-11-09T20:00:00.000001Z", "2025-02-30T20:00:00Z", "0000-01-01T00:00:00Z",
        ])
    if roll < 0.6:
        return random_text(rng, 30)
    sec = rng.randrange(_EPOCH0 + 86400, _EPOCH1 - 86400) // rng.choice((1, 60))
    off = timezone(timedelta(minutes=rng.randrange(-1439, 1440)))
    return datetime.fromtimestamp(sec, off).isoformat()


def mutated_doc(rng: random.Random) -> dict:
    doc = valid_doc(rng)
    for _ in range(rng.randint(1, 3)):
        key = rng.choice(FIELDS + ("extra",))
        how = rng.random()
        if how < 0.25:
            doc.pop(key, None)
        elif how < 0.45:
            doc["timestamp"] = odd_timestamp(rng)
        elif how < 0.7:
            doc[key] = rng.choice((rng.randint(-(2**70), 2**70), 10 ** rng.randint(300, 1100), True, -0.0,
                                   float("nan"), float("inf"), rng.uniform(-1e12, 1e12)))
        else:
            doc[key] = random_json(rng)
    return doc


payloads = one_of(
    seeded(valid_doc).map(dumps_loose),
    seeded(mutated_doc).map(dumps_loose),
    seeded(mutated_doc).map(lambda d: dumps_loose(d).encode()),
    json_values.map(dumps_loose),
    seeded(lambda r: random_bytes(r, 300)),
    seeded(lambda r: random_text(r, 300)),
    ints(1, MAX_PAYLOAD // 2 + 10).map(nested),
    ints(1, MAX_PAYLOAD).map(lambda n: '{"symbol":' * n),
)


def _sane(inp, bar: Bar) -> None:
    assert isinstance(bar, Bar)
    assert bar.start.tzinfo is not None and bar.start.second == 0 and bar.start.microsecond == 0
    for p in (bar.open, bar.high, bar.low, bar.close):
        assert math.isfinite(p) and 0 < p <= 1e9
    assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
    assert Bar.from_json(bar.to_json()) == bar  # what a consumer accepts, it can re-encode


def test_valid_bars_always_decode_and_round_trip():
    counts = fuzz(seeded(valid_doc), lambda d: Bar.from_json(json.dumps(d)), (), 2_000, _sane)
    assert counts["ok"] == 2_000


def test_any_payload_is_a_bar_or_bar_error():
    counts = fuzz(payloads, Bar.from_json, BarError, CASES, _sane)
    print(f"\nbar JSON: {sum(counts.values())} cases, {counts['ok']} bars, {counts['error']} BarError")
    assert sum(counts.values()) >= CASES
    assert counts["ok"] > 100 and counts["error"] > 1000  # both outcomes really exercised


def test_known_edge_payloads():
    """Regression cases found by the fuzzer (each raised something other than BarError)."""
    base = {"symbol": "ES", "timestamp": "2025-11-09T20:00:00Z", "open": 1, "high": 1, "low": 1, "close": 1, "volume": 1}
    bad = [
        nested(2000),  # RecursionError inside json.loads
        json.dumps({**base, "open": 10**400}),  # float(int) OverflowError
        json.dumps({**base, "source": ["live"]}),  # unhashable source
        json.dumps({**base, "source": {"a": 1}}),
        json.dumps({**base, "timestamp": "0001-01-01T00:00:00+01:00"}),  # astimezone OverflowError
    ]
    for payload in bad:
        try:
            Bar.from_json(payload)
        except BarError:
            continue
        raise AssertionError(f"accepted {payload[:80]!r}")
    assert Bar.from_json(json.dumps(base)).start == datetime(2025, 11, 9, 20, tzinfo=timezone.utc)
    assert Bar.from_json(json.dumps({**base, "timestamp": "2025-11-09T21:00:00+01:00"})).start.hour == 20
    old = Bar.from_json(json.dumps({**base, "timestamp": "0111-01-01T00:00:00Z"}))
    assert Bar.from_json(old.to_json()) == old  # iso_z pads the year (glibc %Y does not)
    assert timedelta(0) == Bar.from_json(json.dumps(base)).start.utcoffset()
