"""Draw the status document with rich: one frame = header + five tables.

Degraded rows are red (failed/down) or yellow (warming, backoff, stale);
healthy ones plain/green, so a glance finds the problem.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from multialpha.status.collect import order_mode_words

_BAD = "bold red"
_WARN = "yellow"
_GOOD = "green"


def _dur(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _money(v: float | None) -> Text:
    if v is None:
        return Text("-")
    return Text(f"{v:+,.2f}", style=_BAD if v < 0 else _GOOD if v > 0 else "")


def _state_style(state: str) -> str:
    s = state.lower()
    if s in ("failed", "down", "degraded", "stopped"):
        return _BAD
    if s in ("backoff", "stopping", "starting", "pending", "warming"):
        return _WARN
    return _GOOD


def header(doc: dict[str, Any]) -> Text:
    t = Text()
    ok = doc["ok"]
    t.append(" ALL OK " if ok else " DEGRADED ", style="bold white on green" if ok else "bold white on red")
    t.append(f"  {doc['generated']}  namespace {doc['namespace']}  ")
    market = "OPEN" if doc["market_open"] else "closed"
    if doc["clock"]["source"] == "sandbox":
        market += f" (sandbox clock {doc['clock']['market_now']})"
    t.append(f"market {market}  ")
    mode = doc["order_mode"]["summary"]
    t.append("ORDERS: " + order_mode_words(doc), style="bold red" if mode != "paper" else "bold cyan")
    sup = doc["supervisor"]
    if not sup["present"]:
        t.append("\nno supervisor heartbeat (not started with `multialpha up`, or it is down)", style=_WARN)
    return t


def processes_table(doc: dict[str, Any]) -> Table:
    t = Table(title="Processes", title_justify="left", expand=True)
    for c in ("process", "state", "pid", "uptime", "restarts", "heartbeat", "detail"):
        t.add_column(c, overflow="fold")
    for p in doc["processes"]:
        style = _state_style(p["state"]) if p["degraded"] or p["state"] != "running" else ""
        hb = "-" if p["heartbeat_age_s"] is None else f"{p['heartbeat_age_s']:.0f}s ago"
        t.add_row(p["name"], Text(p["state"].upper(), style=_state_style(p["state"])), str(p["pid"] or "-"),
                  _dur(p["uptime_s"]), "-" if p["restarts"] is None else str(p["restarts"]), hb, p["detail"],
                  style=style if p["degraded"] else None)
    return t


def symbols_table(doc: dict[str, Any]) -> Table:
    t = Table(title="Symbols", title_justify="left", expand=True)
    for c in ("symbol", "contract", "last bar (UTC)", "lag", "close", "source"):
        t.add_column(c)
    for s in doc["symbols"]:
        lag = Text(_dur(s["lag_s"]), style=_BAD if s["degraded"] else "")
        t.add_row(s["symbol"], s["contract"] or "-", (s["last_bar"] or "no bars yet").replace("T", " "), lag,
                  "-" if s["close"] is None else f"{s['close']:g}", s["source"] or "-",
                  style=_WARN if s["degraded"] and s["last_bar"] is None else None)
    return t


def strategies_table(doc: dict[str, Any]) -> Table:
    t = Table(title="Strategies", title_justify="left", expand=True)
    for c in ("strategy", "state", "mode", "positions", "P&L today", "open P&L", "vetoes", "last orders"):
        t.add_column(c, overflow="fold")
    for s in doc["strategies"]:
        orders = "; ".join(
            f"{o['ts'][11:16]} {o['side']} {o['symbol']} {o['result'] or o['event']}".strip() for o in s["last_orders"]
        ) or "-"
        mode = Text(s["mode"].upper(), style="bold red" if s["mode"] == "live" else "cyan")
        t.add_row(s["name"], Text(s["state"], style=_state_style(s["state"]) if s["state"] != "LIVE" else _GOOD),
                  mode, "-" if s["positions"] is None else str(s["positions"]), _money(s["pnl_today"]),
                  _money(s["open_pnl"]),
                  "-" if s["vetoes"] is None else str(s["vetoes"]), orders)
    return t


def portfolio_panel(doc: dict[str, Any]) -> Panel:
    p = doc["portfolio"]
    t = Text()
    if not p["available"]:
        t.append("portfolio gate state not available yet", style=_WARN)
    else:
        used = p["open_positions"] or 0
        t.append(f"positions {used}/{p['max_positions']}", style=_WARN if used >= p["max_positions"] else "")
        t.append("   day P&L ")
        t.append_text(_money(p["day_pnl"]))
        t.append(f" vs stop -{p['daily_stop_loss']:,.0f}   trading day {p['trading_day']}   ")
        if p["stopped"]:
            t.append("DAILY STOP HIT — entries blocked ", style=_BAD)
        if p["halted"]:
            t.append(f"HALTED ({p['halt_reason'] or 'no reason given'}) ", style=_BAD)
        if p["pending_orders"]:
            t.append(f"{p['pending_orders']} order(s) need review ", style=_BAD)
        for pid in p.get("exit_failed") or []:
            t.append(f"EXIT FAILED {pid} (orders retry/ack) ", style=_BAD)
        for scope, why in sorted((p.get("reduce_only") or {}).items()):
            t.append(f"REDUCE-ONLY {'all' if scope == '*' else scope}: {why} ", style=_BAD)
        for pos in p["positions"]:
            side = "LONG" if (pos.get("dir") or 0) > 0 else "SHORT"
            state = pos.get("state", "open")
            t.append(f"\n  {pos['strategy']} {side} {pos.get('quantity') or ''} {pos['symbol']} "
                     f"{pos.get('contract') or ''} @ {pos.get('entry_price')}  mark {pos.get('mark')}  ")
            if state != "open":
                t.append(f"[{state.upper()}] ", style=_BAD if state == "exit_failed" else _WARN)
            t.append_text(_money(pos.get("open_pnl")))
    return Panel(t, title="Portfolio", title_align="left")


def errors_panel(doc: dict[str, Any]) -> Panel:
    t = Text()
    if not doc["errors"]:
        t.append("none", style="dim")
    for e in doc["errors"]:
        t.append(f"{e['ts'].replace('T', ' ')} {e['component']}: {e['message']}\n",
                 style=_BAD if e["level"] in ("error", "critical") else _WARN)
    return Panel(t, title="Recent errors", title_align="left")


def frame(doc: dict[str, Any]) -> Group:
    return Group(header(doc), processes_table(doc), symbols_table(doc), strategies_table(doc), portfolio_panel(doc),
                 errors_panel(doc))
