"""Which contracts a root lists on a trading day, and the synthetic market's ``Instrument``.

Separate from market.py (which generates trades and bars) because listing is
pure calendar logic over ``multialpha.contracts.ContractMap``, needing no
prices: each day lists the front (``ContractMap.front``), the next month and the
previous front until its expiry, plus the calendar spreads between consecutive
listed months (``ESZ5-ESH6``). Volume shares migrate to the next month over the
days before the roll date; the front stays the busiest of the day. Instrument
ids are stable per contract (spreads: the near leg's id + 500).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from multialpha import cme_time

from multialpha.contracts import Contract, ContractMap


@dataclass(frozen=True)
class Instrument:
    instrument_id: int
    raw_symbol: str
    root: str
    day: date
    legs: tuple[Contract, ...]  # one leg: outright; two: calendar spread (near, far)
    share: float  # fraction of the day's trades
    expiry: date

    @property
    def is_spread(self) -> bool:
        return len(self.legs) == 2

    @property
    def contract(self) -> Contract:
        return self.legs[0]


class Listing:
    """The instruments each configured root lists per trading day (memoised)."""

    def __init__(self, contracts: ContractMap, roots: list[str]) -> None:
        self.contracts = contracts
        self.roots = roots
        self._root_index = {r: i for i, r in enumerate(roots)}
        self._instruments: dict[tuple[str, date], tuple[Instrument, ...]] = {}
        self._named: dict[tuple[str, date], dict[str, Instrument]] = {}
        self._calendars: dict[tuple[str, int], list[tuple[Contract, date, date]]] = {}

    def _outright_id(self, c: Contract) -> int:
        return 100_000 + self._root_index[c.root] * 1000 + (c.year % 10) * 12 + (c.month - 1)

    def instruments(self, root: str, day: date) -> list[Instrument]:
        """Outrights and calendar spreads listed on trading day ``day``, busiest first."""
        if root not in self._root_index:
            raise KeyError(f"unknown root {root!r}")
        key = (root, day)
        hit = self._instruments.get(key)
        if hit is None:
            hit = self._instruments[key] = tuple(self._list_instruments(root, day))
        return list(hit)

    def instrument_named(self, root: str, day: date, raw_symbol: str) -> Instrument | None:
        """The instrument ``raw_symbol`` of ``root`` listed on ``day``, or None (a dict lookup: per request day)."""
        key = (root, day)
        named = self._named.get(key)
        if named is None:
            named = self._named[key] = {i.raw_symbol: i for i in self.instruments(root, day)}
        return named.get(raw_symbol)

    def _calendar(self, root: str, year: int) -> list[tuple[Contract, date, date]]:
        """(contract, expiry, roll date) of ``ContractMap.listed(root, <year>)``, memoised."""
        key = (root, year)
        cal = self._calendars.get(key)
        if cal is None:
            cm = self.contracts
            cal = self._calendars[key] = [(c, cm.expiry(c), cm.roll_date(c)) for c in cm.listed(root, date(year, 1, 1))]
        return cal

    def _list_instruments(self, root: str, day: date) -> list[Instrument]:
        # Same rule as ContractMap.front (first listed contract whose roll date is
        # after the day), on a memoised calendar: this runs for every generated day.
        cal = self._calendar(root, day.year)
        k = next(i for i, (_, _, roll) in enumerate(cal) if day < roll)
        front, front_expiry, front_roll = cal[k]
        nxt, nxt_expiry, _ = cal[k + 1]
        prev, prev_expiry, prev_roll = cal[k - 1] if k > 0 and day <= cal[k - 1][1] else (None, None, None)
        expiry = {front: front_expiry, nxt: nxt_expiry, prev: prev_expiry}

        to_roll = cme_time.business_days_between(day, front_roll)
        next_share = 0.03 if to_roll > 5 else 0.06 + (5 - to_roll) * 0.075
        prev_share = 0.0
        if prev is not None:
            since = cme_time.business_days_between(prev_roll, day)
            prev_share = max(0.30 - 0.07 * since, 0.02)
        pairs = [(prev, front)] if prev is not None else []
        pairs.append((front, nxt))
        spread_share = 0.02 * len(pairs)
        front_share = 1.0 - next_share - prev_share - spread_share

        out = [Instrument(self._outright_id(front), front.raw_symbol, root, day, (front,), front_share, front_expiry)]
        out.append(Instrument(self._outright_id(nxt), nxt.raw_symbol, root, day, (nxt,), next_share, nxt_expiry))
        if prev is not None:
            out.append(Instrument(self._outright_id(prev), prev.raw_symbol, root, day, (prev,), prev_share, prev_expiry))
        for near, far in pairs:
            out.append(
                Instrument(
                    self._outright_id(near) + 500,
                    f"{near.raw_symbol}-{far.raw_symbol}",
                    root,
                    day,
                    (near, far),
                    spread_share / len(pairs),
                    expiry[near],
                )
            )
        return out

    def raw_symbols(self, root: str, day: date) -> dict[int, str]:
        """instrument_id -> raw_symbol for ``root`` on ``day``."""
        return {i.instrument_id: i.raw_symbol for i in self.instruments(root, day)}

    def instrument_by_id(self, instrument_id: int, day: date) -> Instrument | None:
        for root in self.roots:
            for inst in self.instruments(root, day):
                if inst.instrument_id == instrument_id:
                    return inst
        return None
