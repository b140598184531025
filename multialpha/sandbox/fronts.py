"""Volume and open-interest ranks of the synthetic market: ``ROOT.v.N`` and ``ROOT.n.N``.

Databento's volume-rolled continuous symbol (``ES.v.0``) names, on trading day
``D``, the outright with the most volume on the **previous** trading day; the
open-interest one (``ES.n.0``) the outright with the most open interest at the
end of the previous trading day. The sandbox computes both from its own market:

- **volume**: the previous trading day's traded contracts per instrument, summed
  from the cached hourly aggregates of the very trades it serves (so a client
  that sums Historical ``ohlcv-1h`` over that session gets the same ranking).
  A day without generated data (before the history) falls back to the
  instruments' expected shares of that day.
- **open interest**: positions opened recently are still open, so a
  contract's open interest at the end of day ``d`` is the exponentially
  weighted sum (``OI_DECAY`` per trading day, ``OI_DAYS`` days) of its expected
  daily volume share. It builds up while a contract is busy and decays once
  volume has moved on, so the ``.n.0`` roll follows the volume roll by a few
  days, as on the exchange.

Because the market makes ``ContractMap.front`` the busiest outright of each day
and the next month takes over on the roll date, ``.v.0`` switches one trading
day after the calendar front (ES: ESH6 on trading day 2025-12-12).
Ties go to the nearer expiry.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import numpy as np

from multialpha import cme_time
from multialpha.contracts import Contract
from multialpha.sandbox.listing import Instrument
from multialpha.sandbox.market import SyntheticMarket

OI_DECAY = 0.8
OI_DAYS = 20


def outrights(market: SyntheticMarket, root: str, day: date) -> list[Instrument]:
    return [i for i in market.instruments(root, day) if not i.is_spread]


@lru_cache(maxsize=4096)
def day_volumes(market: SyntheticMarket, root: str, day: date) -> dict[Contract, float]:
    """Contracts traded per outright on trading day ``day`` (expected shares if it has no data)."""
    insts = outrights(market, root, day)
    if market.has_day(day):
        bars = market.hour_bars(root, day)
        if len(bars):
            ids, inverse = np.unique(bars["instrument_id"], return_inverse=True)
            sums = np.bincount(inverse, weights=bars["volume"].astype(np.float64))
            vol = {int(i): float(v) for i, v in zip(ids, sums)}
            return {i.contract: vol.get(i.instrument_id, 0.0) for i in insts}
    return {i.contract: i.share for i in insts}


@lru_cache(maxsize=4096)
def open_interest(market: SyntheticMarket, root: str, day: date) -> dict[Contract, float]:
    """Synthetic open interest per outright at the end of trading day ``day`` (see the module doc)."""
    oi: dict[Contract, float] = {}
    d, w = day, 1.0
    for _ in range(OI_DAYS):
        for i in outrights(market, root, d):
            oi[i.contract] = oi.get(i.contract, 0.0) + w * i.share
        d, w = cme_time.previous_trading_day(d), w * OI_DECAY
    listed = {i.contract for i in outrights(market, root, day)}
    return {c: v for c, v in oi.items() if c in listed}


def ranked(market: SyntheticMarket, root: str, day: date, rule: str) -> list[Instrument]:
    """Outrights listed on trading day ``day``, by ``rule``: ``c`` (expiry), ``v`` (volume
    on the previous trading day) or ``n`` (open interest at the end of the previous trading day)."""
    insts = outrights(market, root, day)
    if rule == "c":
        return sorted(insts, key=lambda i: i.expiry)
    prev = cme_time.previous_trading_day(day)
    weight = day_volumes(market, root, prev) if rule == "v" else open_interest(market, root, prev)
    return sorted(insts, key=lambda i: (-weight.get(i.contract, 0.0), i.expiry))
