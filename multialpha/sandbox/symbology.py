"""Resolve Databento input symbols (parent, continuous, raw) to sandbox instruments.

- parent ``ES.FUT``: every instrument of the root that day (outrights and spreads);
- continuous ``ES.v.0`` (volume: the outright with the most volume on the
  previous trading day), ``ES.n.0`` (open interest at the end of the previous
  trading day), ``ES.c.0`` (calendar: nearest expiry still trading); ``.1``,
  ``.2`` the following ranks (fronts.py computes the ranks from the market);
- raw ``ESH6`` or ``ESZ5-ESH6``; ``ALL_SYMBOLS`` is every root's parent.

:func:`select` answers per CME trading day; which trading day a continuous
symbol follows on a UTC date (Databento's mapping unit) is utcmap.py's rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from multialpha.sandbox import fronts
from multialpha.sandbox.listing import Instrument
from multialpha.sandbox.market import SyntheticMarket

ALL_SYMBOLS = "ALL_SYMBOLS"
STYPES = ("parent", "continuous", "raw_symbol")
_CONT = re.compile(r"^(?P<root>[A-Z0-9]+)\.(?P<rule>[vcn])\.(?P<rank>\d+)$")


class SymbolError(ValueError):
    """A symbol that cannot be valid for the stype (422), as opposed to merely unknown."""


@dataclass(frozen=True)
class Resolved:
    symbol: str  # as requested (stype_in symbol)
    root: str


def parse(market: SyntheticMarket, symbols: list[str], stype_in: str) -> tuple[list[Resolved], list[str]]:
    """Requested symbols -> (resolvable, not_found). Raises SymbolError on malformed ones."""
    if stype_in not in STYPES:
        raise SymbolError(f"stype_in {stype_in!r} is not supported by the sandbox (use one of {', '.join(STYPES)})")
    roots = set(market.roots)
    ok: list[Resolved] = []
    missing: list[str] = []
    for sym in symbols:
        if sym == ALL_SYMBOLS:
            ok.extend(Resolved(f"{r}.FUT", r) for r in market.roots)
            continue
        if stype_in == "parent":
            if not sym.endswith(".FUT"):
                raise SymbolError(f"invalid parent symbol {sym!r}: expected ROOT.FUT (e.g. ES.FUT)")
            root = sym[: -len(".FUT")]
        elif stype_in == "continuous":
            m = _CONT.match(sym)
            if not m:
                raise SymbolError(f"invalid continuous symbol {sym!r}: expected ROOT.v.N, ROOT.c.N or ROOT.n.N")
            root = m.group("root")
        else:
            root = _raw_root(sym, roots)
        if root in roots:
            ok.append(Resolved(sym, root))
        else:
            missing.append(sym)
    return ok, missing


def _raw_root(sym: str, roots: set[str]) -> str:
    leg = sym.split("-")[0]
    for r in sorted(roots, key=len, reverse=True):
        if leg.startswith(r) and len(leg) in (len(r) + 2, len(r) + 3):
            return r
    return ""


def select(market: SyntheticMarket, res: Resolved, stype_in: str, day: date) -> list[Instrument]:
    """Instruments that ``res`` names on trading day ``day``."""
    if res.symbol.endswith(".FUT") or stype_in == "parent":
        return market.instruments(res.root, day)
    if stype_in == "continuous":
        m = _CONT.match(res.symbol)
        assert m
        outrights = fronts.ranked(market, res.root, day, m.group("rule"))
        rank = int(m.group("rank"))
        return [outrights[rank]] if rank < len(outrights) else []
    named = market.instrument_named(res.root, day, res.symbol)
    return [named] if named is not None else []
