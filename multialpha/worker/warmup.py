"""Warmup bars: hourly history per symbol (cached), daily bars resampled from it.

For every symbol the worker needs ``warmup_hourly_bars`` hourly and
``warmup_daily_bars`` daily bars before the boundary ``T`` (the start of the
current clock hour, or earlier when catch-up from the bar log starts
earlier). Daily bars are CME trading days built by the same
:class:`~multialpha.worker.resample.Resampler` the live path uses — never
Databento's UTC-date ``ohlcv-1d``. The day that contains ``T`` is left open
in the returned resampler so live minute bars complete it.

**Which contract.** The hub publishes, per root, ``ContractMap.front(root,
trading day)`` (roll date = expiry minus ``roll_days_before``). Databento's
continuous ``ROOT.c.0`` is the *calendar* rule (nearest expiry) and stays on
the old contract from the roll date until it expires, so history is asked
for by **raw symbol**: for every run of trading days with the same front
(``ContractMap.fronts``), that contract over those days. One request carries
every contract (and root) that is missing, records are split by instrument
id through the response's symbology mappings, and each contract's own days
are cached under its raw symbol (:class:`~multialpha.worker.cache.BarCache`,
``stype`` ``raw_symbol``) — old ``continuous/ROOT.c.0`` caches are never read.
Nothing of ``databento`` itself is imported: its ``DBNStore`` pulls pandas and pyarrow
(~100 MB kept for the worker's life); ``histclient`` sends the same request and decodes the
DBN with ``databento_dbn`` and numpy.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

import numpy as np

from multialpha import cme_time
from multialpha.contracts import ContractMap
from multialpha.worker import histclient
from multialpha.worker.cache import BarCache, CacheKey, Columns, empty
from multialpha.worker.resample import OHLCV, Resampler

log = logging.getLogger(__name__)

SCHEMA = "ohlcv-1h"
SCHEMA_1M = "ohlcv-1m"
STYPE = "raw_symbol"  # the hub's contract per trading day (see the module doc)
STYPE_CONTINUOUS = "continuous"  # only for a root the contract map does not know
# Fixed-point 1e-9 prices -> float by *division*: the correctly rounded nearest double, the value
# the hub publishes (`round(fixed / PX, digits)` for on-tick prices). Multiplying by 1e-9 adds
# ulp noise, so warmed-up and backtest bars differed from live bars in the last bit (parity).
PRICE_SCALE = 1e9
# One request may ask for several contracts over the union of their missing ranges, so it also
# returns each contract's bars outside its own front days (dropped). For hourly bars that is a
# few MB at most: always one request. For minute bars, a batch is closed when
# (symbols x request span) would exceed this multiple of the span actually needed.
MAX_OVERFETCH = {SCHEMA: math.inf, SCHEMA_1M: 2.0}
_DEFAULT_CONTRACT_MAP = Path(__file__).resolve().parents[2] / "Data" / "Databento_contract_map.yml"


def continuous_symbol(root: str) -> str:
    """Databento's calendar-rolled continuous symbol (used only for roots without a contract rule)."""
    return f"{root}.c.0"


class Fetch(Protocol):
    """Bars of ``symbols`` (``stype_in``) with ts in [start_ns, end_ns): one Historical request."""

    def __call__(self, schema: str, symbols: list[str], stype_in: str, start_ns: int, end_ns: int) -> dict[str, Columns]: ...


def databento_fetch(client_factory: Callable[[], Any], dataset: str) -> Fetch:
    """A Fetch backed by a Historical client (created on first use): ``histclient.HistoricalClient``
    (``endpoints.bars_client``), which decodes DBN without pandas/pyarrow (see histclient.py).

    Several symbols go in one ``timeseries.get_range``; records are split per
    requested symbol by instrument id, from the response's symbology mappings.
    """
    holder: dict[str, Any] = {}

    def fetch(schema: str, symbols: list[str], stype_in: str, start_ns: int, end_ns: int) -> dict[str, Columns]:
        if "client" not in holder:
            holder["client"] = client_factory()
        got = holder["client"].get_range(dataset, schema, list(symbols), stype_in, start_ns, end_ns)
        arr = got.records
        if len(arr) == 0:
            return {s: empty() for s in symbols}
        if len(symbols) == 1:
            return {symbols[0]: _columns(arr)}
        owner = histclient.owners(got.mappings, arr, symbols)
        return {s: _columns(arr[owner == i]) for i, s in enumerate(symbols)}

    return fetch


