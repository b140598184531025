"""Warmup bars: hourly history per symbol (cached), daily bars resampled from it.

For every symbol the worker needs ``warmup_hourly_bars`` hourly and
``warmup_daily_bars`` daily bars before the boundary ``T`` (the start of the
current clock hour, or earlier when catch-up from the bar log starts
earlier). Daily bars are CME trading days built by the same
:class:`~multialpha.worker.resample.Resampler` the live path uses — never
Databento's UTC-date ``ohlcv-1d``. The day that contains ``T`` is left open
in the returned resampler so live minute bars complete it.

Hourly history comes from ``databento.Historical`` (``ohlcv-1h``,
continuous ``ROOT.c.0``) through :class:`~multialpha.worker.cache.BarCache`;
only the missing ranges are requested. ``databento`` is imported only when
something is missing (it costs ~1.2 s of start-up).
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from multialpha import cme_time
from multialpha.worker.cache import BarCache, CacheKey, Columns
from multialpha.worker.resample import OHLCV, Resampler

log = logging.getLogger(__name__)

SCHEMA = "ohlcv-1h"
SCHEMA_1M = "ohlcv-1m"
STYPE = "continuous"
# Fixed-point 1e-9 prices -> float by *division*: the correctly rounded nearest double, the value
# the hub publishes (`round(fixed / PX, digits)` for on-tick prices). Multiplying by 1e-9 adds
# ulp noise, so warmed-up and backtest bars differed from live bars in the last bit (parity).
PRICE_SCALE = 1e9


def continuous_symbol(root: str) -> str:
    """Calendar-rolled front month, matching the hub's calendar front-month rule."""
    return f"{root}.c.0"


class Fetch(Protocol):
    def __call__(self, schema: str, symbol: str, stype_in: str, start_ns: int, end_ns: int) -> Columns: ...


def databento_fetch(client_factory: Callable[[], Any], dataset: str) -> Fetch:
    """A Fetch backed by the real ``databento.Historical`` client (created on first use)."""
    holder: dict[str, Any] = {}

    def fetch(schema: str, symbol: str, stype_in: str, start_ns: int, end_ns: int) -> Columns:
        if "client" not in holder:
            holder["client"] = client_factory()
        store = holder["client"].timeseries.get_range(
            dataset=dataset, start=start_ns, end=end_ns, symbols=[symbol], schema=schema, stype_in=stype_in
        )
        arr = store.to_ndarray(schema=schema)
        if len(arr) == 0:
            from multialpha.worker.cache import empty

            return empty()
        return {
            "ts": arr["ts_event"].astype(np.int64),
            "open": arr["open"].astype(np.float64) / PRICE_SCALE,
            "high": arr["high"].astype(np.float64) / PRICE_SCALE,
            "low": arr["low"].astype(np.float64) / PRICE_SCALE,
            "close": arr["close"].astype(np.float64) / PRICE_SCALE,
            "volume": arr["volume"].astype(np.int64),
        }

    return fetch


def history_start(boundary: datetime, daily_bars: int, hourly_bars: int) -> datetime:
    """Session open far enough back for ``daily_bars`` days and ``hourly_bars`` hours.

    Exchange holidays print no bars, so a margin of ~5 % plus 5 days is added.
    """
    days = max(math.ceil(daily_bars * 1.05) + 5, math.ceil(hourly_bars / 22) + 3)
    first = cme_time.add_business_days(cme_time.trading_day(boundary), -days)
    return cme_time.session_bounds(first)[0]


@dataclass
class SymbolWarmup:
    symbol: str
    hours: list[OHLCV]  # last N complete hours before the boundary
    days: list[OHLCV]  # last M complete trading days ending at or before the boundary
    day_resampler: Resampler  # holds the boundary's (partial) trading day


@dataclass
class Historian:
    """Cached hourly history: ``requests`` counts calls that reached the Historical API."""

    cache: BarCache
    fetch: Fetch
    dataset: str
    requests: int = 0
    cached_ranges: int = 0
    fetched_bars: int = 0
    log_lines: list[str] = field(default_factory=list)

    def hourly(self, root: str, start: datetime, end: datetime) -> Columns:
        return self.bars(SCHEMA, root, start, end)

    def minutes(self, root: str, start: datetime, end: datetime) -> Columns:
        """Complete minutes of the current hour before the bar log has them (first start)."""
        return self.bars(SCHEMA_1M, root, start, end)

    def bars(self, schema: str, root: str, start: datetime, end: datetime) -> Columns:
        key = CacheKey(self.dataset, schema, STYPE, continuous_symbol(root))
        s, e = cme_time.to_ns(start), cme_time.to_ns(end)
        gaps = self.cache.missing(key, s, e)
        if not gaps:
            self.cached_ranges += 1
        for gs, ge in gaps:
            self.requests += 1
            cols = self.fetch(schema, key.symbol, STYPE, gs, ge)
            self.fetched_bars += len(cols["ts"])
            self.cache.write(key, gs, ge, cols)
        return self.cache.read(key, s, e)


def to_bars(cols: Columns, span: timedelta = timedelta(hours=1)) -> list[OHLCV]:
    out = []
    ts, o, h, l, c, v = (cols[k].tolist() for k in ("ts", "open", "high", "low", "close", "volume"))
    for i in range(len(ts)):
        start = cme_time.from_ns(ts[i])
        out.append(OHLCV(start, start + span, o[i], h[i], l[i], c[i], v[i]))
    return out


def warm_symbol(historian: Historian, root: str, boundary: datetime, daily_bars: int, hourly_bars: int) -> SymbolWarmup:
    if daily_bars <= 0 and hourly_bars <= 0:
        return SymbolWarmup(root, [], [], Resampler("day"))
    start = history_start(boundary, daily_bars, hourly_bars)
    cols = historian.hourly(root, start, boundary)
    days: list[OHLCV] = []
    day_r = Resampler("day")
    # Days from every hour (plain values: ~6,000 hours per symbol); OHLCV objects only for the hours kept.
    ts, o, h, l, c, v = (cols[k].tolist() for k in ("ts", "open", "high", "low", "close", "volume"))
    hour = timedelta(hours=1)
    for i in range(len(ts)):
        st = cme_time.from_ns(ts[i])
        days.extend(day_r.add_values(st, st + hour, o[i], h[i], l[i], c[i], v[i]))
    day_r.late = 0
    # A day whose close is exactly the boundary is complete but unflushed if its last hour printed nothing.
    days.extend(day_r.flush(boundary))
    keep = {k: a[-hourly_bars:] if hourly_bars else a[:0] for k, a in cols.items()}
    return SymbolWarmup(root, to_bars(keep), days[-daily_bars:] if daily_bars else [], day_r)


def warm_all(
    historian: Historian,
    roots: list[str],
    boundary: datetime,
    daily_bars: int,
    hourly_bars: int,
    progress: bool | None = None,
) -> dict[str, SymbolWarmup]:
    """Warm every root; a rich progress bar on an interactive terminal."""
    if progress is None:
        progress = sys.stderr.isatty()
    out: dict[str, SymbolWarmup] = {}
    if not progress:
        for root in roots:
            out[root] = warm_symbol(historian, root, boundary, daily_bars, hourly_bars)
        return out
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("warmup", total=len(roots))
        for root in roots:
            bar.update(task, description=f"warmup {root}")
            out[root] = warm_symbol(historian, root, boundary, daily_bars, hourly_bars)
            bar.advance(task)
    return out


def cache_root(settings: Any) -> Path:
    return settings.path(settings.worker.cache_dir)
