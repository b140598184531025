"""From a finished run to what a trader reads: orders, trades, equity, summary, files.

Orders come from the portfolio gate's own journal (the same stream the paper
journal writes live), so the order list is what the live pipeline would have
journaled. Trades pair each accepted entry with the next accepted exit of the
same (strategy, symbol); P&L = direction x quantity x multiplier x (exit fill -
entry fill) - commission per side x 2, the gate's formula. Fills are the paper fills
the router journals (``fill_price``: the signal price plus ``backtest.slippage_ticks``
against the trader, :mod:`multialpha.orders.fills`); ``pnl_no_slippage`` is the same
trade at its signal prices. The summary's ratios, drawdown, exposure and slippage come
from :mod:`multialpha.report.compute`, and the run's journal is also written as the
`multialpha report` of its period (``report/``), so a backtest and a live period read
alike. (The gate's per-day realised totals, ``run.day_realized``, measure a carried position from its
day reference, so they sum to the trade list only when no trade spans a
trading day.) A position still open at the end is marked at the last close
of its contract.

Prices in the outputs are rounded to the instrument's tick and money to
cents, so a CSV reads ``6405.25`` and ``-137.5``, never ``6405.250000000001``:
floats carry the binary noise of the fixed-point -> float conversion and of
the P&L arithmetic, which means nothing to a trader and breaks exact diffs.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from multialpha import cme_time
from multialpha.backtest import data as bt_data
from multialpha.backtest import parquet
from multialpha.backtest.runner import BacktestRun
from multialpha.orders.fills import is_buy, round_price
from multialpha.report import compute

ORDER_FIELDS = ("strategy", "symbol", "side", "kind", "bar_start", "quantity")  # the parity key


@dataclass(frozen=True)
class Order:
    strategy: str
    symbol: str
    side: str
    kind: str
    bar_start: str
    quantity: int
    price: float
    contract: str
    decision: str  # accepted | denied
    reason: str
    order_id: str
    signal_reason: str = ""  # the strategy's reason, or the runtime's "roll: A -> B" / "expiry: ..."
    fill_price: float = float("nan")  # the simulated fill (orders/fills.py); nan for denials

    @property
    def tag(self) -> str:
        """``roll`` / ``expiry`` for the runtime's roll legs and forced exits, else ''."""
        head = self.signal_reason.split(":", 1)[0]
        return head if head in ("roll", "expiry") else ""

    def key(self) -> tuple[str, str, str, str, str, int]:
        return (self.strategy, self.symbol, self.side, self.kind, self.bar_start, self.quantity)


@dataclass
class Trade:
    strategy: str
    symbol: str
    side: str
    quantity: int
    contract: str
    entry_time: str
    entry_price: float
    exit_time: str  # "" while open at the end
    exit_price: float
    pnl: float  # net of commissions; marked at the last close when open
    open: bool
    entry_tag: str = ""  # "roll": the re-entry leg of a roll pair
    exit_tag: str = ""  # "roll": the exit leg of a roll pair; "expiry": a forced exit before the last safe day
    pnl_no_slippage: float = 0.0  # the same trade at its signal prices

    @property
    def status(self) -> str:
        """``open`` (still held at the end, marked at the last close) or ``closed``."""
        return "open" if self.open else "closed"


TRADE_COLUMNS = ("strategy", "symbol", "side", "quantity", "contract", "entry_time", "entry_price", "exit_time",
                 "exit_price", "pnl", "pnl_no_slippage", "entry_tag", "exit_tag", "status")  # trades.csv / .parquet


def cents(x: float) -> float:
    return round(x, 2) + 0.0  # + 0.0: no "-0.0" in a CSV


def orders(run: BacktestRun) -> list[Order]:
    """Every entry/exit decision in journal order (accepted intents and denials)."""
    out = []
    for j in run.journal:
        ev = j.get("event")
        if ev not in ("intent", "denied") or "kind" not in j:
            continue
        out.append(Order(
            strategy=j["strategy"], symbol=j["symbol"], side=j.get("side", ""), kind=j["kind"],
            bar_start=j.get("bar_start", ""), quantity=int(j.get("quantity") or 0),
            price=float(j.get("price") or "nan"), contract=j.get("contract", ""),
            decision="accepted" if ev == "intent" else "denied", reason=j.get("reason", ""),
            order_id=j.get("order_id", ""), signal_reason=j.get("signal_reason", ""),
            fill_price=float(j.get("fill_price") or j.get("price") or "nan"),
        ))
    return out


