"""Historical bars for a backtest range: Databento Historical (or the sandbox) through the warmup cache.

Minute bars (``ohlcv-1m``) or, with ``resolution="hour"``, hourly bars
(``ohlcv-1h``) of the contract the hub publishes — ``ContractMap.front(root,
trading day)``, fetched by raw symbol per roll-free piece of the range — read
through the same :class:`~multialpha.worker.warmup.Historian` / ``.npy`` cache
the worker's warmup uses (one request for every symbol's missing bars). The
range is clipped at the data's "now" (the sandbox clock) *before* asking, so a
clipped answer is never cached as a complete range.

Each bar carries the contract it was fetched from, so marks and orders name
the contract the way live bars do.

A range's bars stay numpy columns (:class:`BarSeries`, 48 bytes a bar); the
:class:`SymbolBar` objects (~350 bytes a bar with their datetimes) are made one
at a time as the run walks them. Held as objects, 20 days of minute bars of 18
roots were ~150 MB of a backtest's peak RSS.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Iterator, Union

import numpy as np

from multialpha import cme_time
from multialpha.contracts import ContractMap
from multialpha.worker import warmup
from multialpha.worker.cache import Columns
from multialpha.worker.resample import OHLCV

SPAN = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1)}
SCHEMA = {"minute": warmup.SCHEMA_1M, "hour": warmup.SCHEMA}


class DataUnavailable(RuntimeError):
    """No historical data for the requested range (a clear message for the CLI)."""


@dataclass(frozen=True, slots=True)
class SymbolBar:
    symbol: str
    bar: OHLCV
    contract: str
    prev: bool = False  # the previous front after a roll (the hub's Keys.prev_bars channel)

    # What worker/rolls.py reads of a hub Bar. ``start`` is the bar's last minute: a minute bar's
    # own start, an hourly bar's :59 (as every order's bar_start at --resolution hour).
    @property
    def start(self) -> datetime:
        return self.bar.end - timedelta(minutes=1)

    @property
    def close(self) -> float:
        return self.bar.close

    source = "live"


class BarSeries:
    """One symbol's bars, (contract, columns) per roll-free piece in time order, as a read-only
    sequence of :class:`SymbolBar`: each object is built when it is read and not kept."""

    __slots__ = ("symbol", "span", "prev", "pieces", "_len")

    def __init__(self, symbol: str, span: timedelta, pieces: list[tuple[str, Columns]], prev: bool = False) -> None:
        self.symbol, self.span, self.prev = symbol, span, prev
        self.pieces = [(c, cols) for c, cols in pieces if len(cols["ts"])]
        self._len = sum(len(cols["ts"]) for _, cols in self.pieces)

    def __len__(self) -> int:
        return self._len

    def _piece(self, contract: str, cols: Columns) -> Iterator[SymbolBar]:
        for b in warmup.iter_bars(cols, self.span):  # the warmup's conversion: the same floats as live bars
            yield SymbolBar(self.symbol, b, contract, self.prev)

    def __iter__(self) -> Iterator[SymbolBar]:
        for contract, cols in self.pieces:
            yield from self._piece(contract, cols)

    def __reversed__(self) -> Iterator[SymbolBar]:
        for contract, cols in reversed(self.pieces):
            n = len(cols["ts"])
            for i in range(n - 1, -1, -1):
                yield self._one(contract, cols, i)

    def __getitem__(self, i: int) -> SymbolBar:
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(i)
        for contract, cols in self.pieces:
            n = len(cols["ts"])
            if i < n:
                return self._one(contract, cols, i)
            i -= n
        raise IndexError(i)  # pragma: no cover (bounds checked above)

    def _one(self, contract: str, cols: Columns, i: int) -> SymbolBar:
        one = {k: v[i:i + 1] for k, v in cols.items()}
        return SymbolBar(self.symbol, warmup.to_bars(one, self.span)[0], contract, self.prev)

    def closes(self) -> Iterator[tuple[str, str, np.ndarray, np.ndarray]]:
        """(symbol, contract, bar end in ns, close) per piece: the equity curve's marks without objects."""
        span_ns = self.span // timedelta(microseconds=1) * 1_000
        for contract, cols in self.pieces:
            yield self.symbol, contract, cols["ts"].astype(np.int64) + span_ns, cols["close"]


