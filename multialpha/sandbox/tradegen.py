"""One trading day's synthetic trades of one root, in the DBN ``TradeMsg`` layout.

Separate from market.py, which decides *what* exists (trading days, the daily
anchor path, which contracts are listed, caches) and serves trades and bars: this
module is only the per-day generator, a pure function of its arguments. Given
the day's PRNG (seeded by seed, root, day), the listed instruments, the root's
profile and the anchors the day opens and closes at, it draws trade times
(seasonal intensity with bursts), the underlying's Brownian bridge from ``p0`` to
``p1``, which instrument each trade hits, and each instrument's price as a linear
function of the underlying (carry counted from one fixed reference month).
"""

from __future__ import annotations

import zlib
from datetime import date
from functools import lru_cache

import numpy as np

from multialpha import cme_time
from multialpha.contracts import Contract
from multialpha.sandbox import profiles
from multialpha.sandbox.aggregate import PUBLISHER_ID, TRADE_DTYPE
from multialpha.sandbox.listing import Instrument


@lru_cache(maxsize=64)
def _size_table(mean: float) -> np.ndarray:
    """256 quantiles of a geometric(1/mean) size: a byte of randomness per trade size."""
    q = (np.arange(256) + 0.5) / 256
    p = 1.0 / mean
    return np.maximum(1, np.ceil(np.log1p(-q) / np.log1p(-p))).astype(np.uint32) if p < 1 else np.ones(256, np.uint32)


def seeded_rng(*parts: int) -> np.random.Generator:
    """A PRNG seeded by ``parts`` (each taken mod 2**32): same parts, same draws."""
    return np.random.default_rng(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts]))


def name_code(text: str) -> int:
    """A stable integer for a name (CRC-32), to seed by root."""
    return zlib.crc32(text.encode())


def day_trades(
    rng: np.random.Generator,
    day: date,
    insts: list[Instrument],
    prof: profiles.Profile,
    tick: float,
    p0: float,
    p1: float,
    ref: Contract,
    thin: int,
) -> np.ndarray:
    """Trades (TRADE_DTYPE, sorted by ts_recv) of ``insts`` on trading day ``day``.

    ``p0``/``p1``: the underlying at the previous and this day's close (the anchors);
    ``ref``: the month priced at the underlying (carry counts from it); ``thin``: 1, or
    HISTORY_THIN for deep history (1/thin as many trades, thin x the size).
    """
    open_, close = cme_time.session_bounds(day)
    open_ns = cme_time.to_ns(open_)
    nmin = int((cme_time.to_ns(close) - open_ns) // cme_time.MINUTE_NS)

    # Intensity per minute: seasonality (Chicago clock), day activity, bursts.
    local_open = open_.astimezone(cme_time.CHICAGO)
    mod = (local_open.hour * 60 + local_open.minute + np.arange(nmin)) % 1440
    lam = profiles.SEASONALITY[mod] * (prof.trades_per_day / 1380.0 / thin)
    lam *= float(np.exp(rng.normal(0.0, 0.25)))
    for b in rng.integers(0, nmin, rng.poisson(3.0)):
        k = np.arange(min(15, nmin - b))
        lam[b : b + len(k)] *= 1.0 + 6.0 * np.exp(-k / 3.0)
    counts = rng.poisson(lam)
    n = int(counts.sum())

    minute = np.repeat(np.arange(nmin, dtype=np.int64), counts)
    offset = rng.integers(0, 59_990_000_000, n)
    ts_event = np.sort(open_ns + minute * cme_time.MINUTE_NS + offset)
    latency = rng.integers(5_000, 400_000, n)
    # Capture order = exchange order: ts_recv strictly increasing (ties broken by
    # 1 ns), still inside the minute (offsets leave 10 ms of headroom).
    k = np.arange(n, dtype=np.int64)
    ts_recv = np.maximum.accumulate(ts_event + latency - k) + k

    # Underlying (front) path: a bridge from yesterday's anchor to today's.
    steps = rng.standard_normal(n, dtype=np.float32)
    walk = np.cumsum(steps, dtype=np.float64) * (prof.daily_vol * p0 / np.sqrt(max(n, 1)))
    k = np.arange(1, n + 1) / max(n, 1)
    under = p0 + walk - k * ((walk[-1] if n else 0.0) - (p1 - p0))

    # Which instrument each trade hits.
    shares = np.array([i.share for i in insts])
    pick = np.searchsorted(np.cumsum(shares) / shares.sum(), rng.random(n), side="right")
    pick = np.minimum(pick, len(insts) - 1)
    # Carry is counted from one fixed month per root (the front on from_date, priced at the
    # underlying), never from the day's front: a contract's price must not jump when another
    # month becomes the front. (It did: the front was always priced at the underlying, so at a
    # roll every listed month jumped by the calendar spread and the front series showed no gap.)
    months0 = ref.year * 12 + ref.month
    tick_ns = int(round(tick * 1e9))
    sizes = _size_table(prof.mean_size * thin)[rng.integers(0, 256, n, dtype=np.uint8)]

    # Each instrument's price is a linear function of the underlying:
    # outright c: x * f(c); spread (near, far): x * (f(near) - f(far)).
    def f(c: Contract) -> float:
        return 1.0 + prof.carry * ((c.year * 12 + c.month) - months0) / 12.0

    coef = np.array([f(i.legs[0]) - (f(i.legs[1]) if i.is_spread else 0.0) for i in insts])
    floor = np.array([-(2**62) if i.is_spread else 1 for i in insts], dtype=np.int64)
    ticks = np.maximum(np.rint(under * coef[pick] / tick).astype(np.int64), floor[pick])
    sizes *= np.array([2 if i.is_spread else 1 for i in insts], dtype=np.uint32)[pick]

    step_sign = np.sign(np.diff(under, prepend=p0))
    side = np.where(step_sign > 0, b"B", b"A")

    t = np.zeros(n, TRADE_DTYPE)
    t["length"] = TRADE_DTYPE.itemsize // 4
    t["rtype"] = 0  # mbp-0
    t["publisher_id"] = PUBLISHER_ID
    t["instrument_id"] = np.array([i.instrument_id for i in insts], dtype=np.uint32)[pick]
    t["ts_event"] = ts_event
    t["price"] = ticks * tick_ns
    t["size"] = sizes
    t["action"] = b"T"
    t["side"] = side
    t["ts_recv"] = ts_recv
    t["ts_in_delta"] = 8_000 + latency % 22_000  # derived: saves two PRNG draws per trade
    t["sequence"] = 1000 + np.cumsum(1 + offset % 19)
    return t