def accepted_keys(run: BacktestRun) -> list[tuple[str, str, str, str, str, int]]:
    """(strategy, symbol, side, kind, bar_start, quantity) of every accepted order: the parity list."""
    return [o.key() for o in orders(run) if o.decision == "accepted"]


def _last_close(run: BacktestRun, symbol: str, contract: str) -> float | None:
    """The last close of ``contract`` (a rolled contract's own bars come from the overlap)."""
    best: tuple[int, float] | None = None  # (bar end ns, close) of the latest bar of ``contract``
    for bars in (run.bars.get(symbol, []), run.prev_bars.get(symbol, [])):
        for _, c, ends, closes in bt_data.closes(bars):  # columns: no bar objects rebuilt
            if len(ends) and (not contract or c == contract) and (best is None or int(ends[-1]) > best[0]):
                best = int(ends[-1]), float(closes[-1])
    return best[1] if best is not None else None


def trades(run: BacktestRun) -> list[Trade]:
    s = run.settings
    open_: dict[tuple[str, str], Order] = {}
    out: list[Trade] = []
    for o in orders(run):
        if o.decision != "accepted":
            continue
        key = (o.strategy, o.symbol)
        mult = s.instruments[o.symbol].multiplier
        comm = s.commission(o.strategy, o.symbol)
        tick = s.instruments[o.symbol].tick_size
        if o.kind == "entry":
            open_[key] = o
        elif key in open_:
            e = open_.pop(key)
            d = 1 if e.side == "long" else -1
            entry, exit_ = round_price(e.fill_price, tick), round_price(o.fill_price, tick)
            pnl = d * e.quantity * mult * (exit_ - entry) - 2 * e.quantity * comm
            raw = d * e.quantity * mult * (round_price(o.price, tick) - round_price(e.price, tick)) - 2 * e.quantity * comm
            out.append(Trade(e.strategy, e.symbol, e.side, e.quantity, e.contract, e.bar_start, entry,
                             o.bar_start, exit_, cents(pnl), False, e.tag, o.tag, cents(raw)))
    for (strat, sym), e in open_.items():
        d = 1 if e.side == "long" else -1
        tick = s.instruments[sym].tick_size
        entry, signal = round_price(e.fill_price, tick), round_price(e.price, tick)
        last = _last_close(run, sym, e.contract)
        last = round_price(last, tick) if last is not None else None
        mult, comm = s.instruments[sym].multiplier, s.commission(strat, sym)
        pnl = (d * e.quantity * mult * (last - entry) if last is not None else 0.0) - e.quantity * comm
        raw = (d * e.quantity * mult * (last - signal) if last is not None else 0.0) - e.quantity * comm
        out.append(Trade(strat, sym, e.side, e.quantity, e.contract, e.bar_start, entry, "",
                         last if last is not None else float("nan"), cents(pnl), True, e.tag, "", cents(raw)))
    out.sort(key=lambda t: (t.entry_time, t.strategy, t.symbol))
    return out


def equity_curve(run: BacktestRun, trade_list: list[Trade]) -> list[tuple[datetime, float]]:
    """Starting cash + realised + open P&L, at the end of every bar timestamp of the run.

    A fill happens at its signal bar's end (``bar_start`` + 1 min: the hour's end
    with hourly bars); it is applied at the first timestamp ending at or after it.
    """
    s = run.settings
    cash0 = float(s.portfolio.starting_cash)
    minute = timedelta(minutes=1)
    fills: list[tuple[datetime, int, Trade]] = []  # (when, 0 open | 1 close, trade)
    for t in trade_list:
        fills.append((cme_time.parse_iso(t.entry_time) + minute, 0, t))
        if t.exit_time:
            fills.append((cme_time.parse_iso(t.exit_time) + minute, 1, t))
    fills.sort(key=lambda f: (f[0], f[1]))
    names, ends, idx, closes = _marks(run)
    # One bar timestamp after the other; Python values only for the bars of that timestamp.
    bounds = [*(np.flatnonzero(np.diff(ends)) + 1).tolist(), len(ends)] if len(ends) else []
    realized, holding, last = 0.0, {}, {}
    out, i, a = [], 0, 0
    for b in bounds:
        for k, c in zip(idx[a:b].tolist(), closes[a:b].tolist()):
            last[names[k]] = c
        end = cme_time.from_ns(int(ends[a]))
        a = b
        while i < len(fills) and fills[i][0] <= end:
            _, kind, t = fills[i]
            i += 1
            realized -= t.quantity * s.commission(t.strategy, t.symbol)
            if kind == 0:
                holding[id(t)] = t
            else:
                holding.pop(id(t), None)
                d = 1 if t.side == "long" else -1
                realized += d * t.quantity * s.instruments[t.symbol].multiplier * (t.exit_price - t.entry_price)
        unreal = 0.0
        for t in holding.values():
            px = last.get((t.symbol, t.contract), t.entry_price)
            d = 1 if t.side == "long" else -1
            unreal += d * t.quantity * s.instruments[t.symbol].multiplier * (px - t.entry_price)
        out.append((end, cash0 + realized + unreal))
    return out


