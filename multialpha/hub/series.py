"""One root's open 1-minute bar, held in Databento's fixed-point prices.

A ``Series`` is the per-root state the aggregator (hub/aggregator.py) updates on every
trade: the open minute, its O/H/L/C still in 1e-9 fixed point, volume, trade count,
contract, and the last minute published. It also knows its tick, so it rounds each
field to the tick once, when the bar closes. Separate from the aggregator so the state
of one bar (and its fixed-point scale) reads apart from the loop that feeds it; the
resolver (hub/resolver.py) routes instrument ids to these objects.
"""

from __future__ import annotations

from decimal import Decimal

from multialpha import cme_time
from multialpha.bar import MAX_PRICE

MINUTE = cme_time.MINUTE_NS
PX = 1_000_000_000  # Databento fixed-point scale
PMAX = int(MAX_PRICE) * PX  # also excludes UNDEF_PRICE (2**63 - 1 > 1e18)
_PRICES_KEPT = 4096  # price levels cached per series



class Series:
    """One root's open bar (prices still in fixed point) and its history mark."""

    __slots__ = ("root", "tick", "digits", "minute", "end", "o", "h", "l", "c", "v", "n", "contract", "last_pub", "pmin",
                 "prev", "half", "prices")

    def __init__(self, root: str, tick_size: float, prev: bool = False) -> None:
        self.root = root
        self.prev = prev  # the previous front after a roll (published on Keys.prev_bars)
        self.tick = int(round(Decimal(repr(tick_size)) * PX))
        if self.tick <= 0:
            raise ValueError(f"{root}: tick {tick_size} below 1e-9")
        self.pmin = self.tick - self.tick // 2  # lowest fixed price that does not round to 0 at the tick
        self.digits = max(0, -Decimal(repr(tick_size)).normalize().as_tuple().exponent)  # type: ignore[operator]
        self.half = self.tick // 2
        # ticks -> float price: a root trades a few hundred price levels a day, and round() is
        # most of a bar's closing cost on a thin market (4 fields per bar)
        self.prices: dict[int, float] = {}
        self.minute = -1  # start ns of the open bar, -1 = none
        self.end = -1  # its end (minute + 60 s), -1 = none
        self.o = self.h = self.l = self.c = self.v = self.n = 0
        self.contract = ""
        self.last_pub = -1  # start ns of the last bar emitted (or found in the bar log)

    def price(self, fixed: int) -> float:
        """Fixed point -> float rounded (half up) to the tick, once per bar field."""
        q = (fixed + self.half) // self.tick
        try:
            return self.prices[q]
        except KeyError:
            if len(self.prices) >= _PRICES_KEPT:
                self.prices.clear()  # a runaway market: start over rather than grow
            px = self.prices[q] = round(q * self.tick / PX, self.digits)
            return px