def _columns(arr: np.ndarray) -> Columns:
    return {
        "ts": arr["ts_event"].astype(np.int64),
        "open": arr["open"].astype(np.float64) / PRICE_SCALE,
        "high": arr["high"].astype(np.float64) / PRICE_SCALE,
        "low": arr["low"].astype(np.float64) / PRICE_SCALE,
        "close": arr["close"].astype(np.float64) / PRICE_SCALE,
        "volume": arr["volume"].astype(np.int64),
    }


def day_start_ns(day: date) -> int:
    """First instant of CME trading day ``day``: the previous day's 16:00 CT close (``cme_time.trading_day``)."""
    return cme_time.to_ns(cme_time.session_bounds(cme_time.previous_trading_day(day))[1])


@dataclass(frozen=True)
class Piece:
    """``contract`` is the hub's contract for every instant of [start_ns, end_ns)."""

    contract: str
    start_ns: int
    end_ns: int


def front_pieces(cmap: ContractMap, root: str, start_ns: int, end_ns: int) -> list[Piece]:
    """[start_ns, end_ns) cut at roll boundaries, each piece with its front contract's raw symbol."""
    if end_ns <= start_ns:
        return []
    first, last = cme_time.trading_day(start_ns), cme_time.trading_day(end_ns - 1)
    out = []
    for c, d0, d1 in cmap.fronts(root, first, last):
        s = max(start_ns, day_start_ns(d0))
        e = min(end_ns, day_start_ns(cme_time.next_trading_day(d1)))
        if s < e:
            out.append(Piece(c.raw_symbol, s, e))
    return out


def overlap_pieces(cmap: ContractMap, root: str, start_ns: int, end_ns: int, days: int) -> list[Piece]:
    """The previous front over [start_ns, end_ns): the old contract on the ``days`` trading days
    from each roll (``hub.overlap.prev_front``, the hub's rule), cut to the range."""
    from multialpha.hub.overlap import prev_front

    if days <= 0 or end_ns <= start_ns or root not in cmap.rules:
        return []
    out: list[Piece] = []
    for day in cme_time.trading_days(cme_time.trading_day(start_ns), cme_time.trading_day(end_ns - 1)):
        prev = prev_front(cmap, root, day, days)
        if prev is None:
            continue
        s = max(start_ns, day_start_ns(day))
        e = min(end_ns, day_start_ns(cme_time.next_trading_day(day)))
        if out and out[-1].contract == prev and out[-1].end_ns == s:
            out[-1] = Piece(prev, out[-1].start_ns, e)
        elif s < e:
            out.append(Piece(prev, s, e))
    return out


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
    contract: str = ""  # the boundary's front: hours and days are in its price level (worker/adjust.py)


