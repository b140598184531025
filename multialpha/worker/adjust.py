"""Roll-adjusted hour and day series: one rule for warmup, live resampling and the backtest.

At a roll the front contract changes and its price level jumps by the calendar spread (ES:
tens of points). An hour/day series that splices the two contracts raw shows that jump as a
market move: a breakout channel, an ATR, IBS's armed close all see it. Here every hour/day
bar is mapped into one *anchor* contract's price level (``strategies.NAME.roll.adjust``):

- ``difference`` (default): ``p + shift``, the gap added or subtracted (spreads, channels and
  ATRs in points are exact);
- ``ratio``: ``p * scale`` (returns and percentages are exact; needs positive prices);
- ``none``: raw.

**The gap of a roll** (:func:`roll_gap`, the only place of the rule): the old and the new
front's ``ohlcv-1h`` closes of the *latest hour in which both printed a bar* on the trading day
before the roll day (:func:`gap_window`: from that day's open to the roll day's open). Both
contracts' hours come from Historical through the warmup cache (:func:`historical_gap`), so
warmup, live and backtest read the same two prices. No common hour (a contract did not trade
that day, or Historical failed) -> the roll is left unadjusted, logged.

**The anchor** is the front of the warmup boundary's trading day (``SymbolWarmup.contract``).
Warmup history is *back-adjusted* into it, so every bar a strategy sees at start is in the
level of the contract it trades and the newest bars are raw. A roll *during* a run cannot
back-adjust the past: indicators (Backtrader's and the plugins' rules) were computed from it
incrementally. So the new front's bars continue the series in the anchor's level (*forward*,
by the same gap): the series stays the back-adjusted one up to a constant shift (difference)
or factor (ratio), exactly what any rule built on differences (channel vs close, ATR, stops,
IBS) resp. on ratios sees the same way. A restart re-anchors to the then front. Orders never
use these prices: every hour/day item carries its raw close (``Item.raw_close``) and
``MultiAlphaStrategy.enter/exit`` price from it; the minute feed stays raw.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Callable, Literal

import numpy as np

from multialpha import cme_time
from multialpha.worker.resample import OHLCV

if TYPE_CHECKING:
    from multialpha.contracts import ContractMap
    from multialpha.worker.cache import Columns
    from multialpha.worker.warmup import Historian, Piece

log = logging.getLogger(__name__)

Mode = Literal["difference", "ratio", "none"]
PRICES = ("open", "high", "low", "close")


@dataclass(frozen=True)
class Roll:
    """``new`` is the front from trading day ``day`` on; ``old`` was before it."""

    day: date
    old: str
    new: str


@dataclass(frozen=True)
class Gap:
    """The two closes that define a roll's gap (:func:`roll_gap`)."""

    hour_ns: int  # start of the common hour
    old_close: float
    new_close: float


@dataclass(frozen=True)
class Level:
    """Prices of one contract in the anchor's level: ``p * scale + shift``."""

    scale: float = 1.0
    shift: float = 0.0

    @property
    def identity(self) -> bool:
        return self.scale == 1.0 and self.shift == 0.0

    def __call__(self, p: float) -> float:
        return p * self.scale + self.shift

    def bar(self, b: OHLCV) -> OHLCV:
        if self.identity:
            return b
        return OHLCV(b.start, b.end, self(b.open), self(b.high), self(b.low), self(b.close), b.volume)

    def then(self, mode: Mode, gap: Gap | None, forward: bool) -> "Level":
        """This level composed with one roll's step: ``forward`` maps the new contract into the
        old one's level (a roll during a run), else the old into the new (back-adjusting history)."""
        if gap is None or mode == "none":
            return self
        if mode == "difference":
            d = gap.new_close - gap.old_close
            return Level(self.scale, self.shift - d if forward else self.shift + d)
        if gap.old_close <= 0 or gap.new_close <= 0:
            log.warning("ratio adjustment needs positive prices (%s, %s): roll left unadjusted",
                        gap.old_close, gap.new_close)
            return self
        r = gap.old_close / gap.new_close if forward else gap.new_close / gap.old_close
        return Level(self.scale * r, self.shift)


def gap_window(day: date) -> tuple[int, int]:
    """[open of the trading day before ``day``, open of ``day``) in ns: where :func:`roll_gap` looks."""
    from multialpha.worker.warmup import day_start_ns

    return day_start_ns(cme_time.previous_trading_day(day)), day_start_ns(day)


def roll_gap(old: "Columns", new: "Columns") -> Gap | None:
    """The old and new contract's closes of the latest bar start both have (hourly bars of
    :func:`gap_window`); None if they have none in common."""
    common = np.intersect1d(old["ts"], new["ts"])
    if len(common) == 0:
        return None
    t = common[-1]
    return Gap(int(t), float(old["close"][old["ts"] == t][-1]), float(new["close"][new["ts"] == t][-1]))


def rolls_in(cmap: "ContractMap", root: str, start_ns: int, end_ns: int) -> list[Roll]:
    """Rolls whose new front's first day opens in (start_ns, end_ns] (the hub's rule, ContractMap)."""
    if root not in cmap.rules or end_ns <= start_ns:
        return []
    from multialpha.worker.warmup import day_start_ns

    fronts = cmap.fronts(root, cme_time.trading_day(start_ns), cme_time.trading_day(end_ns))
    return [Roll(b[1], a[0].raw_symbol, b[0].raw_symbol) for a, b in zip(fronts, fronts[1:])
            if start_ns < day_start_ns(b[1]) <= end_ns]