def _marks(run: BacktestRun) -> tuple[list[tuple[str, str]], np.ndarray, np.ndarray, np.ndarray]:
    """(symbol, contract) names, and every bar's end ns, name index and close sorted by end: read
    from the bars' columns and kept as arrays (24 bytes a bar), not as objects or Python lists
    (~80 bytes a bar: 20 days of minute bars were the backtest's peak RSS)."""
    names: list[tuple[str, str]] = []
    ends, idx, closes = [], [], []
    for bars in (*run.bars.values(), *run.prev_bars.values()):
        for sym, contract, e, c in bt_data.closes(bars):
            idx.append(np.full(len(e), len(names), dtype=np.int32))
            names.append((sym, contract))
            ends.append(e)
            closes.append(c)
    if not ends:
        return names, np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float64)
    all_ends = np.concatenate(ends)
    order = np.argsort(all_ends, kind="stable")
    return names, all_ends[order], np.concatenate(idx)[order], np.concatenate(closes)[order]


def summary(run: BacktestRun, trade_list: list[Trade], curve: list[tuple[datetime, float]]) -> dict[str, Any]:
    s = run.settings
    cash0 = float(s.portfolio.starting_cash)
    closed = [t for t in trade_list if not t.open]
    wins = [t for t in closed if t.pnl > 0]
    mdd, mdd_pct = compute.max_drawdown(cash0, [eq for _, eq in curve])
    # Daily returns as `multialpha report` defines them: the trading day's P&L (here marked to
    # market: equity at its last bar minus the previous day's) over report capital.
    daily: dict[date, float] = {}
    for when, eq in curve:
        daily[cme_time.trading_day(when)] = eq  # equity at each trading day's last bar
    eqs = [cash0, *daily.values()]
    rets = compute.returns([b - a for a, b in zip(eqs, eqs[1:])], s.report_capital)
    journal = orders(run)  # parsed once for this summary
    accepted = [o for o in journal if o.decision == "accepted"]

    def slip(o: Order) -> float:  # $ a fill lost to slippage
        return ((o.fill_price - o.price if is_buy(o.side, o.kind) else o.price - o.fill_price)
                * o.quantity * s.instruments[o.symbol].multiplier)
    exposure = _exposure(run, trade_list, curve)
    entries = [d for d in run.decisions]
    vetoed = sum(1 for d in entries if not d["allow"] and not d["acted"])
    shadow = sum(1 for d in entries if not d["allow"] and d["acted"])
    denied = [o for o in journal if o.decision == "denied"]
    final = curve[-1][1] if curve else cash0
    # Roll costs, apart: commission and slippage of every roll leg (exit + re-entry) and of
    # forced expiry exits.
    legs = [o for o in accepted if o.tag]
    roll_comm = sum(o.quantity * s.commission(o.strategy, o.symbol) for o in legs)
    slippage = sum(map(slip, accepted))  # every fill's slippage lowers the final equity by exactly its cost
    return {
        "strategies": ", ".join(run.strategies),
        "range": f"{cme_time.iso_z(run.start)} .. {cme_time.iso_z(run.end)}",
        "resolution": run.resolution,
        "trades": len(closed),
        "open_at_end": len(trade_list) - len(closed),
        "win_rate": len(wins) / len(closed) if closed else 0.0,
        "net_pnl": final - cash0,
        "net_pnl_no_slippage": cents(final - cash0 + slippage),
        "slippage": cents(slippage),
        "slippage_ticks": f"{s.backtest.slippage_ticks} per side" + (
            " (instrument overrides)" if any(i.slippage_ticks is not None for i in s.instruments.values()) else ""),
        "realized_pnl": sum(t.pnl for t in closed),
        "realized_pnl_no_slippage": cents(sum(t.pnl_no_slippage for t in closed)),
        "max_drawdown": mdd,
        "max_drawdown_pct": mdd_pct,
        "sharpe": compute.sharpe(rets),
        "sortino": compute.sortino(rets),
        "exposure": exposure,
        "vetoed_entries": vetoed,
        "shadow_vetoes": shadow,
        "denied_entries": len(denied),
        "rolls": sum(1 for o in legs if o.tag == "roll" and o.kind == "exit"),
        "expiry_exits": sum(1 for o in legs if o.tag == "expiry"),
        "roll_commission": cents(roll_comm),
        "roll_slippage": cents(sum(map(slip, legs))),
        "final_equity": final,
    }


