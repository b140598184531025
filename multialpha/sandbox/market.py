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
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass
from functools import lru_cache
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from multialpha import cme_time
from multialpha.config import Settings
from multialpha.contracts import Contract, ContractMap
from multialpha.sandbox import profiles
# DBN layouts and Databento's aggregation live in aggregate.py (re-exported: callers import them from here).
from multialpha.sandbox.aggregate import (  # noqa: F401
    OHLCV_DTYPE, PUBLISHER_ID, RTYPE_OHLCV, TRADE_DTYPE, aggregate_minutes, rollup,
)
from multialpha.sandbox.store import LRU, HourStore, fingerprint

UNDEF_PRICE = 2**63 - 1

BAR_SCHEMAS = ("ohlcv-1m", "ohlcv-1h", "ohlcv-1d", "ohlcv-eod")
DAY_NS = 86_400 * cme_time.NS
HISTORY_THIN = 4  # deep-history days: 1/4 of the trades, 4x the size
DETAIL_DAYS = 25  # trading days before from_date generated at full detail
_HISTORY_MARGIN = 10  # extra trading days of anchors before the first history day
_HORIZON = 6000  # trading days of anchors after the first (~23 years)


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


@dataclass
class _Day:
    instruments: list[Instrument]
    trades: np.ndarray  # TRADE_DTYPE, sorted by ts_recv
    minutes: np.ndarray | None = None  # OHLCV_DTYPE 1m bars, by (ts_event, instrument_id)


@lru_cache(maxsize=64)
def _size_table(mean: float) -> np.ndarray:
    """256 quantiles of a geometric(1/mean) size: a byte of randomness per trade size."""
    q = (np.arange(256) + 0.5) / 256
    p = 1.0 / mean
    return np.maximum(1, np.ceil(np.log1p(-q) / np.log1p(-p))).astype(np.uint32) if p < 1 else np.ones(256, np.uint32)


def _rng(*parts: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts]))


def _code(text: str) -> int:
    return zlib.crc32(text.encode())


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
        self._root_index = {r: i for i, r in enumerate(self.roots)}
        self._anchors: dict[str, np.ndarray] = {}
        self._days = LRU(cache_days)
        self._minutes = LRU(512)  # ~50-150 KB per (root, day)
        self._hours = LRU(8192)  # ~2-7 KB per (root, day): every warmup's daily/hourly bars
        self.store: HourStore | None = None  # hourly bars on disk, across runs (open_store)
        self._instruments: dict[tuple[str, date], tuple[Instrument, ...]] = {}
        self._named: dict[tuple[str, date], dict[str, Instrument]] = {}
        self._calendars: dict[tuple[str, int], list[tuple[Contract, date, date]]] = {}
        self._lock = threading.Lock()

    def open_store(self, directory: Path) -> HourStore:
        """Keep generated hourly bars in ``directory`` (sandbox/store.py), under this market's fingerprint."""
        here = Path(__file__).resolve().parent
        parts = {"seed": self.seed, "from": self.from_date, "days": self.days, "thin": HISTORY_THIN,
                 "detail": DETAIL_DAYS, "instruments": {r: self.settings.instruments[r].model_dump() for r in self.roots}}
        fp = fingerprint(parts, [self.settings.path(self.settings.contract_map_path), here / "market.py",
                                 here / "profiles.py", here / "aggregate.py"])
        self.store = HourStore(Path(directory) / fp, OHLCV_DTYPE)
        return self.store

    # -- calendar ----------------------------------------------------------------------
    def has_day(self, day: date) -> bool:
        return day.weekday() < 5 and self.first_day <= day and self._day_index(day) < _HORIZON

    def _day_index(self, day: date) -> int:
        return int(np.busday_count(self._anchor_base, day))

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
                rng = _rng(self.seed, _code(root), 0xA11C)
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

    # -- contracts ---------------------------------------------------------------------
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

        to_roll = int(np.busday_count(day, front_roll))
        next_share = 0.03 if to_roll > 5 else 0.06 + (5 - to_roll) * 0.075
        prev_share = 0.0
        if prev is not None:
            since = int(np.busday_count(prev_roll, day))
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

    # -- generation --------------------------------------------------------------------
    def _day(self, root: str, day: date) -> _Day:
        return self._days.get((root, day), lambda: self._generate(root, day))  # type: ignore[return-value]

    def _generate(self, root: str, day: date) -> _Day:
        insts = self.instruments(root, day)
        if not self.has_day(day):
            return _Day(insts, np.zeros(0, TRADE_DTYPE))
        prof = profiles.profile(root)
        spec = self.settings.instruments[root]
        rng = _rng(self.seed, _code(root), day.toordinal())
        open_, close = cme_time.session_bounds(day)
        open_ns = cme_time.to_ns(open_)
        nmin = int((cme_time.to_ns(close) - open_ns) // cme_time.MINUTE_NS)

        # Intensity per minute: seasonality (Chicago clock), day activity, bursts.
        local_open = open_.astimezone(cme_time.CHICAGO)
        mod = (local_open.hour * 60 + local_open.minute + np.arange(nmin)) % 1440
        # Deep history is coarser: 1/THIN as many trades, THIN x the size (same
        # volume, same path) — warmups read hundreds of those days at once.
        thin = HISTORY_THIN if day < self.detail_from else 1
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
        idx = self._day_index(day)
        path = self._anchor_path(root)
        p0, p1 = float(np.exp(path[idx - 1])), float(np.exp(path[idx]))
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
        ref = self.contracts.front(root, self.from_date)
        months0 = ref.year * 12 + ref.month
        tick = spec.tick_size
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
        return _Day(insts, t)

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
        parts = []
        # UTC days and trading days are whole hours: hourly aggregates suffice above 1m
        base = self.minute_bars if schema == "ohlcv-1m" else self.hour_bars
        for day in self.trading_days(lo, hi):
            m = base(root, day)
            if select is not None:
                m = m[np.isin(m["instrument_id"], np.fromiter(select(day), dtype=np.uint32))]
            if schema == "ohlcv-eod":
                m = m.copy()
                m["ts_event"] = cme_time.to_ns(datetime.combine(day, datetime.min.time(), cme_time.UTC))
            parts.append(m)
        mins = np.concatenate(parts) if parts else np.zeros(0, OHLCV_DTYPE)
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
