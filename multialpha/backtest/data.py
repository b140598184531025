"""Historical bars for a backtest range: Databento Historical (or the sandbox) through the warmup cache.

Minute bars (``ohlcv-1m``) or, with ``resolution="hour"``, hourly bars
(``ohlcv-1h``) of the contract the hub publishes — ``ContractMap.front(root,
trading day)``, fetched by raw symbol per roll-free piece of the range — read
through the same :class:`~multialpha.worker.warmup.Historian` / Parquet cache
the worker's warmup uses (one request for every symbol's missing bars). The
range is clipped at the data's "now" (the sandbox clock) *before* asking, so a
clipped answer is never cached as a complete range.

Each bar carries the contract it was fetched from, so marks and orders name
the contract the way live bars do.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Iterator

from multialpha import cme_time
from multialpha.contracts import ContractMap
from multialpha.worker import warmup
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


def load_bars(
    historian: warmup.Historian,
    symbols: list[str],
    start: datetime,
    end: datetime,
    resolution: str,
    cmap: ContractMap,
) -> dict[str, list[SymbolBar]]:
    """Bars per symbol with start in [start, end), sorted; raises DataUnavailable if all are empty."""
    span = SPAN[resolution]
    if historian.contracts is None:
        historian.contracts = cmap  # warmup on the same historian then follows the same rule
    historian.prefetch(SCHEMA[resolution], symbols, start, end)  # one request for every symbol's gaps
    out: dict[str, list[SymbolBar]] = {}
    for sym in symbols:
        out[sym] = [SymbolBar(sym, b, contract)
                    for contract, cols in historian.segments(SCHEMA[resolution], sym, start, end)
                    for b in warmup.to_bars(cols, span)]
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
) -> dict[str, list[SymbolBar]]:
    """The previous front's bars after each roll in [start, end) (``hub.roll_overlap_days``), as the
    hub publishes them on ``Keys.prev_bars``: positions still in the old contract are priced there."""
    if overlap_days <= 0:
        return {}
    span = SPAN[resolution]
    historian.prefetch(SCHEMA[resolution], symbols, start, end, overlap_days)
    out = {}
    for sym in symbols:
        got = [SymbolBar(sym, b, contract, True)
               for contract, cols in historian.segments(SCHEMA[resolution], sym, start, end, overlap_days)
               for b in warmup.to_bars(cols, span)]
        if got:
            out[sym] = got
    return out


def merged(bars: dict[str, list[SymbolBar]], prev: dict[str, list[SymbolBar]] | None = None) -> Iterator[SymbolBar]:
    """All symbols' bars in (start, symbol) order: the deterministic tie-break. A minute's
    previous-front bars come after its front bars, in symbol order: the hub's publishing order."""
    return heapq.merge(*bars.values(), *(prev or {}).values(), key=lambda sb: (sb.bar.start, sb.prev, sb.symbol))