@dataclass
class Historian:
    """Cached history of the hub's contract per trading day.

    ``requests`` counts calls that reached the Historical API. ``contracts`` is the
    contract map the hub uses (``settings.contract_map_path``); None -> the shipped
    ``Data/Databento_contract_map.yml``.
    """

    cache: BarCache
    fetch: Fetch
    dataset: str
    requests: int = 0
    cached_ranges: int = 0
    fetched_bars: int = 0
    fetch_s: float = 0.0  # wall seconds inside Historical requests (request -> decoded), for the start-up log
    log_lines: list[str] = field(default_factory=list)
    contracts: ContractMap | None = None

    @property
    def cmap(self) -> ContractMap:
        if self.contracts is None:
            self.contracts = ContractMap.load(_DEFAULT_CONTRACT_MAP)
        return self.contracts

    def hourly(self, root: str, start: datetime, end: datetime) -> Columns:
        return self.bars(SCHEMA, root, start, end)

    def minutes(self, root: str, start: datetime, end: datetime) -> Columns:
        """Complete minutes of the current hour before the bar log has them (first start)."""
        return self.bars(SCHEMA_1M, root, start, end)

    def bars(self, schema: str, root: str, start: datetime, end: datetime) -> Columns:
        """Every bar of ``root`` starting in [start, end), each from the hub's contract of its trading day."""
        parts = [cols for _, cols in self.segments(schema, root, start, end)]
        if not parts:
            return empty()
        return {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}

    def segments(self, schema: str, root: str, start: datetime, end: datetime,
                 overlap_days: int = 0) -> list[tuple[str, Columns]]:
        """``(contract, bars)`` per roll-free piece of [start, end), in time order (contract "" = unknown root).

        ``overlap_days`` > 0: the *previous* front's pieces instead (``overlap_pieces``)."""
        before = self.requests
        self.prefetch(schema, [root], start, end, overlap_days)
        if self.requests == before:
            self.cached_ranges += 1  # served from the cache (possibly filled by an earlier batch prefetch)
        return [(p.contract if stype == STYPE else "", self.cache.read(key, p.start_ns, p.end_ns))
                for key, stype, p in self._pieces(schema, root, cme_time.to_ns(start), cme_time.to_ns(end),
                                                  overlap_days)]

    def prefetch(self, schema: str, roots: Iterable[str], start: datetime, end: datetime,
                 overlap_days: int = 0, roll_gaps: bool = False) -> None:
        """Fetch whatever the cache lacks for ``roots`` over [start, end): one request per batch
        (hourly: one in all; see ``MAX_OVERFETCH``), each contract's own days cached under its raw symbol.
        ``roll_gaps``: also both contracts around each roll that define its gap (``adjust.gap_pieces``)."""
        s, e = cme_time.to_ns(start), cme_time.to_ns(end)
        gaps: dict[str, list[tuple[CacheKey, int, int]]] = {}  # stype -> missing (key, start, end)
        for root in roots:
            missing = [(key, stype, gs, ge) for key, stype, p in self._pieces(schema, root, s, e, overlap_days, roll_gaps)
                       for gs, ge in self.cache.missing(key, p.start_ns, p.end_ns)]
            for key, stype, gs, ge in missing:
                gaps.setdefault(stype, []).append((key, gs, ge))
        for stype, todo in gaps.items():
            for batch in _batches(todo, MAX_OVERFETCH.get(schema, 1.0)):
                symbols = sorted({k.symbol for k, _, _ in batch})
                bs, be = min(g[1] for g in batch), max(g[2] for g in batch)
                self.requests += 1
                t = time.monotonic()
                got = self.fetch(schema, symbols, stype, bs, be)
                self.fetch_s += time.monotonic() - t
                for key, gs, ge in batch:
                    cols = got.get(key.symbol, empty())
                    keep = (cols["ts"] >= gs) & (cols["ts"] < ge)
                    cols = {c: v[keep] for c, v in cols.items()}
                    self.fetched_bars += len(cols["ts"])
                    self.cache.write(key, gs, ge, cols)

    def _pieces(self, schema: str, root: str, s: int, e: int, overlap_days: int = 0,
                roll_gaps: bool = False) -> list[tuple[CacheKey, str, Piece]]:
        if roll_gaps and root in self.cmap.rules:  # plus the rolls' gap hours not inside those pieces
            from multialpha.worker.adjust import gap_pieces

            own = self._pieces(schema, root, s, e, overlap_days)
            return own + [(CacheKey(self.dataset, schema, STYPE, g.contract), STYPE, g)
                          for g in gap_pieces(self.cmap, root, s, e)
                          if not any(p.contract == g.contract and p.start_ns <= g.start_ns and g.end_ns <= p.end_ns
                                     for _, _, p in own)]
        if overlap_days > 0:
            return [(CacheKey(self.dataset, schema, STYPE, p.contract), STYPE, p)
                    for p in overlap_pieces(self.cmap, root, s, e, overlap_days)]
        if root in self.cmap.rules:
            return [(CacheKey(self.dataset, schema, STYPE, p.contract), STYPE, p) for p in front_pieces(self.cmap, root, s, e)]
        key = CacheKey(self.dataset, schema, STYPE_CONTINUOUS, continuous_symbol(root))
        return [(key, STYPE_CONTINUOUS, Piece("", s, e))] if s < e else []


