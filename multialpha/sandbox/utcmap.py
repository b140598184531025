"""Symbology on UTC dates, the way Databento reports it.

Databento's mapping intervals (Historical metadata ``mappings``,
``symbology.resolve``, Live ``SymbolMappingMsg`` start/end) are **UTC dates**
``[d0, d1)``, not CME trading days; the official client's ``to_df()`` names a
record by the UTC date of its index timestamp. A CME trading day ``D`` runs
from 17:00 CT on the previous business day, so its session touches two UTC
dates: the evening's (``D - 1``, or Sunday for a Monday) and ``D``. The rules:

- **parent / raw symbols** name instruments, which do not change at a date
  boundary: an instrument listed on trading day ``D`` is mapped on both UTC
  dates of ``D``'s session. Its interval runs over consecutive such dates; a
  Saturday (no session touches it) does not break it.
- **continuous symbols** (``ES.v.0``, ``ES.c.0``, ``ES.n.0``) name one
  instrument per UTC date ``u``: the one the rule picks for the trading day in
  progress at 00:00 UTC of ``u`` (the next one when the market is closed then,
  so a Sunday follows Monday) -- :func:`mapping_day`. A roll therefore takes
  effect at 00:00 UTC: the evening session that opens trading day ``R`` (the
  roll date) still carries the old contract, and the data served for a
  continuous symbol follows the same per-UTC-date choice, so every record has a
  symbol.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Iterable, Iterator

from multialpha import cme_time
from multialpha.sandbox import symbology
from multialpha.sandbox.historical_request import ApiError
from multialpha.sandbox.listing import Instrument
from multialpha.sandbox.market import SyntheticMarket

DAY = timedelta(days=1)
DAY_NS = 86_400 * cme_time.NS


@dataclass(frozen=True, order=True)
class Interval:
    start_date: date
    end_date: date
    symbol: str  # instrument id


@dataclass(frozen=True)
class Mapping:
    raw_symbol: str
    intervals: list[Interval]


def session_dates(day: date) -> tuple[date, date]:
    """The UTC dates trading day ``day``'s session touches: (the evening's, ``day``)."""
    open_, close = cme_time.session_bounds(day)
    return open_.astimezone(cme_time.UTC).date(), (close.astimezone(cme_time.UTC) - timedelta(microseconds=1)).date()


def mapping_day(u: date) -> date:
    """The trading day whose instrument a continuous symbol names on UTC date ``u``."""
    return cme_time.trading_day(datetime.combine(u, time(0), cme_time.UTC))


def continuous_day(market: SyntheticMarket, ts_ns: int, day: date) -> date:
    """Trading day a continuous symbol follows at ``ts_ns`` (inside trading day ``day``)."""
    picked = mapping_day(utc_date(ts_ns))
    return picked if market.has_day(picked) else day


def utc_date(ns: int) -> date:
    return date(1970, 1, 1) + timedelta(days=ns // DAY_NS)


def date_ns(u: date) -> int:
    return (u - date(1970, 1, 1)).days * DAY_NS


def live_interval(day: date) -> tuple[int, int]:
    """``SymbolMappingMsg`` start_ts/end_ts for an instrument of trading day ``day``: its UTC dates."""
    first, last = session_dates(day)
    return date_ns(first), date_ns(last + DAY)


def merge(by_id: dict[str, set[date]]) -> list[Interval]:
    """Per-date mappings -> intervals ``[d0, d1)`` of consecutive UTC dates (Saturdays bridged)."""
    out: list[Interval] = []
    for iid, dates in by_id.items():
        run: list[date] = []
        for u in sorted(dates):
            if run and not (u - run[1] == DAY or (u - run[1] == 2 * DAY and run[1].weekday() == 4)):
                out.append(Interval(run[0], run[1] + DAY, iid))
                run = []
            run = [run[0] if run else u, u]
        if run:
            out.append(Interval(run[0], run[1] + DAY, iid))
    return sorted(out)


class Picker:
    """Which instruments a request's resolved symbols name, per (trading day, UTC date)."""

    def __init__(self, market: SyntheticMarket, resolved: list[symbology.Resolved], stype_in: str) -> None:
        self.market = market
        self.resolved = resolved
        self.stype_in = stype_in
        self.roots = list(dict.fromkeys(r.root for r in resolved))
        self._of_root = {root: [r for r in resolved if r.root == root] for root in self.roots}
        self._cache: dict[tuple[str, date, date | None], set[int]] = {}

    def _continuous(self, res: symbology.Resolved) -> bool:
        return self.stype_in == "continuous" and not res.symbol.endswith(".FUT")

    def per_date(self, root: str) -> bool:
        """True when a continuous symbol of ``root`` is requested: its data is chosen per UTC date."""
        return any(self._continuous(r) for r in self.resolved if r.root == root)

    def instruments(self, res: symbology.Resolved, day: date, u: date) -> list[Instrument]:
        """Instruments ``res`` names in the part of trading day ``day``'s session on UTC date ``u``."""
        if self._continuous(res):
            picked = mapping_day(u)
            if not self.market.has_day(picked):
                return []
            return symbology.select(self.market, res, self.stype_in, picked)
        return symbology.select(self.market, res, self.stype_in, day)

    def ids(self, root: str, day: date, u: date | None) -> set[int]:
        """Instrument ids of ``root`` to serve for trading day ``day`` (on UTC date ``u``)."""
        key = (root, day, u)
        got = self._cache.get(key)
        if got is None:
            when = u if u is not None else session_dates(day)[1]
            got = {i.instrument_id for r in self._of_root.get(root, ()) for i in self.instruments(r, day, when)}
            self._cache[key] = got
        return got

    def pieces(self, root: str, start_ns: int, end_ns: int) -> Iterator[tuple[int, int, date | None]]:
        """[lo, hi) spans of the request to fetch with one instrument choice each."""
        if not self.per_date(root):
            yield start_ns, end_ns, None
            return
        u = utc_date(start_ns)
        while date_ns(u) < end_ns:
            yield max(start_ns, date_ns(u)), min(end_ns, date_ns(u + DAY)), u
            u += DAY

    def mappings(self, days: Iterable[date], first: date, end: date) -> list[Mapping]:
        """Metadata mappings for UTC dates in ``[first, end)``: raw symbol (parent) or requested symbol -> ids."""
        by_key: dict[str, dict[str, set[date]]] = {}
        # A day's UTC dates once per day, not once per (symbol, day): a warmup asks ~60 contracts x ~280 days.
        dates = [(day, [u for u in session_dates(day) if first <= u < end]) for day in days]
        for res in self.resolved:
            per_date = self._continuous(res)  # else the trading day alone decides: one lookup for its dates
            for day, us in dates:
                if not us:
                    continue
                for u, insts in ([(u, self.instruments(res, day, u)) for u in us] if per_date
                                 else [(None, self.instruments(res, day, us[0]))]):
                    for inst in insts:
                        key = inst.raw_symbol if self.stype_in == "parent" else res.symbol
                        got = by_key.setdefault(key, {}).setdefault(str(inst.instrument_id), set())
                        got.update(us if u is None else (u,))
        return [Mapping(key, merge(by_id)) for key, by_id in sorted(by_key.items())]


