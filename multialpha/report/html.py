"""The report as ONE self-contained HTML page: styles inline, PNGs inlined as base64 data URIs.

Nothing is fetched when the page opens (no scripts, no external CSS or fonts), so it can be
mailed or archived as one file. Every text from the journal is escaped.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

from multialpha.report.build import Report, Section, trade_row

_CSS = """body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}
.neg{color:#b00}img{max-width:100%}"""

LABELS = {"trades": "trades (closed)", "open_at_end": "open at end", "win_rate": "win rate", "net_pnl": "net P&L",
          "net_pnl_no_slippage": "net P&L without slippage", "commission": "commission",
          "slippage_ticks": "slippage (ticks)", "slippage_usd": "slippage ($)",
          "fills_without_price": "fills without a known fill price", "max_drawdown": "max drawdown",
          "max_drawdown_pct": "max drawdown (% of peak)", "sharpe": "Sharpe (daily, x sqrt 252)",
          "sortino": "Sortino (daily, x sqrt 252)", "exposure": "exposure (share of open-market time)"}


def fmt(key: str, v: Any) -> str:
    """How a summary figure reads (the CLI table uses the same)."""
    if v is None:
        return "n/a"
    if key in ("win_rate", "exposure", "max_drawdown_pct"):
        return f"{v:.1%}"
    if key in ("net_pnl", "net_pnl_no_slippage", "commission", "slippage_usd", "max_drawdown"):
        return f"${v:,.2f}"
    if key in ("sharpe", "sortino"):
        return f"{v:.2f}"
    if key == "slippage_ticks":
        return f"{v:g}"
    return str(v)


def _img(path: Path | None) -> str:
    if path is None or not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="equity and drawdown" src="data:image/png;base64,{data}">'


def _money(v: float) -> str:
    return f'<td class="neg">{v:,.2f}</td>' if v < 0 else f"<td>{v:,.2f}</td>"


def _section(rep: Report, s: Section) -> str:
    parts = [f"<h2>{escape(s.name)}</h2>", _img(s.png), '<table><tr><th class="l">figure</th><th>value</th></tr>']
    parts += [f'<tr><td class="l">{escape(LABELS[k])}</td><td>{escape(fmt(k, s.stats[k]))}</td></tr>' for k in LABELS]
    parts.append("</table><h3>P&amp;L per CME trading day</h3>")
    parts.append('<table><tr><th class="l">trading day</th><th>P&amp;L</th><th>equity</th><th>drawdown</th></tr>')
    for d, eq, dd in zip(rep.days, s.stats["equity"], s.stats["drawdown"]):
        parts.append(f'<tr><td class="l">{d}</td>{_money(s.stats["daily"][d])}'
                     f'<td>{eq:,.2f}</td><td>{dd:,.2f}</td></tr>')
    parts.append("</table>")
    trips = [t for t in s.trips if rep.first <= t.day <= rep.last]
    if trips:
        cols = ("strategy", "symbol", "side", "quantity", "entry_time", "entry_signal", "entry_fill", "exit_time",
                "exit_signal", "exit_fill", "pnl", "slippage_usd")
        parts.append(f"<h3>Trades ({len(trips)})</h3><table><tr>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>")
        for t in trips:
            row = trade_row(t)
            parts.append("<tr>" + "".join(f"<td>{escape(str(row[c]))}</td>" for c in cols) + "</tr>")
        parts.append("</table>")
    if s.open_fills:
        parts.append(f"<p>{len(s.open_fills)} position(s) still open at the end of the period "
                     "(not in the P&amp;L; counted in the exposure).</p>")
    return "\n".join(parts)


def render(rep: Report, title: str = "multialpha report") -> str:
    head = (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>")
    intro = (f"<h1>{escape(title)}: CME trading days {rep.first} .. {rep.last}</h1>"
             f"<p>Capital ${rep.capital:,.2f} (daily return = day P&amp;L / capital). A round trip's P&amp;L is "
             "booked on its exit's CME trading day, net of commissions, at its fills (the signal prices for "
             f"&ldquo;without slippage&rdquo;). Denied entries in the journal: {rep.denied}. "
             "Definitions: docs/report.md.</p>")
    return head + intro + "\n".join(_section(rep, s) for s in rep.sections) + "</body></html>\n"


def write(rep: Report, path: Path, title: str = "multialpha report") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(rep, title), encoding="utf-8")
    return path
