"""A report over a period: one section per strategy and one for the portfolio, and its files.

The numbers are :mod:`multialpha.report.compute`'s; this module picks the period and the
fills, and writes summary.csv, daily.csv, trades.csv and one PNG per section.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Sequence

from multialpha import cme_time
from multialpha.report import compute
from multialpha.report.compute import Fill, RoundTrip

PORTFOLIO = "portfolio"
SUMMARY_FIELDS = ("trades", "open_at_end", "win_rate", "net_pnl", "net_pnl_no_slippage", "commission",
                  "slippage_ticks", "slippage_usd", "fills_without_price", "max_drawdown", "max_drawdown_pct",
                  "sharpe", "sortino", "exposure")
TRADE_FIELDS = ("strategy", "symbol", "side", "quantity", "contract", "entry_time", "entry_signal", "entry_fill",
                "exit_time", "exit_signal", "exit_fill", "trading_day", "pnl", "pnl_no_slippage", "slippage_usd")


@dataclass
class Section:
    name: str  # a strategy, or "portfolio"
    stats: dict[str, Any]
    trips: list[RoundTrip]
    open_fills: list[Fill]
    png: Path | None = None


@dataclass
class Report:
    first: date
    last: date
    capital: float
    days: list[date]
    sections: list[Section] = field(default_factory=list)
    denied: int = 0


class EmptyJournal(Exception):
    """Nothing to report on: no fill in the journal and no period given."""


class NoTradingDay(ValueError):
    """The period holds no CME trading day (a weekend)."""


def period(fills: Sequence[Fill], first: date | None, last: date | None) -> tuple[date, date]:
    """[first, last] trading days: as given, else the first/last fill's trading day."""
    if (first is None or last is None) and not fills:
        raise EmptyJournal("the order journal holds no fill: nothing to report (give --from and --to for an empty one)")
    days = [f.day for f in fills]
    return first or min(days), last or max(days)


def build(fills: Sequence[Fill], first: date, last: date, capital: float, strategies: Sequence[str],
          portfolio: bool = True, denied: int = 0) -> Report:
    """Sections for ``strategies`` (and the portfolio of them) over trading days [first, last].

    Fills after the period's last session are not seen (the period ends there); round trips
    count on their exit's trading day, so one entered before ``first`` and exited inside counts."""
    days = cme_time.trading_days(first, last)
    if not days:
        raise NoTradingDay(f"no CME trading day in {first} .. {last}")
    end = cme_time.session_bounds(days[-1])[1]
    seen = [f for f in fills if f.at <= end and f.strategy in strategies]
    rep = Report(first, last, capital, days, denied=denied)
    all_trips: list[RoundTrip] = []
    all_open: list[Fill] = []
    for name in strategies:
        trips, open_ = compute.pair(f for f in seen if f.strategy == name)
        all_trips += trips
        all_open += open_
        rep.sections.append(Section(name, compute.stats(trips, open_, days, capital, end), trips, open_))
    if portfolio and len(strategies) > 1:
        all_trips.sort(key=lambda t: t.exit.at)
        rep.sections.append(Section(PORTFOLIO, compute.stats(all_trips, all_open, days, capital, end),
                                    all_trips, all_open))
    return rep


def trade_row(t: RoundTrip) -> dict[str, Any]:
    e, x = t.entry, t.exit
    return {"strategy": e.strategy, "symbol": e.symbol, "side": e.side, "quantity": e.quantity,
            "contract": e.contract, "entry_time": cme_time.iso_z(e.at), "entry_signal": e.signal_price,
            "entry_fill": e.price, "exit_time": cme_time.iso_z(x.at), "exit_signal": x.signal_price,
            "exit_fill": x.price, "trading_day": t.day.isoformat(), "pnl": round(t.pnl, 2),
            "pnl_no_slippage": round(t.pnl_no_slippage, 2), "slippage_usd": round(t.pnl_no_slippage - t.pnl, 2)}


def write(rep: Report, out_dir: Path, png: bool = True) -> dict[str, Path]:
    """summary.csv, daily.csv, trades.csv and (``png``) equity_<section>.png in ``out_dir``."""
    from multialpha.report import charts

    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    rows = [{"section": s.name, **{k: _cell(s.stats[k]) for k in SUMMARY_FIELDS}} for s in rep.sections]
    paths["summary"] = _csv(out_dir / "summary.csv", rows, ["section", *SUMMARY_FIELDS])
    daily = [{"trading_day": d.isoformat(), "section": s.name, "pnl": round(s.stats["daily"][d], 2),
              "equity": round(eq, 2), "drawdown": round(dd, 2)}
             for s in rep.sections for d, eq, dd in zip(rep.days, s.stats["equity"], s.stats["drawdown"])]
    paths["daily"] = _csv(out_dir / "daily.csv", daily, ["trading_day", "section", "pnl", "equity", "drawdown"])
    trips = [t for s in rep.sections if s.name != PORTFOLIO for t in s.trips
             if rep.first <= t.day <= rep.last]
    paths["trades"] = _csv(out_dir / "trades.csv", [trade_row(t) for t in trips], list(TRADE_FIELDS))
    if png:
        for s in rep.sections:
            s.png = charts.equity_drawdown(rep.days, rep.capital, s.stats["equity"], s.stats["drawdown"],
                                           out_dir / f"equity_{s.name}.png",
                                           title=f"{s.name}: {rep.first} .. {rep.last} (capital ${rep.capital:,.0f})")
            paths[f"png_{s.name}"] = s.png
    return paths


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    return round(v, 6) if isinstance(v, float) else v


def _csv(path: Path, rows: list[dict[str, Any]], fields: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return path
