"""Hub bar-log entries (publisher.bar_from_log): any stream entry -> Bar or BarError.

Entries come back from Redis as field -> bytes (or str with decode_responses);
a worker catching up after a restart reads whatever is there.
"""

from __future__ import annotations

import random

from multialpha.bar import Bar, BarError
from multialpha.hub.publisher import FIELDS, bar_from_log
from tests.fuzz.helpers import CASES, dumps_loose, fuzz, random_bytes, random_json, random_text, seeded
from tests.fuzz.test_bar_json import valid_doc

NUMERIC = ("open", "high", "low", "close", "volume", "trades")


def as_entry(doc: dict) -> dict:
    """What Publisher writes: numbers as JSON text, strings raw."""
    return {k: (dumps_loose(v) if k in NUMERIC else str(v)) for k, v in doc.items()}


def raw_value(rng: random.Random) -> str | bytes:
    roll = rng.random()
    if roll < 0.2:
        return random_bytes(rng, 40)
    if roll < 0.4:
        return random_text(rng, 40)
    if roll < 0.55:
        return str(rng.randint(-(2**70), 2**70))
    if roll < 0.75:
        return rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "-0", "[]", "{}", "null", "true", "9" * 5000,
                           "[" * 3000, "1.5", "0x10", " 7 ", "1_000"])
    return dumps_loose(random_json(rng))


def entry(rng: random.Random) -> dict:
    fields = as_entry(valid_doc(rng))
    for _ in range(rng.randint(0, 3)):
        key = rng.choice(FIELDS + ("extra",))
        if rng.random() < 0.5:
            fields.pop(key, None)
        else:
            fields[key] = raw_value(rng)
    if rng.random() < 0.5:  # redis-py without decode_responses
        fields = {k.encode(): (v if isinstance(v, bytes) else v.encode("utf-8", "surrogatepass")) for k, v in fields.items()}
    return fields


def _decode(fields: dict) -> Bar:
    try:
        return bar_from_log(fields)
    except UnicodeDecodeError as e:  # bytes that are not UTF-8: still must be a BarError
        raise AssertionError(f"UnicodeDecodeError escaped: {e}") from None


def test_any_log_entry_is_a_bar_or_bar_error():
    counts = fuzz(seeded(entry), _decode, BarError, CASES, lambda i, b: _same(b, Bar.from_dict(b.to_dict())))
    print(f"\nbar log: {sum(counts.values())} cases, {counts['ok']} bars, {counts['error']} BarError")
    assert sum(counts.values()) >= CASES and counts["ok"] > 100 and counts["error"] > 1000


def test_non_utf8_and_deep_values_are_bar_errors():
    base = as_entry({"symbol": "ES", "timestamp": "2025-11-09T20:00:00Z", "open": 1, "high": 1, "low": 1,
                     "close": 1, "volume": 1})
    for k, v in (("symbol", b"\xff\xfe"), ("open", b"\xff"), ("open", "[" * 5000), ("volume", "9" * 5000)):
        try:
            bar_from_log({**base, k: v})
        except BarError:
            continue
        raise AssertionError(f"{k}={v!r:.40} accepted")


def _same(a: Bar, b: Bar) -> None:
    assert a == b
