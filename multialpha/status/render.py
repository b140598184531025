"""Draw the status document as lines that fit the terminal.

The first lines answer "is it fine, and if not why": the overall state with
its reasons, halt / daily stop / reduce-only / flatten, then every strategy's
positions and P&L today with the total. Below come positions, processes,
symbols and recent errors, as far as the terminal's height allows.

Every line is cut to the terminal's width (an ellipsis marks a cut cell); no
cell ever wraps. Two layouts, chosen by the size: ``compact`` (below 120
columns or 40 rows, e.g. 80x24: healthy processes and symbols are summarised
in one line each, low-value columns dropped) and ``wide`` (every process,
every symbol, last orders). Degraded things are red, warnings yellow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from rich.console import Group
from rich.text import Text

from multialpha.status import redis_nodes
from multialpha.status.collect import order_mode_words
from multialpha.status.fmt import clip, dur, money, price

BAD = "bold red"
WARN = "yellow"
GOOD = "green"
DIM = "dim"
HEAD = "bold"
WIDE_COLS, WIDE_ROWS = 120, 40


def _state_style(state: str) -> str:
    s = state.lower()
    if s in ("failed", "down", "degraded", "stopped", "halted"):
        return BAD
    if s in ("backoff", "stopping", "starting", "pending", "warming", "warn"):
        return WARN
    return GOOD


def _pnl_style(v: float | None) -> str:
    return "" if v is None or abs(v) < 0.005 else BAD if v < 0 else GOOD


@dataclass(frozen=True)
class Col:
    header: str
    cap: int  # widest it gets
    drop: int = 0  # 0 = never dropped; higher = dropped sooner on a narrow terminal
    right: bool = False
    flex: bool = False  # takes what is left: shrinks to `low` before any column is dropped, then to 6
    low: int = 6


Cell = "str | tuple[str, str]"  # text, or (text, style)


def _cell(c: Any) -> tuple[str, str]:
    return (c[0], c[1]) if isinstance(c, tuple) else (str(c), "")


def table(cols: Sequence[Col], rows: Sequence[Sequence[Any]], width: int,
          row_styles: Sequence[str] | None = None) -> list[Text]:
    """Fixed-width columns that fit ``width``: drop low-value columns, shrink the flexible one."""
    cells = [[_cell(c) for c in r] for r in rows]
    keep = list(range(len(cols)))
    widths = {i: min(cols[i].cap, max([len(cols[i].header)] + [len(r[i][0]) for r in cells])) for i in keep}

    def total() -> int:
        return sum(widths[i] for i in keep) + 2 * (len(keep) - 1)

    flex = [i for i in keep if cols[i].flex]
    while total() > width:
        over = total() - width
        shrinkable = [i for i in flex if i in keep and widths[i] > cols[i].low]
        if shrinkable:
            i = shrinkable[0]
            widths[i] = max(cols[i].low, widths[i] - over)
            continue
        droppable = [i for i in keep if cols[i].drop]
        if droppable:
            keep.remove(max(droppable, key=lambda i: cols[i].drop))
            continue
        shrinkable = [i for i in flex if i in keep and widths[i] > 6]
        if not shrinkable:
            break
        widths[shrinkable[0]] = max(6, widths[shrinkable[0]] - over)
    for i in flex:  # a flexible column may grow into the room left
        if i in keep:
            need = max([len(cols[i].header)] + [len(r[i][0]) for r in cells])
            widths[i] = max(widths[i], min(need, widths[i] + width - total()))

    def line(items: list[tuple[str, str]], base: str = "") -> Text:
        t = Text(no_wrap=True, overflow="crop")
        for n, i in enumerate(keep):
            text, style = items[i]
            text = clip(text, widths[i])
            text = text.rjust(widths[i]) if cols[i].right else text.ljust(widths[i])
            if n:
                t.append("  ")
            t.append(text if n < len(keep) - 1 else text.rstrip(), style=style or base)
        return t

    out = [line([(c.header, HEAD) for c in cols])]
    for n, r in enumerate(cells):
        out.append(line(r, (row_styles[n] if row_styles else "") or ""))
    return out


def _section(title: str, note: str = "") -> Text:
    t = Text(no_wrap=True)
    t.append(title, style="bold underline")
    if note:
        t.append("  " + note, style=DIM)
    return t


def _wrap_items(prefix: Text, items: list[tuple[str, str]], width: int, max_lines: int) -> list[Text]:
    """Items separated by ' · ', whole items per line (never cut mid-word), the rest counted."""
    lines: list[Text] = []
    cur = prefix.copy()
    shown = 0
    for n, (text, style) in enumerate(items):
        sep = " · " if len(cur.plain) > len(prefix.plain) else ""
        piece = sep + text
        if len(cur.plain) + len(piece) <= width:
            cur.append(sep)
            cur.append(text, style=style)
            shown += 1
            continue
        if len(lines) + 1 >= max_lines:
            break
        lines.append(cur)
        cur = Text("  ", no_wrap=True)
        if len(cur.plain) + len(text) > width:
            text = clip(text, width - len(cur.plain))
        cur.append(text, style=style)
        shown += 1
    left = len(items) - shown
    if left:
        more = f" (+{left} more)"
        if len(cur.plain) + len(more) > width:
            cur = Text(clip(cur.plain, width - len(more)), no_wrap=True)
        cur.append(more, style=DIM)
    lines.append(cur)
    return lines


# -- sections --------------------------------------------------------------------------


def header_lines(doc: dict[str, Any], width: int, max_lines: int) -> list[Text]:
    ov = doc.get("overall") or {"state": "OK" if doc.get("ok") else "DEGRADED", "reasons": []}
    state = ov["state"]
    badge = {"OK": "bold white on green", "WARN": "bold black on yellow"}.get(state, "bold white on red")
    t = Text(no_wrap=True)
    t.append(f" {state} ", style=badge)
    # Trading restrictions (halt, stop, reduce-only, failed exits) have their own line right below.
    shown = [r for r in ov["reasons"] if r.get("what") != "portfolio"]
    restricted = len(shown) < len(ov["reasons"])
    t.append(" " if shown else "  trading restricted, see below" if restricted else "  all components healthy")
    styles = {"halt": BAD, "error": BAD, "warning": WARN, "info": DIM}
    items = [(r["text"], styles.get(r["level"], "")) for r in shown]
    return _wrap_items(t, items, width, max_lines)


def context_line(doc: dict[str, Any], width: int) -> Text:
    """Order mode, market, trading day, day P&L against the stop, positions used."""
    p = doc["portfolio"]
    mode = doc["order_mode"]["summary"]
    clock = doc["clock"]
    when = clock["market_now"][5:16].replace("T", " ")
    used = p["open_positions"] or 0
    for short in (False, True):
        t = Text(no_wrap=True)
        t.append(order_mode_words(doc, short=True), style="bold red" if mode != "paper" else "bold cyan")
        t.append("  market " if not short else "  ")
        t.append("OPEN" if doc["market_open"] else "closed")
        t.append(f" {when}" + (" sandbox" if clock["source"] == "sandbox" else "") + " UTC  ")
        if not short:
            t.append(f"trading day {p['trading_day']}  ")
        t.append("day P&L ")
        t.append(money(p["day_pnl"]), style=_pnl_style(p["day_pnl"]))
        t.append(f" (stop -{p['daily_stop_loss']:,.0f})  ")
        t.append(f"positions {used}/{p['max_positions']}", style=WARN if used >= p["max_positions"] else "")
        if len(t.plain) <= width:
            return t
    return Text(clip(t.plain, width), no_wrap=True)  # styles lost only on a very narrow terminal


def flags_line(doc: dict[str, Any], width: int) -> list[Text]:
    """HALTED / daily stop / reduce-only / flatten / failed exits: the trading restrictions."""
    p = doc["portfolio"]
    items: list[tuple[str, str]] = []
    if p["halted"]:
        items.append((f"HALTED: {p['halt_reason'] or 'no reason given'}", BAD))
    if p["stopped"]:
        items.append(("DAILY STOP: " + ("flatten, entries blocked" if p.get("on_daily_stop") == "flatten"
                                        else "entries blocked"), BAD))
    for pid in p["exit_failed"]:
        items.append((f"EXIT FAILED {pid}", BAD))
    for scope, why in sorted(p["reduce_only"].items()):
        if why.startswith("exit failed"):
            continue  # its EXIT FAILED item says it
        items.append((f"REDUCE-ONLY {'all' if scope == '*' else scope}: {why}", BAD))
    for strategy in sorted(p["unmanaged"]):
        items.append((f"UNMANAGED {strategy}: positions without a worker", BAD))
    if p["flatten_pending"]:
        items.append(("FLATTENING " + ", ".join(p["flatten_pending"]), WARN))
    if p["pending_orders"]:
        items.append((f"{p['pending_orders']} order(s) need review", BAD))
    if not items:
        return []
    if width < WIDE_COLS:  # who and when is in `multialpha logs` / the events: keep the what
        items = [(re.sub(r" \(by [^)]*\)", "", t), st) for t, st in items]
    return _wrap_items(Text(no_wrap=True), items, width, 2)


def verify_line(doc: dict[str, Any], width: int) -> list[Text]:
    """The last `multialpha verify` (docs/verify.md): ok, N differences, or why it could not run."""
    from multialpha.verify.store import line

    v = doc.get("verify")
    if not v:
        return []
    style = DIM if v.get("ok") else BAD
    return [Text(clip(line(v), width), style=style, no_wrap=True)]


def strategy_lines(doc: dict[str, Any], width: int, wide: bool) -> list[Text]:
    # P&L today = realised today (journal) + open P&L since each position's day reference (the gate's).
    cols = [Col("strategy", 14), Col("state", 8), Col("mode", 5, drop=9), Col("pos", 3, right=True),
            Col("P&L today", 12, right=True), Col("realised", 11, right=True, drop=2),
            Col("open", 11, right=True, drop=1), Col("vetoes", 6, right=True, drop=4),
            Col("note", 60, flex=True, low=22)]

    rows = []
    styles = []
    strats = [s for s in doc["strategies"] if s["state"] != "DISABLED" or s["positions"]]
    for s in strats:
        notes = []
        for m in s["model_problems"]:
            notes.append(f"{m['symbol']} no model: {'BLOCKING' if m['on_missing'] == 'block' else 'allowing'}")
        if s["exit_failed"]:
            notes.append("EXIT FAILED " + ",".join(x.split(":", 1)[1] for x in s["exit_failed"]))
        if s["reduce_only"] and not s["exit_failed"]:
            notes.append("reduce-only")
        if s["flatten_pending"]:
            notes.append("flattening")
        if s["detail"] and s["state"] != "LIVE":
            notes.append(s["detail"])
        if wide and s["last_orders"]:
            o = s["last_orders"][0]
            notes.append(f"last {o['ts'][11:16]} {o['side']} {o['symbol']} {o['result'] or o['event']}".strip())
        note_style = BAD if (s["model_problems"] and any(m["on_missing"] == "block" for m in s["model_problems"])) \
            or s["exit_failed"] else ""
        rows.append([s["name"], (s["state"], _state_style(s["state"])),
                     (s["mode"].upper(), "bold red" if s["mode"] == "live" else "cyan"), str(s["positions"]),
                     (money(s["pnl_today"]), _pnl_style(s["pnl_today"])), money(s["realized_today"]),
                     (money(s["open_pnl"]), _pnl_style(s["open_pnl"])),
                     "-" if s["vetoes"] is None else str(s["vetoes"]), ("; ".join(notes), note_style)])
        styles.append("")
    p = doc["portfolio"]
    un = p.get("unattributed_pnl") or 0.0
    if abs(un) >= 0.005:
        rows.append(["(unattributed)", "", "", "", (money(un), _pnl_style(un)), money(un), "", "",
                     ("realised the journal cannot assign (carried position, manual ack)", DIM)])
        styles.append(DIM)
    rows.append(["TOTAL", "", "", str(p["open_positions"] or 0), (money(p["day_pnl"]), _pnl_style(p["day_pnl"])),
                 money(p.get("realized")), money(sum(x["open_pnl"] or 0.0 for x in p["positions"])), "",
                 ("= portfolio day P&L", DIM)])
    styles.append(HEAD)
    if doc["order_mode"]["summary"] != "mixed":  # one mode for all: it is on the context line
        cols.pop(2)
        for r in rows:
            r.pop(2)
    return table(cols, rows, width, styles)


def position_lines(doc: dict[str, Any], width: int) -> list[Text]:
    p = doc["portfolio"]
    if not p["positions"]:
        return []
    cols = [Col("strategy", 12), Col("side", 5), Col("qty", 3, right=True), Col("symbol", 6),
            Col("contract", 8, drop=3), Col("entry", 11, right=True, drop=2), Col("mark", 11, right=True),
            Col("day P&L", 11, right=True), Col("open P&L", 11, right=True, drop=1), Col("state", 12, flex=True)]
    rows = []
    for pos in p["positions"]:
        state = pos.get("state", "open")
        rows.append([pos["strategy"], "LONG" if (pos.get("dir") or 0) > 0 else "SHORT", str(pos.get("quantity") or ""),
                     pos["symbol"], pos.get("contract") or "", price(pos.get("entry_price")), price(pos.get("mark")),
                     (money(pos.get("day_pnl")), _pnl_style(pos.get("day_pnl"))),
                     (money(pos.get("open_pnl")), _pnl_style(pos.get("open_pnl"))),
                     (state.upper().replace("_", " "), BAD if state == "exit_failed" else WARN if state != "open" else "")])
    return table(cols, rows, width)


def process_lines(doc: dict[str, Any], width: int, wide: bool) -> list[Text]:
    procs = doc["processes"]
    bad = [p for p in procs if p["degraded"] or p["state"] != "running" or not p["recovered"]]
    if not wide and not bad:
        names = ", ".join(p["name"].replace("worker.", "") for p in procs)
        return [Text(clip(f"processes: all {len(procs)} running ({names})", width), style=DIM, no_wrap=True)]
    shown = procs if wide else bad
    cols = [Col("process", 18), Col("state", 8), Col("pid", 7, right=True, drop=3), Col("up", 6, right=True),
            Col("restarts", 8, right=True, drop=2), Col("heartbeat", 9, right=True, drop=1), Col("detail", 80, flex=True)]
    rows, styles = [], []
    for p in shown:
        rows.append([p["name"], (p["state"].upper(), _state_style(p["state"])), str(p["pid"] or "-"), dur(p["uptime_s"]),
                     "-" if p["restarts"] is None else str(p["restarts"]),
                     "-" if p["heartbeat_age_s"] is None else dur(p["heartbeat_age_s"]), p["detail"]])
        styles.append(BAD if p["state"] in ("failed", "down") else WARN if p["degraded"] else "")
    out = table(cols, rows, width, styles)
    if not wide and len(shown) < len(procs):
        out.append(Text(clip(f"others running: {', '.join(p['name'] for p in procs if p not in shown)}", width),
                        style=DIM, no_wrap=True))
    return out


def symbol_lines(doc: dict[str, Any], width: int, wide: bool, max_lines: int) -> list[Text]:
    syms = doc["symbols"]
    fresh = [s for s in syms if s["lag_s"] is not None and not s["degraded"] and not s["quiet"]]
    problem = [s for s in syms if s not in fresh]
    newest = min((s["lag_s"] for s in syms if s["lag_s"] is not None), default=None)
    hub = doc.get("hub_lag_s")
    head = f"symbols: {len(fresh)}/{len(syms)} fresh"
    if newest is not None:
        head += f", newest bar {dur(newest)} old"
    if hub is not None:
        head += f", hub lag {dur(max(hub, 0))}"
    out = [Text(clip(head, width), style=DIM, no_wrap=True)]
    items = []
    for s in (syms if wide else problem):
        lag = "no bars" if s["lag_s"] is None else dur(s["lag_s"])
        if s["degraded"]:
            style, what = BAD, f"{s['symbol']} {lag}"
        elif s["quiet"]:
            style, what = WARN, f"{s['symbol']} quiet {lag}"
        else:
            style, what = "", f"{s['symbol']} {price(s['close'])} {lag}"
        items.append((what, style))
    if items:
        out += _wrap_items(Text(no_wrap=True), items, width, max_lines)
    return out


def error_lines(doc: dict[str, Any], width: int, n: int) -> list[Text]:
    out = []
    for e in doc["errors"][:n]:
        ts = e["ts"].replace("T", " ")[5:16]
        out.append(Text(clip(f"{ts} {e['component']}: {e['message']}", width), no_wrap=True,
                        style=BAD if e["level"] in ("error", "critical") else WARN))
    return out


# -- the frame -----------------------------------------------------------------------------


def lines(doc: dict[str, Any], width: int = 200, height: int | None = None) -> list[Text]:
    """The frame as at most ``height`` lines of at most ``width`` columns, most important first."""
    width = max(width, 20)
    h = height if height is not None else 10_000
    wide = width >= WIDE_COLS and (height is None or height >= WIDE_ROWS)
    top = header_lines(doc, width, 4 if wide else 2) + [context_line(doc, width)] + flags_line(doc, width)
    top += verify_line(doc, width)
    strat = strategy_lines(doc, width, wide)
    pos = position_lines(doc, width)
    procs = process_lines(doc, width, wide)
    errs_all = doc["errors"]
    out = top + strat
    if pos:
        out += pos
    rest = h - len(out) - len(procs)
    sym = symbol_lines(doc, width, wide, max(1, min(4 if wide else 2, rest - 3)))
    out += procs + sym + redis_nodes.line(doc, width)
    room = h - len(out) - 1
    if errs_all and room > 0:
        out.append(_section("recent errors", f"{len(errs_all)}" if len(errs_all) > room else ""))
        out += error_lines(doc, width, room)
    if len(out) > h:  # keep the most important lines (the top)
        out = out[:h]
    return out


def frame(doc: dict[str, Any], width: int = 200, height: int | None = None) -> Group:
    return Group(*lines(doc, width, height))


def portfolio_panel(doc: dict[str, Any], width: int = 100) -> Group:
    """Restrictions and positions (kept for callers that print only the portfolio)."""
    return Group(context_line(doc, width), *flags_line(doc, width), *position_lines(doc, width))
