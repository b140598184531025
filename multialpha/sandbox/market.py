"""The deterministic synthetic CME market behind both sandbox gateways.

Determinism and independence of days:
- a cheap *daily anchor path* per root (one random walk over all trading days
  from the seed, pinned so the price at ``from_date`` is the configured
  ``sandbox_price``);
- each trading day's intraday path is a Brownian bridge between the previous
  day's anchor and its own, drawn from a PRNG seeded by (seed, root, day) —
  so any day can be generated alone, in any order, with the same result.

Trades are generated lazily per (root, trading day) with numpy, directly in
the DBN ``TradeMsg`` byte layout (``trades(...).tobytes()`` *is* DBN), and
cached; per-day 1-minute aggregates are cached too. Bars are aggregated
exactly as Databento does: bucketed on ``ts_recv``, start-stamped, no bar for
a quiet minute.

Contracts follow ``multialpha.contracts.ContractMap``: each day lists the
front (``ContractMap.front``), the next month, and the previous front until
its expiry, plus the calendar spreads between consecutive listed months
(``ESZ5-ESH6``, priced front minus next, in points). Volume migrates to the
next month over the days before the roll date, but the contract
``ContractMap.front`` names is always the busiest of the day. The volume and
open-interest ranks that ``ROOT.v.N`` / ``ROOT.n.N`` serve (previous trading
day) are computed from this market in fronts.py.

This module holds the market as a whole: the calendar, the anchor path, the
caches and the trades/bars queries. Which instruments are listed on a day is in
listing.py (``Instrument`` is imported from there); one day's trade generation
is in tradegen.py.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from multialpha import cme_time
from multialpha.config import Settings
from multialpha.contracts import ContractMap
from multialpha.sandbox import profiles
# DBN layouts and Databento's aggregation live in aggregate.py (re-exported: callers import them from here).
from multialpha.sandbox.aggregate import (  # noqa: F401
    OHLCV_DTYPE, PUBLISHER_ID, RTYPE_OHLCV, TRADE_DTYPE, aggregate_minutes, rollup,
)
from multialpha.sandbox.listing import Instrument, Listing
from multialpha.sandbox.store import LRU, HourStore, fingerprint
from multialpha.sandbox.tradegen import day_trades, name_code, seeded_rng

UNDEF_PRICE = 2**63 - 1

BAR_SCHEMAS = ("ohlcv-1m", "ohlcv-1h", "ohlcv-1d", "ohlcv-eod")
DAY_NS = 86_400 * cme_time.NS
HISTORY_THIN = 4  # deep-history days: 1/4 of the trades, 4x the size
DETAIL_DAYS = 25  # trading days before from_date generated at full detail
_HISTORY_MARGIN = 10  # extra trading days of anchors before the first history day
_HORIZON = 6000  # trading days of anchors after the first (~23 years)


@dataclass
class _Day:
    instruments: list[Instrument]
    trades: np.ndarray  # TRADE_DTYPE, sorted by ts_recv
    minutes: np.ndarray | None = None  # OHLCV_DTYPE 1m bars, by (ts_event, instrument_id)


class SyntheticMarket:
    """Deterministic synthetic trades and bars for every configured root."""

    def __init__(
        self,
        settings: Settings,
        seed: int,
        *,
        from_date: date | None = None,
        days: int | None = None,
        cache_days: int = 48,
    ) -> None:
        self.settings = settings
        self.seed = int(seed)
        self.contracts = ContractMap.load(settings.path(settings.contract_map_path))
        self.from_date = from_date or date.fromisoformat(settings.sandbox.from_date)
        while self.from_date.weekday() >= 5:
            self.from_date += timedelta(days=1)
        self.days = int(days if days is not None else settings.sandbox.days)
        # First trading day with data: `days` trading days before from_date.
        self.first_day = cme_time.add_business_days(self.from_date, -self.days)
        self._anchor_base = cme_time.add_business_days(self.first_day, -_HISTORY_MARGIN)
        # Days before this are generated coarser (see HISTORY_THIN); fixed by from_date,
        # so a day's trades never depend on when they are asked for.
        self.detail_from = cme_time.add_business_days(self.from_date, -DETAIL_DAYS)
        self.roots = sorted(settings.instruments)
        self.listing = Listing(self.contracts, self.roots)  # which instruments exist per day
        self._anchors: dict[str, np.ndarray] = {}
        self._days = LRU(cache_days)
        self._minutes = LRU(512)  # ~50-150 KB per (root, day)
        self._hours = LRU(8192)  # ~2-7 KB per (root, day): every warmup's daily/hourly bars
        self.store: HourStore | None = None  # hourly bars on disk, across runs (open_store)
        self._lock = threading.Lock()

    def open_store(self, directory: Path) -> HourStore:
        """Keep generated hourly bars in ``directory`` (sandbox/store.py), under this market's fingerprint."""
        here = Path(__file__).resolve().parent
        parts = {"seed": self.seed, "from": self.from_date, "days": self.days, "thin": HISTORY_THIN,
                 "detail": DETAIL_DAYS, "instruments": {r: self.settings.instruments[r].model_dump() for r in self.roots}}
        fp = fingerprint(parts, [self.settings.path(self.settings.contract_map_path), here / "market.py",
                                 here / "listing.py", here / "tradegen.py", here / "profiles.py",
                                 here / "aggregate.py"])
        self.store = HourStore(Path(directory) / fp, OHLCV_DTYPE)
        return self.store

    # -- calendar ----------------------------------------------------------------------
    def has_day(self, day: date) -> bool:
        return day.weekday() < 5 and self.first_day <= day and self._day_index(day) < _HORIZON

    def _day_index(self, day: date) -> int:
        return cme_time.business_days_between(self._anchor_base, day)

    def trading_days(self, start_ns: int, end_ns: int) -> list[date]:
        """Trading days whose session overlaps [start_ns, end_ns) and that have data."""
        if end_ns <= start_ns:
            return []
        first = cme_time.trading_day(int(start_ns))
        last = cme_time.trading_day(int(end_ns) - 1)
        return [d for d in cme_time.trading_days(max(first, self.first_day), last) if self.has_day(d)]

    # -- anchors -----------------------------------------------------------------------
    def _anchor_path(self, root: str) -> np.ndarray:
        with self._lock:
            path = self._anchors.get(root)
            if path is None:
                prof = profiles.profile(root)
                rng = seeded_rng(self.seed, name_code(root), 0xA11C)
                steps = rng.standard_normal(_HORIZON + 1) * prof.daily_vol
                walk = np.cumsum(steps)
                level = np.log(self.settings.instruments[root].sandbox_price)
                path = level + walk - walk[self._day_index(self.from_date)]
                self._anchors[root] = path
            return path

    def close_anchor(self, root: str, day: date) -> float:
        """The underlying's price at the end of ``day``: the price of the front on ``from_date``
        (other months differ by their carry)."""
        return float(np.exp(self._anchor_path(root)[self._day_index(day)]))

    # -- contracts (listing.py) ----------------------------------------------------------
    def instruments(self, root: str, day: date) -> list[Instrument]:
        """Outrights and calendar spreads listed on trading day ``day``, busiest first."""
        return self.listing.instruments(root, day)

    def instrument_named(self, root: str, day: date, raw_symbol: str) -> Instrument | None:
        """The instrument ``raw_symbol`` of ``root`` listed on ``day``, or None."""
        return self.listing.instrument_named(root, day, raw_symbol)

    def raw_symbols(self, root: str, day: date) -> dict[int, str]:
        """instrument_id -> raw_symbol for ``root`` on ``day``."""
        return self.listing.raw_symbols(root, day)

    def instrument_by_id(self, instrument_id: int, day: date) -> Instrument | None:
        return self.listing.instrument_by_id(instrument_id, day)

    # -- generation --------------------------------------------------------------------
    def _day(self, root: str, day: date) -> _Day:
        return self._days.get((root, day), lambda: self._generate(root, day))  # type: ignore[return-value]

    def _generate(self, root: str, day: date) -> _Day:
        insts = self.instruments(root, day)
        if not self.has_day(day):
            return _Day(insts, np.zeros(0, TRADE_DTYPE))
        idx = self._day_index(day)
        path = self._anchor_path(root)
        p0, p1 = float(np.exp(path[idx - 1])), float(np.exp(path[idx]))
        # Deep history is coarser: 1/THIN as many trades, THIN x the size (same
        # volume, same path) — warmups read hundreds of those days at once.
        thin = HISTORY_THIN if day < self.detail_from else 1
        rng = seeded_rng(self.seed, name_code(root), day.toordinal())
        ref = self.contracts.front(root, self.from_date)
        tick = self.settings.instruments[root].tick_size
        return _Day(insts, day_trades(rng, day, insts, profiles.profile(root), tick, p0, p1, ref, thin))

    # -- trades ------------------------------------------------------------------------
    def trades(
        self,
        root: str,
        start_ns: int,
        end_ns: int,
        instrument_ids: Iterable[int] | None = None,
        select: Callable[[date], Iterable[int]] | None = None,
    ) -> np.ndarray:
        """Trades of ``root`` with ``start_ns <= ts_recv < end_ns``, in ts_recv order.

        ``instrument_ids`` (fixed) or ``select(day)`` (per trading day) filter
        instruments; ``raw_symbols(root, day)`` names them.
        """
        parts = []
        fixed = None if instrument_ids is None else np.fromiter(instrument_ids, dtype=np.uint32)
        for day in self.trading_days(start_ns, end_ns):
            t = self._day(root, day).trades
            # uint64 bounds: a Python-int list would become int64 and the comparison
            # would go through float64, losing the nanoseconds.
            bounds = np.array([max(start_ns, 0), max(end_ns, 0)], dtype=np.uint64)
            lo, hi = np.searchsorted(t["ts_recv"], bounds)
            t = t[lo:hi]
            ids = fixed if select is None else np.fromiter(select(day), dtype=np.uint32)
            if ids is not None:
                t = t[np.isin(t["instrument_id"], ids)]
            parts.append(t)
        return np.concatenate(parts) if parts else np.zeros(0, TRADE_DTYPE)

    # -- bars --------------------------------------------------------------------------
    def minute_bars(self, root: str, day: date) -> np.ndarray:
        """All 1-minute bars of ``root`` on trading day ``day`` (cached)."""
        return self._minutes.get((root, day), lambda: aggregate_minutes(self._day(root, day).trades))  # type: ignore[return-value]

    def hour_bars(self, root: str, day: date) -> np.ndarray:
        """1-hour bars of ``root`` on trading day ``day`` (cached; hours never straddle sessions)."""
        return self._hours.get((root, day), lambda: self._stored_hours(root, day))  # type: ignore[return-value]

    def _stored_hours(self, root: str, day: date) -> np.ndarray:
        hit = self.store.get(root, day) if self.store is not None else None
        if hit is not None:
            return hit
        # Minutes of a day nobody asked minutes for are not kept: a warmup rolls up hundreds of
        # days, and 512 cached minute arrays were ~50 MB of the sandbox's RSS for nothing.
        mins = self._minutes.peek((root, day))
        if mins is None:
            mins = aggregate_minutes(self._day(root, day).trades)
        bars = rollup(mins, cme_time.HOUR_NS, RTYPE_OHLCV["ohlcv-1h"])  # type: ignore[arg-type]
        if self.store is not None:
            self.store.put(root, day, bars)
        return bars

    def bars(
        self,
        root: str,
        schema: str,
        start_ns: int,
        end_ns: int,
        select: Callable[[date], Iterable[int]] | None = None,
        now_ns: int | None = None,
    ) -> np.ndarray:
        """Databento-style bars whose interval starts in [start_ns, end_ns).

        Only complete bars: an interval that has not ended by ``now_ns`` is
        left out (the sandbox never returns the future, nor a partial bar).
        """
        if schema not in BAR_SCHEMAS:
            raise ValueError(f"unsupported bar schema {schema!r}")
        lo = start_ns - DAY_NS * (1 if schema in ("ohlcv-1d",) else 0)
        hi = end_ns + (DAY_NS if schema in ("ohlcv-1d", "ohlcv-eod") else cme_time.HOUR_NS)
        # UTC days and trading days are whole hours: hourly aggregates suffice above 1m
        base = self.minute_bars if schema == "ohlcv-1m" else self.hour_bars
        days = self.trading_days(lo, hi)
        parts = [base(root, day) for day in days]
        mins = np.concatenate(parts) if parts else np.zeros(0, OHLCV_DTYPE)
        # Each record's trading day, as an index into `days`: one vectorised selection for the
        # whole range instead of an isin per day (a warmup asks ~280 days of ~60 contracts).
        day_of = np.repeat(np.arange(len(days), dtype=np.uint64), [len(p) for p in parts])
        if select is not None and len(mins):
            wanted = np.fromiter((i << 32 | iid for i, day in enumerate(days) for iid in select(day)), dtype=np.uint64)
            keep = np.isin(day_of << np.uint64(32) | mins["instrument_id"].astype(np.uint64), wanted)
            mins, day_of = mins[keep], day_of[keep]
        if schema == "ohlcv-eod":  # stamped with the trading day (`mins` is a new array: concatenated)
            day_ns = np.array([cme_time.to_ns(datetime.combine(d, datetime.min.time(), cme_time.UTC)) for d in days],
                              dtype=np.uint64)
            mins["ts_event"] = day_ns[day_of.astype(np.intp)]
        if schema == "ohlcv-1m":
            span = cme_time.MINUTE_NS
            out = mins
        elif schema == "ohlcv-1h":
            span = cme_time.HOUR_NS
            out = mins[np.lexsort((mins["instrument_id"], mins["ts_event"]))]
        elif schema == "ohlcv-1d":
            span = DAY_NS
            out = rollup(mins, span, RTYPE_OHLCV[schema])
        else:
            span = 0  # eod: complete when the session closed
            out = rollup(mins, DAY_NS, RTYPE_OHLCV[schema])
        keep = (out["ts_event"] >= start_ns) & (out["ts_event"] < end_ns)
        if now_ns is not None:
            if schema == "ohlcv-eod":
                closes = np.array(
                    [cme_time.to_ns(cme_time.session_bounds(cme_time.from_ns(int(t)).date())[1]) for t in out["ts_event"]],
                    dtype=np.int64,
                )
                keep &= closes <= now_ns
            else:
                keep &= out["ts_event"].astype(np.int64) + span <= now_ns
        return out[keep]