Bars = Union[BarSeries, list[SymbolBar]]  # a range's bars (Historical) or given ones (verify: the hub's logs)


def closes(bars: Bars) -> Iterator[tuple[str, str, np.ndarray, np.ndarray]]:
    """(symbol, contract, end ns, close) runs of ``bars``, a :class:`BarSeries` or a list of SymbolBar."""
    if isinstance(bars, BarSeries):
        yield from bars.closes()
        return
    for sb in bars:
        yield (sb.symbol, sb.contract, np.array([cme_time.to_ns(sb.bar.end)], dtype=np.int64),
               np.array([sb.bar.close], dtype=np.float64))


def session_range(first: date, last: date) -> tuple[datetime, datetime]:
    """UTC [open of ``first``, close of ``last``) in CME trading days."""
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    return cme_time.session_bounds(first)[0], cme_time.session_bounds(last)[1]


def default_days(now: datetime, n: int) -> tuple[date, date]:
    """The last ``n`` *complete* trading days before ``now`` (the sandbox clock or wall clock)."""
    last = cme_time.trading_day(now)
    if now < cme_time.session_bounds(last)[1]:
        last = cme_time.previous_trading_day(last)
    first = cme_time.add_business_days(last, -(n - 1)) if n > 1 else last
    return first, last


def fetch_pieces(start: datetime, end: datetime, resolution: str) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at trading-day starts for minute bars (contiguous, so nothing is left missing).

    One request for 20 days of every root's minute bars made the response, its decoded records and
    the sandbox's generation of it live at once: ~90 MB of a backtest's peak RSS (and freed heap
    that stayed mapped); a day per request bounds that to a day's worth. Hourly bars are small:
    one request."""
    if resolution != "minute" or end <= start:
        return [(start, end)]
    out = []
    for day in cme_time.trading_days(cme_time.trading_day(start), cme_time.trading_day(end - timedelta(microseconds=1))):
        a = max(start, cme_time.from_ns(warmup.day_start_ns(day)))
        b = min(end, cme_time.from_ns(warmup.day_start_ns(cme_time.next_trading_day(day))))
        if a < b:
            out.append((a, b))
    return out


def load_bars(
    historian: warmup.Historian,
    symbols: list[str],
    start: datetime,
    end: datetime,
    resolution: str,
    cmap: ContractMap,
) -> dict[str, BarSeries]:
    """Bars per symbol with start in [start, end), sorted; raises DataUnavailable if all are empty."""
    span = SPAN[resolution]
    if historian.contracts is None:
        historian.contracts = cmap  # warmup on the same historian then follows the same rule
    for a, b in fetch_pieces(start, end, resolution):  # per piece: one request for every symbol's gaps
        historian.prefetch(SCHEMA[resolution], symbols, a, b)
    out = {sym: BarSeries(sym, span, historian.segments(SCHEMA[resolution], sym, start, end)) for sym in symbols}
    if not any(out.values()):
        raise DataUnavailable(
            f"no {SCHEMA[resolution]} bars for {', '.join(symbols)} in "
            f"{cme_time.iso_z(start)} .. {cme_time.iso_z(end)}"
        )
    return out


def load_prev_bars(
    historian: warmup.Historian,
    symbols: list[str],
    start: datetime,
    end: datetime,
    resolution: str,
    overlap_days: int,
) -> dict[str, BarSeries]:
    """The previous front's bars after each roll in [start, end) (``hub.roll_overlap_days``), as the
    hub publishes them on ``Keys.prev_bars``: positions still in the old contract are priced there."""
    if overlap_days <= 0:
        return {}
    span = SPAN[resolution]
    historian.prefetch(SCHEMA[resolution], symbols, start, end, overlap_days)
    out = {}
    for sym in symbols:
        got = BarSeries(sym, span, historian.segments(SCHEMA[resolution], sym, start, end, overlap_days), prev=True)
        if got:
            out[sym] = got
    return out


def merged(bars: dict[str, Bars], prev: dict[str, Bars] | None = None) -> Iterator[SymbolBar]:
    """All symbols' bars in (start, symbol) order: the deterministic tie-break. A minute's
    previous-front bars come after its front bars, in symbol order: the hub's publishing order."""
    return heapq.merge(*bars.values(), *(prev or {}).values(), key=lambda sb: (sb.bar.start, sb.prev, sb.symbol))
