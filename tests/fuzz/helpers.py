"""Shared machinery for the property-based decoder tests.

Every decoder at a process boundary has exactly two allowed outcomes for any
input: a valid object, or its documented error type. :func:`fuzz` runs a
hypothesis property over ``n`` inputs and *counts* both outcomes; anything else
(another exception type) fails the test, naming the input and hypothesis's seed.
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


class Gen:
    """A case generator: ``build(rng)`` makes one input from a ``random.Random``. ``fuzz`` draws one
    seed per hypothesis example and makes PER_EXAMPLE inputs from it. Hypothesis's own
    machinery costs ~0.3 ms an example (its choice tree, saving and restoring the global PRNG, the
    executor), several times what most decoders here cost per input; a seed per input made that
    most of the fuzzers' CPU. Seeds differ per example (hypothesis keeps a run's examples apart)
    and each example's inputs come from one stream: inputs repeat only where a generator's domain
    is small (a few hundred lengths, the empty string), and ``fuzz`` asserts that most differ
    (10 inputs from a hypothesis list per example were tried: ~15% distinct)."""

    def __init__(self, build: Callable[[random.Random], Any]) -> None:
        self.build = build

    def __call__(self, rng: random.Random) -> Any:
        return self.build(rng)

    def map(self, f: Callable[[Any], Any]) -> "Gen":
        build = self.build
        return Gen(lambda rng: f(build(rng)))


def one_of(*gens: Gen) -> Gen:
    """Each input from one of ``gens``, picked uniformly."""
    return Gen(lambda rng: rng.choice(gens)(rng))


def ints(lo: int, hi: int) -> Gen:
    """An int in [lo, hi], its bounds and their neighbours a fifth of the time (where hypothesis's
    integers look first)."""
    edges = sorted({lo, min(lo + 1, hi), max(hi - 1, lo), hi})
    return Gen(lambda rng: rng.choice(edges) if rng.random() < 0.2 else rng.randint(lo, hi))


PER_EXAMPLE = 10


def fuzz(
    gen: Gen | st.SearchStrategy[Any],
    decode: Callable[[Any], Any],
    errors: type[BaseException] | tuple[type[BaseException], ...],
    n: int,
    check: Callable[[Any, Any], None] = lambda inp, out: None,
    min_distinct: float = 0.5,
) -> Counter[str]:
    """Run ``decode`` on ``n`` generated inputs; return {'ok': .., 'error': ..}.

    ``check(input, output)`` validates every successful result (e.g. re-encodes it). A ``Gen``
    makes PER_EXAMPLE inputs per hypothesis example (one seed); a hypothesis strategy, one. At
    least ``min_distinct`` of the inputs must differ (by ``repr``): a count of cases that repeats
    itself proves less than it says. A failure names its input (an exception note) and
    hypothesis its seed: ``Gen.build(random.Random(seed))`` makes the same inputs again.
    """
    counts: Counter[str] = Counter()
    seen: set[int] = set()

    def one(inp: Any) -> None:
        seen.add(hash(repr(inp)))
        try:
            out = decode(inp)
        except errors:
            counts["error"] += 1
            return
        except Exception as e:
            e.add_note(f"fuzz input: {inp!r:.500}")
            raise
        try:
            check(inp, out)
        except AssertionError as e:
            e.add_note(f"fuzz input: {inp!r:.500}")
            raise
        counts["ok"] += 1

    if isinstance(gen, Gen):
        @settings(max_examples=-(-n // PER_EXAMPLE), **_SETTINGS)
        @given(st.integers(0, 2**64))
        def prop(seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(PER_EXAMPLE):
                one(gen(rng))
    else:
        @settings(max_examples=n, **_SETTINGS)
        @given(gen)
        def prop(inp: Any) -> None:
            one(inp)

    prop()
    total = counts["ok"] + counts["error"]
    assert len(seen) >= min_distinct * total, f"only {len(seen)} distinct inputs of {total}"
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


# Hypothesis's own recursive strategies cost ~6 ms per example here; random_json driven by a seed
# hypothesis draws (cheap, reproducible, derandomized in CI) ~0.4 ms, ten per seed less again.
json_values = Gen(random_json)


def dumps_loose(doc: Any) -> str:
    """json.dumps that also emits NaN/Infinity (Python's json accepts them back)."""
    return json.dumps(doc, allow_nan=True)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def seeded(build: Callable[[random.Random], Any]) -> Gen:
    """``build(rng)`` as a case generator (``fuzz`` draws the seeds)."""
    return Gen(build)


def random_bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randrange(n + 1)))