def _exposure(run: BacktestRun, trade_list: list[Trade], curve: list[tuple[datetime, float]]) -> float:
    """Share of the run's open-market time with at least one position held, from its entry fill
    to its exit fill (the report's definition, :func:`multialpha.report.compute.exposure`)."""
    if not curve:
        return 0.0
    minute = timedelta(minutes=1)
    spans = [(cme_time.parse_iso(t.entry_time) + minute,
              cme_time.parse_iso(t.exit_time) + minute if t.exit_time else run.end) for t in trade_list]
    return compute.exposure(spans, run.start, run.end)


def write(run: BacktestRun, out_dir: Path, *, png: bool = True) -> dict[str, Path]:
    """orders/trades/equity as .csv and .parquet, vetoes.csv, summary.csv (+ equity.png)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tl = trades(run)
    curve = equity_curve(run, tl)
    summ = summary(run, tl, curve)
    paths = {}
    orows = [{**asdict(o), "price": round_price(o.price, run.settings.instruments[o.symbol].tick_size)}
             for o in orders(run)]
    paths["orders"] = _csv(out_dir / "orders.csv", orows, list(Order.__dataclass_fields__))
    trows = [{**{k: v for k, v in asdict(t).items() if k != "open"}, "status": t.status} for t in tl]
    paths["trades"] = _csv(out_dir / "trades.csv", trows, list(TRADE_COLUMNS))
    paths["equity"] = _csv(out_dir / "equity.csv", [{"time": cme_time.iso_z(w), "equity": round(e, 2)} for w, e in curve],
                           ["time", "equity"])
    vrows = [{**{k: v for k, v in d.items() if k != "features"},
              "at": cme_time.iso_z(d["at"]), "bar_start": cme_time.iso_z(d["bar_start"]) if d["bar_start"] else "",
              **{f"f_{k}": v for k, v in d["features"].items()}} for d in run.decisions]
    vfields = list(dict.fromkeys(k for r in vrows for k in r)) or ["strategy"]
    paths["vetoes"] = _csv(out_dir / "vetoes.csv", vrows, vfields)
    paths["summary"] = _csv(out_dir / "summary.csv", [summ], list(summ))
    if png:
        paths["png"] = plot(curve, out_dir / "equity.png", title=f"{summ['strategies']} ({summ['range']})")
        paths.update(write_report(run, out_dir / "report"))
    return paths


def write_report(run: BacktestRun, out_dir: Path) -> dict[str, Path]:
    """The run's journal as `multialpha report` reads a live one: report/ (CSVs, PNGs, report.html)."""
    from multialpha.report import build, html, source

    fills, denied = source.fills(run.settings, run.journal)
    first = cme_time.trading_day(run.start)
    last = cme_time.trading_day(run.end - timedelta(microseconds=1))
    rep = build.build(fills, first, last, run.settings.report_capital, run.strategies, denied=denied)
    paths = {f"report_{k}": p for k, p in build.write(rep, out_dir).items()}
    paths["report_html"] = html.write(rep, out_dir / "report.html", title="multialpha backtest report")
    return paths


def _kind(annotation: object) -> str:
    """A field's annotation (text, under ``from __future__ import annotations``) as a Parquet
    kind: ``X | None`` is a nullable X, ``bool`` an int (0/1)."""
    base = str(annotation).split("|")[0].strip()
    return "int" if base == "bool" else base


# Column types of the Parquet copies: the fields' annotations (an empty table keeps its types).
PARQUET_KINDS = {
    "orders": {k: _kind(f.type) for k, f in Order.__dataclass_fields__.items()},
    "trades": {**{k: _kind(f.type) for k, f in Trade.__dataclass_fields__.items()}, "status": "str"},
    "equity": {"time": "str", "equity": "float"},
}


def _csv(path: Path, rows: list[dict[str, Any]], fields: list[str]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    kinds = PARQUET_KINDS.get(path.stem)
    if kinds is not None:  # the same table as Parquet, written without pyarrow (backtest/parquet.py)
        parquet.write(path.with_suffix(".parquet"), [(f, kinds[f], [r.get(f) for r in rows]) for f in fields])
    return path


def plot(curve: list[tuple[datetime, float]], path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    if curve:
        ax.plot([w for w, _ in curve], [e for _, e in curve], lw=1.0)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel("equity ($)")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
