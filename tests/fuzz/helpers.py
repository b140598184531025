"""Shared machinery for the property-based decoder tests.

Every decoder at a process boundary has exactly two allowed outcomes for any
input: a valid object, or its documented error type. :func:`fuzz` runs a
hypothesis property ``n`` times and *counts* both outcomes; anything else
(another exception type) fails the test with hypothesis's shrunk example.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any, Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Budget per decoder: >= 10,000 generated cases in total (issue 10).
CASES = 10_000

_SETTINGS = dict(
    deadline=None,
    database=None,  # no example database written into the checkout
    derandomize=True,  # CI reproducible: the same cases every run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def fuzz(
    strategy: st.SearchStrategy[Any],
    decode: Callable[[Any], Any],
    errors: type[BaseException] | tuple[type[BaseException], ...],
    n: int,
    check: Callable[[Any, Any], None] = lambda inp, out: None,
) -> Counter[str]:
    """Run ``decode`` on ``n`` generated inputs; return {'ok': .., 'error': ..}.

    ``check(input, output)`` validates every successful result (e.g. re-encodes it).
    One input per hypothesis example: hypothesis keeps the examples of a run distinct (a list of
    inputs per example was tried, and repeated seed 0 and its like: ~1,500 distinct of 10,000).
    """
    counts: Counter[str] = Counter()

    @settings(max_examples=n, **_SETTINGS)
    @given(strategy)
    def prop(inp: Any) -> None:
        try:
            out = decode(inp)
        except errors:
            counts["error"] += 1
            return
        check(inp, out)
        counts["ok"] += 1

    prop()
    return counts


# -- JSON-ish building blocks ------------------------------------------------------

_SCALARS: tuple[Any, ...] = (
    None, True, False, 0, -1, 1, 2**31, -(2**63), 2**63 - 1, 2**64, 10**400, -(10**30), 0.0, -0.0, 1e-320,
    1e308, 5e-324, float("nan"), float("inf"), float("-inf"), "", "0", "ES", "live", "ping", "restart",
    "2025-11-09T20:00:00Z", "\x00", "\ud800", "\u202e", "é" * 3, " " * 5,
)


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """One JSON-ish value (NaN/Infinity included): edge scalars, random numbers/text, small containers."""
    roll = rng.random()
    if depth < 3 and roll < 0.15:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    if depth < 3 and roll < 0.3:
        return {random_text(rng, 6): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}
    if roll < 0.55:
        return rng.choice(_SCALARS)
    if roll < 0.7:
        return rng.randint(-(2**70), 2**70) >> rng.randrange(70)
    if roll < 0.85:
        return rng.uniform(-1e10, 1e10) * 10 ** rng.randint(-20, 20)
    return random_text(rng, 30)


def random_text(rng: random.Random, n: int) -> str:
    alphabet = rng.choice(("abcXYZ019:-_.", "\x00\x7f\u00e9\u202e\ud7ff\ufffd{}[]\",:", "".join(map(chr, range(32, 127)))))
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(n + 1)))


# Hypothesis's own recursive strategies cost ~6 ms per example here; a seed drawn by
# hypothesis (cheap, reproducible, derandomized in CI) driving random_json costs ~0.4 ms.
json_values = st.integers(0, 2**64).map(lambda seed: random_json(random.Random(seed)))


def dumps_loose(doc: Any) -> str:
    """json.dumps that also emits NaN/Infinity (Python's json accepts them back)."""
    return json.dumps(doc, allow_nan=True)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def seeded(build: Callable[[random.Random], Any]) -> st.SearchStrategy[Any]:
    """A strategy whose example is ``build(Random(seed))`` for a hypothesis-drawn seed (cheap draws)."""
    return st.integers(0, 2**64).map(lambda seed: build(random.Random(seed)))


def random_bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randrange(n + 1)))