def gap_pieces(cmap: "ContractMap", root: str, start_ns: int, end_ns: int) -> list["Piece"]:
    """Both contracts over :func:`gap_window` of every roll in (start_ns, end_ns]: what
    :func:`historical_gap` reads (fetched with the warmup's own request)."""
    from multialpha.worker.warmup import Piece

    out = []
    for r in rolls_in(cmap, root, start_ns, end_ns):
        s, e = gap_window(r.day)
        out += [Piece(r.old, s, e), Piece(r.new, s, e)]
    return out


def historical_gap(historian: "Historian", root: str, roll: Roll) -> Gap | None:
    """:func:`roll_gap` of ``roll`` from Historical hourly bars (cached; fetched if missing)."""
    from multialpha.worker import warmup

    s, e = gap_window(roll.day)
    historian.prefetch(warmup.SCHEMA, [root], cme_time.from_ns(s), cme_time.from_ns(e), roll_gaps=True)
    key = lambda c: warmup.CacheKey(historian.dataset, warmup.SCHEMA, warmup.STYPE, c)  # noqa: E731
    gap = roll_gap(historian.cache.read(key(roll.old), s, e), historian.cache.read(key(roll.new), s, e))
    if gap is None:
        log.warning("%s roll %s -> %s on %s: no hour in which both traded on the day before; "
                    "the roll is not adjusted", root, roll.old, roll.new, roll.day)
    return gap


def back_adjust(segments: list[tuple[str, "Columns"]], gaps: dict[tuple[str, str], Gap | None],
                anchor: str, mode: Mode) -> list[tuple[str, "Columns"]]:
    """Warmup: every segment mapped into ``anchor``'s level, walking the rolls back from it.

    ``segments`` are ``(contract, bars)`` in time order; ``gaps[(old, new)]`` is each roll's gap.
    A segment after the anchor (none in a warmup) or of an unknown contract ("") is left raw."""
    if mode == "none":
        return segments
    names: list[str] = []
    for c, _ in segments:
        if not names or names[-1] != c:
            names.append(c)
    if anchor not in names:
        names.append(anchor)
    out: list[tuple[str, Columns]] = []
    levels: dict[str, Level] = {anchor: Level()}
    for i in range(names.index(anchor) - 1, -1, -1):  # from the anchor back, one roll at a time
        old, new = names[i], names[i + 1]
        levels[old] = levels[new].then(mode, gaps.get((old, new)), forward=False)
    for c, cols in segments:
        lv = levels.get(c, Level())
        if lv.identity:
            out.append((c, cols))
        else:
            out.append((c, {k: (lv.scale * v + lv.shift if k in PRICES else v) for k, v in cols.items()}))
    return out


def adjusted_hours(historian: "Historian", root: str, start: datetime, boundary: datetime,
                   mode: str) -> tuple["Columns", str]:
    """Warmup's hours of [start, boundary), back-adjusted into the boundary's front, and that
    contract (the anchor; "" for a root without a contract rule: raw ``ROOT.c.0`` history)."""
    from multialpha.worker.cache import empty
    from multialpha.worker.warmup import SCHEMA

    segs = historian.segments(SCHEMA, root, start, boundary)
    cmap = historian.cmap
    anchor = cmap.front(root, cme_time.trading_day(boundary)).raw_symbol if root in cmap.rules else ""
    if mode != "none" and anchor:
        s, e = cme_time.to_ns(start), cme_time.to_ns(boundary)
        gaps = {(r.old, r.new): historical_gap(historian, root, r) for r in rolls_in(cmap, root, s, e)}
        segs = back_adjust(segs, gaps, anchor, mode)  # type: ignore[arg-type]
    parts = [cols for _, cols in segs]
    if not parts:
        return empty(), anchor
    return {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}, anchor


GapSource = Callable[[str, Roll], "Gap | None"]


class RollAdjuster:
    """The live/backtest side (``FeedRouter``): each symbol's contract level from its anchor on.

    ``observe`` is told the contract of every minute bar; at a change of contract it fetches the
    roll's gap once (``gap_source``: :func:`historical_gap` on the worker's Historian) and the new
    contract continues in the anchor's level (see the module doc)."""

    def __init__(self, mode: Mode, gap_source: GapSource, anchors: dict[str, str] | None = None) -> None:
        self.mode = mode
        self.gap_source = gap_source
        self.current: dict[str, str] = dict(anchors or {})  # symbol -> contract of the latest bar
        self.levels: dict[tuple[str, str], Level] = {(s, c): Level() for s, c in self.current.items()}
        self.gaps: list[tuple[str, Roll, Gap | None]] = []  # every roll met, for status/tests

    def observe(self, symbol: str, contract: str, start: datetime) -> str:
        """The contract of ``symbol``'s bar starting at ``start`` ("" = unchanged); returns it."""
        cur = self.current.get(symbol, "")
        if not contract or contract == cur:
            return cur
        self.current[symbol] = contract
        if not cur:  # no anchor (no warmup): the first contract seen is one
            self.levels[(symbol, contract)] = Level()
            return contract
        if (symbol, contract) not in self.levels:
            roll = Roll(cme_time.trading_day(start), cur, contract)
            gap: Gap | None = None
            if self.mode != "none":
                try:
                    gap = self.gap_source(symbol, roll)
                except Exception:
                    log.exception("%s roll %s -> %s: gap unknown, the roll is not adjusted", symbol, cur, contract)
            self.gaps.append((symbol, roll, gap))
            prev = self.levels.get((symbol, cur), Level())
            self.levels[(symbol, contract)] = prev.then(self.mode, gap, forward=True)
            log.info("%s roll %s -> %s: hour/day bars adjusted (%s) by %s", symbol, cur, contract, self.mode, gap)
        return contract

    def level(self, symbol: str, contract: str) -> Level:
        return self.levels.get((symbol, contract), Level())
