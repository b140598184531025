"""The numbers of a trading period: pure functions over fills, round trips and trading days.

Used by `multialpha report` (fills read from the live or paper journal) and by the
backtest summary (fills from the backtest's own journal), so both read alike.
Definitions (docs/report.md):

- a round trip pairs an entry with the next exit of the same (strategy, symbol); its net P&L
  is direction x quantity x multiplier x (exit fill - entry fill) - 2 x quantity x commission
  per side, and it is booked on the CME trading day of its EXIT (cme_time.trading_day);
- the fill is the journal's ``fill_price`` (simulated paper/backtest fills), else the signal
  price (live: TradersPost reports no fill); "without slippage" uses the signal prices;
- daily return of day D = P&L of D / capital (``report.capital``, else starting cash), every
  trading day of the period counted, days without a trade as 0;
- Sharpe = mean / sample standard deviation of the daily returns x sqrt(252); Sortino = mean /
  downside deviation (root mean square of min(r, 0) over all days) x sqrt(252); risk-free 0;
  None when undefined (fewer than two days, or no dispersion / no losing day);
- drawdown = running peak of equity (from the capital) minus equity, in dollars;
- exposure = share of the period's open-market time (CME sessions, cme_time.open_seconds)
  with at least one position held, a position being held from its entry fill (the signal
  bar's close) to its exit fill.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Iterable, Sequence

from multialpha import cme_time
from multialpha.orders.fills import is_buy

ANNUAL = math.sqrt(252)
_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Fill:
    """One accepted order that (as far as the journal knows) reached the market."""

    strategy: str
    symbol: str
    side: str  # the position's side: long | short
    kind: str  # entry | exit
    quantity: int
    contract: str
    at: datetime  # when it filled: the signal bar's close
    signal_price: float
    fill_price: float | None  # None: not known (live)
    tick: float
    multiplier: float
    commission: float  # per contract per side
    tag: str = ""  # roll | expiry for the runtime's legs

    @property
    def day(self) -> date:
        """The signal bar's CME trading day (its start's: the session's last bar closes at 16:00 CT,
        which is already the next day; the gate books it the same way)."""
        return cme_time.trading_day(self.at - _MINUTE)

    @property
    def buy(self) -> bool:
        return is_buy(self.side, self.kind)

    @property
    def price(self) -> float:
        """The price P&L is booked at: the fill where known, else the signal price."""
        return self.signal_price if self.fill_price is None else self.fill_price

    @property
    def slippage_ticks(self) -> float | None:
        """Ticks the fill was worse than the signal (negative: better); None when unknown."""
        if self.fill_price is None:
            return None
        diff = (self.fill_price - self.signal_price) if self.buy else (self.signal_price - self.fill_price)
        return round(diff / self.tick, 6)

    @property
    def slippage_usd(self) -> float | None:
        t = self.slippage_ticks
        return None if t is None else t * self.tick * self.multiplier * self.quantity


@dataclass(frozen=True)
class RoundTrip:
    entry: Fill
    exit: Fill

    @property
    def direction(self) -> int:
        return 1 if self.entry.side == "long" else -1

    @property
    def commission(self) -> float:
        return self.entry.quantity * (self.entry.commission + self.exit.commission)

    @property
    def pnl(self) -> float:
        """Net of commissions, at the fills."""
        e = self.entry
        return self.direction * e.quantity * e.multiplier * (self.exit.price - e.price) - self.commission

    @property
    def pnl_no_slippage(self) -> float:
        """Net of commissions, at the signal prices."""
        e = self.entry
        return self.direction * e.quantity * e.multiplier * (self.exit.signal_price - e.signal_price) - self.commission

    @property
    def day(self) -> date:
        """The CME trading day the round trip's P&L is booked on: its exit's."""
        return self.exit.day


def pair(fills: Iterable[Fill]) -> tuple[list[RoundTrip], list[Fill]]:
    """Round trips (in exit order) and the entries still open at the end."""
    open_: dict[tuple[str, str], Fill] = {}
    trips: list[RoundTrip] = []
    for f in fills:
        key = (f.strategy, f.symbol)
        if f.kind == "entry":
            open_[key] = f
        elif key in open_:
            trips.append(RoundTrip(open_.pop(key), f))
    return trips, list(open_.values())


def daily_pnl(trips: Iterable[RoundTrip], days: Sequence[date], *, slippage: bool = True) -> dict[date, float]:
    """Net P&L per trading day of ``days`` (every day present, 0 without a trade)."""
    out = {d: 0.0 for d in days}
    for t in trips:
        if t.day in out:
            out[t.day] += t.pnl if slippage else t.pnl_no_slippage
    return out


def equity(capital: float, pnls: Iterable[float]) -> list[float]:
    """Capital plus the running sum of ``pnls``: equity at the end of each period."""
    out, eq = [], capital
    for p in pnls:
        eq += p
        out.append(eq)
    return out


def drawdowns(capital: float, curve: Iterable[float]) -> list[float]:
    """Dollars below the running equity peak (the peak starts at the capital)."""
    out, peak = [], capital
    for eq in curve:
        peak = max(peak, eq)
        out.append(peak - eq)
    return out


def max_drawdown(capital: float, curve: Sequence[float]) -> tuple[float, float]:
    """Largest drawdown in dollars and as a fraction of the peak it fell from."""
    peak, mdd, pct = capital, 0.0, 0.0
    for eq in curve:
        peak = max(peak, eq)
        if peak - eq > mdd:
            mdd, pct = peak - eq, (peak - eq) / peak if peak > 0 else 0.0
    return mdd, pct


def returns(pnls: Iterable[float], capital: float) -> list[float]:
    return [p / capital for p in pnls]


def sharpe(rets: Sequence[float]) -> float | None:
    if len(rets) < 2:
        return None
    mean = sum(rets) / len(rets)
    sd = math.sqrt(sum((r - mean) ** 2 for r in rets) / (len(rets) - 1))
    return mean / sd * ANNUAL if sd > 0 else None


def sortino(rets: Sequence[float]) -> float | None:
    if len(rets) < 2:
        return None
    down = math.sqrt(sum(min(r, 0.0) ** 2 for r in rets) / len(rets))
    return sum(rets) / len(rets) / down * ANNUAL if down > 0 else None


def exposure(spans: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime) -> float:
    """Share of the open-market time of [start, end) with at least one span open (spans merged)."""
    total = cme_time.open_seconds(start, end)
    if total <= 0:
        return 0.0
    merged: list[list[datetime]] = []
    for a, b in sorted((max(a, start), min(b, end)) for a, b in spans):
        if b <= a:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return sum(cme_time.open_seconds(a, b) for a, b in merged) / total


def slippage(fills: Iterable[Fill]) -> tuple[float, float, int]:
    """(ticks, dollars) summed over the fills whose fill price is known, and how many are unknown."""
    ticks = usd = 0.0
    unknown = 0
    for f in fills:
        if f.fill_price is None:
            unknown += 1
        else:
            ticks += f.slippage_ticks or 0.0
            usd += f.slippage_usd or 0.0
    return ticks, usd, unknown


def stats(trips: Sequence[RoundTrip], open_fills: Sequence[Fill], days: Sequence[date], capital: float,
          end: datetime | None = None) -> dict[str, object]:
    """Everything the report shows for one strategy (or the portfolio) over trading days ``days``.

    ``end``: where positions still open stop counting for exposure (default: the last day's close).
    """
    if not days:
        raise ValueError("no trading day in the period")
    start = cme_time.session_bounds(days[0])[0]
    stop = end or cme_time.session_bounds(days[-1])[1]
    in_range = [t for t in trips if days[0] <= t.day <= days[-1]]
    daily = daily_pnl(in_range, days)
    daily_raw = daily_pnl(in_range, days, slippage=False)
    curve = equity(capital, daily.values())
    mdd, mdd_pct = max_drawdown(capital, curve)
    rets = returns(daily.values(), capital)
    fills = [f for t in in_range for f in (t.entry, t.exit)]
    s_ticks, s_usd, unknown = slippage(fills)
    wins = [t for t in in_range if t.pnl > 0]
    spans = [(t.entry.at, t.exit.at) for t in trips] + [(f.at, stop) for f in open_fills]
    return {
        "trades": len(in_range),
        "open_at_end": len(open_fills),
        "win_rate": len(wins) / len(in_range) if in_range else None,
        "net_pnl": sum(daily.values()),
        "net_pnl_no_slippage": sum(daily_raw.values()),
        "commission": sum(t.commission for t in in_range),
        "slippage_ticks": s_ticks,
        "slippage_usd": s_usd,
        "fills_without_price": unknown,
        "max_drawdown": mdd,
        "max_drawdown_pct": mdd_pct,
        "sharpe": sharpe(rets),
        "sortino": sortino(rets),
        "exposure": exposure(spans, start, stop),
        "daily": daily,
        "equity": curve,
        "drawdown": drawdowns(capital, curve),
    }