def _batches(gaps: list[tuple[CacheKey, int, int]], max_overfetch: float) -> list[list[tuple[CacheKey, int, int]]]:
    """Group missing ranges into requests: greedily in time order while
    (distinct symbols x request span) <= ``max_overfetch`` x (sum of the ranges' spans)."""
    out: list[list[tuple[CacheKey, int, int]]] = []
    cur: list[tuple[CacheKey, int, int]] = []
    for g in sorted(gaps, key=lambda g: (g[1], g[0].symbol)):
        trial = cur + [g]
        span = max(x[2] for x in trial) - min(x[1] for x in trial)
        need = sum(x[2] - x[1] for x in trial)
        if cur and len({x[0].symbol for x in trial}) * span > max_overfetch * need:
            out.append(cur)
            trial = [g]
        cur = trial
    if cur:
        out.append(cur)
    return out


def to_bars(cols: Columns, span: timedelta = timedelta(hours=1)) -> list[OHLCV]:
    return list(iter_bars(cols, span))


def iter_bars(cols: Columns, span: timedelta = timedelta(hours=1), chunk: int = 4096) -> Iterator[OHLCV]:
    """The bars of ``cols`` one at a time, converted ``chunk`` rows at a time: a backtest walks
    20 days of minute bars of every root at once, and whole-column ``tolist()`` copies (~200 bytes a
    bar) per root would add up to what the columns were kept to avoid."""
    for a in range(0, len(cols["ts"]), chunk):
        ts, o, h, l, c, v = (cols[k][a:a + chunk].tolist() for k in ("ts", "open", "high", "low", "close", "volume"))
        for i in range(len(ts)):
            start = cme_time.from_ns(ts[i])
            yield OHLCV(start, start + span, o[i], h[i], l[i], c[i], v[i])


def warm_symbol(historian: Historian, root: str, boundary: datetime, daily_bars: int, hourly_bars: int,
                adjust: str = "none") -> SymbolWarmup:
    """``adjust`` (``roll.adjust``): history back-adjusted into the boundary's front (worker/adjust.py)."""
    if daily_bars <= 0 and hourly_bars <= 0:
        return SymbolWarmup(root, [], [], Resampler("day"))
    start = history_start(boundary, daily_bars, hourly_bars)
    from multialpha.worker.adjust import adjusted_hours

    cols, anchor = adjusted_hours(historian, root, start, boundary, adjust)
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
    return SymbolWarmup(root, to_bars(keep), days[-daily_bars:] if daily_bars else [], day_r, anchor)


def warm_all(
    historian: Historian,
    roots: list[str],
    boundary: datetime,
    daily_bars: int,
    hourly_bars: int,
    progress: bool | None = None,
    adjust: str = "none",
) -> dict[str, SymbolWarmup]:
    """Warm every root (``adjust``: see :func:`warm_symbol`); a rich progress bar on an interactive terminal."""
    if progress is None:
        progress = sys.stderr.isatty()
    out: dict[str, SymbolWarmup] = {}

    def download() -> None:  # one request for every root's missing hours (cold start), not one per root
        if daily_bars > 0 or hourly_bars > 0:
            historian.prefetch(SCHEMA, roots, history_start(boundary, daily_bars, hourly_bars), boundary,
                               roll_gaps=adjust != "none")  # the rolls' gaps in the same request

    if not progress:
        download()
        for root in roots:
            out[root] = warm_symbol(historian, root, boundary, daily_bars, hourly_bars, adjust)
        return out
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(f"warmup: history of {len(roots)} symbols", total=len(roots))
        download()
        for root in roots:
            bar.update(task, description=f"warmup {root}")
            out[root] = warm_symbol(historian, root, boundary, daily_bars, hourly_bars, adjust)
            bar.advance(task)
    return out


def cache_root(settings: Any) -> Path:
    return settings.path(settings.worker.cache_dir)