def resolve(market: SyntheticMarket, dataset: str, form: dict[str, str]) -> dict[str, Any]:
    """``symbology.resolve``: input symbol -> instrument ids per UTC-date interval ``[d0, d1)``."""
    if form.get("dataset") != dataset:
        raise ApiError(422, f"dataset {form.get('dataset')!r} is not served by the sandbox (only {dataset})")
    stype_in = form.get("stype_in", "raw_symbol")
    if form.get("stype_out", "instrument_id") != "instrument_id":
        raise ApiError(422, "stype_out: the sandbox only maps to instrument_id")
    try:
        first = date.fromisoformat(form.get("start_date", ""))
        end = date.fromisoformat(form["end_date"]) if form.get("end_date") else first + DAY
    except ValueError as e:
        raise ApiError(422, f"start_date/end_date: {e}") from None
    symbols = [x for x in form.get("symbols", "").split(",") if x] or [symbology.ALL_SYMBOLS]
    try:
        resolved, not_found = symbology.parse(market, symbols, stype_in)
    except symbology.SymbolError as e:
        raise ApiError(422, str(e)) from None
    # Trading days whose session touches [first, end): the one after each date covers its evening.
    days = [d for d in cme_time.trading_days(first, end) if market.has_day(d)]
    result: dict[str, list[dict[str, str]]] = {}
    for res in resolved:
        by_id: dict[str, set[date]] = {}
        for day in days:
            for u in session_dates(day):
                if first <= u < end:
                    for inst in Picker(market, [res], stype_in).instruments(res, day, u):
                        by_id.setdefault(str(inst.instrument_id), set()).add(u)
        result[res.symbol] = [
            {"d0": i.start_date.isoformat(), "d1": i.end_date.isoformat(), "s": i.symbol} for i in merge(by_id)
        ]
    return {
        "result": result, "symbols": symbols, "stype_in": stype_in, "stype_out": "instrument_id",
        "start_date": first.isoformat(), "end_date": end.isoformat(), "partial": [],
        "not_found": not_found, "message": "OK", "status": 0,
    }  # fmt: skip
