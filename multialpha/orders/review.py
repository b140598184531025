"""Reading the order journal for operators: `multialpha orders list|show|export` and how they
are drawn. One row per order, built from its journal events and its state hash (docs/orders.md,
"Lifecycle"); what an operator *does* about an order is in multialpha/orders/commands.py."""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Callable, Iterator, Mapping

import redis
from rich.console import Console
from rich.table import Table
from rich.text import Text

from multialpha import cme_time
from multialpha.config import Settings
from multialpha.keys import Keys
from multialpha.portfolio.gate import Gate, _s

_START = ("intent", "denied", "expired")  # an order's first journal event
_FIELDS = ("strategy", "symbol", "kind", "action", "side", "quantity", "price", "contract", "ticker",
           "bar_start", "destination", "late", "stale", "signal_reason", "payload")
COLUMNS = ("order_id", "time", "trading_day", "strategy", "symbol", "kind", "action", "side", "quantity",
           "contract", "ticker", "price", "bar_start", "destination", "late", "stale", "signal_reason",
           "state", "result", "detail", "attempts", "review", "payload")
_CHUNK = 1000
_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
# Every order state (docs/orders.md, "Lifecycle") and how `orders list` colours it.
_STYLE = {"claimed": "blue", "sending": "blue", "delivered": "green", "paper": "green", "rejected": "red",
          "ambiguous": "bold red", "expired": "yellow", "failed": "red", "abandoned": "red", "denied": "yellow",
          "unresolved": "bold red", "reviewed": "cyan"}
STATES = tuple(_STYLE)


class CommandError(Exception):
    """A refusal the operator must read: the CLI prints it as one line and exits 1."""


# -- reading the journal ----------------------------------------------------------------


# -- reading the journal ----------------------------------------------------------------


def _batches(client: redis.Redis, keys: Keys, newest_first: bool = False) -> Iterator[list[dict[str, str]]]:
    """The journal stream in pages: it holds up to a million events, never read at once."""
    last = ""
    while True:
        if newest_first:
            raw = client.xrevrange(keys.orders(), max=f"({last}" if last else "+", min="-", count=_CHUNK)
        else:
            raw = client.xrange(keys.orders(), min=f"({last}" if last else "-", max="+", count=_CHUNK)
        if not raw:
            return
        yield [{"id": _s(sid), **{_s(k): _s(v) for k, v in fields.items()}} for sid, fields in raw]
        last = _s(raw[-1][0])
        if len(raw) < _CHUNK:
            return


def _states(client: redis.Redis, keys: Keys, ids: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for i in range(0, len(ids), _CHUNK):
        pipe = client.pipeline(transaction=False)
        for oid in ids[i:i + _CHUNK]:
            pipe.hgetall(keys.order_state(oid))
        for oid, raw in zip(ids[i:i + _CHUNK], pipe.execute()):
            out[oid] = {_s(k): _s(v) for k, v in (raw or {}).items()}
    return out


def _num(v: Any) -> str:
    return "" if v in (None, "") else format(float(v), ".10g")


def _what(ev: Mapping[str, str]) -> str:
    """One event in words (the table's detail column)."""
    e = ev.get("event", "")
    if e == "outcome":
        return ev.get("detail") or ev.get("result", "")
    if e in ("denied", "expired", "duplicate"):
        return ev.get("reason", "")
    if e == "exit_failed":
        return f"EXIT FAILED: {ev.get('detail') or ev.get('result', '')}"
    if e == "reviewed":
        return "reviewed" + (f": {ev['note']}" if ev.get("note") else "")
    if e == "attempt":
        got = f"HTTP {ev['status']}" if ev.get("status") else ev.get("error", "")
        return f"attempt {ev.get('attempt', '?')}: {got}, delivered {ev.get('delivered', '?')}" + (
            f", retry in {float(ev['retry_in_s']):.2f}s" if ev.get("retry_in_s") else "")
    if e == "intent":
        return f"{ev.get('action', '')} x{ev.get('quantity', '')} {ev.get('ticker', '')} @ {_num(ev.get('price'))} " \
               f"-> {ev.get('destination', '')} {ev.get('signal_reason', '')}".rstrip()
    return ""


def _row(oid: str, events: list[dict[str, str]], state: Mapping[str, str], pending: set[str]) -> dict[str, Any]:
    """One order (events oldest first) as a flat record: list, export and show use it."""
    base: dict[str, str] = {}
    for ev in events:
        for f in _FIELDS:
            if not base.get(f) and ev.get(f):
                base[f] = ev[f]
    outcomes = [e for e in events if e.get("event") == "outcome"]
    current = state.get("state", "")
    if not current:  # never claimed (refused before the gate) or its claim expired (40 days)
        for e in reversed(events):
            if e.get("event") in ("reviewed", "outcome", "denied", "expired"):
                current = e.get("result") or e["event"]
                break
    detail = ""
    for e in events:  # the newest word on it; a replayed bar's `duplicate` says nothing new
        if e.get("event") not in ("intent", "duplicate"):
            detail = _what(e) or detail
    bar = base.get("bar_start", "")
    when = events[0].get("ts", "") if events else state.get("created", "")
    day = cme_time.trading_day(cme_time.parse_iso(bar)) if bar else (
        cme_time.parse_iso(when).date() if when else None)
    return {
        "order_id": oid, "time": when, "trading_day": day.isoformat() if day else "",
        **{f: base.get(f, "") for f in _FIELDS},
        "quantity": int(base["quantity"]) if base.get("quantity") else None,
        "price": float(base["price"]) if base.get("price") else None,
        "late": base.get("late") == "1", "stale": base.get("stale") == "1",
        "state": current or "?", "result": outcomes[-1].get("result", "") if outcomes else "",
        "detail": detail, "attempts": sum(e.get("event") == "attempt" for e in events), "review": oid in pending,
    }


def list_orders(client: redis.Redis, keys: Keys, strategy: str | None = None, state: str | None = None,
                limit: int = 50) -> list[dict[str, Any]]:
    """Newest orders first. Read backwards: an order's events all follow its first one, so
    once ``limit`` first events have been seen the rest of the stream is older orders."""
    pending = {_s(m) for m in client.smembers(keys.orders_pending())}
    groups: dict[str, list[dict[str, str]]] = {}
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    for batch in _batches(client, keys, newest_first=True):
        starts = []
        for ev in batch:
            oid = ev.get("order_id", "")
            if oid:
                groups.setdefault(oid, []).append(ev)
                if ev.get("event") in _START and oid not in seen:
                    seen.add(oid)
                    starts.append(oid)
        found = _states(client, keys, starts)
        for oid in starts:
            row = _row(oid, groups.pop(oid)[::-1], found[oid], pending)
            if strategy and row["strategy"] != strategy:
                continue
            if state and not (row["state"] == state or (state == "review" and row["review"])):
                continue
            rows.append(row)
            if len(rows) >= limit:
                return rows
    return rows


def resolve(client: redis.Redis, keys: Keys, text: str) -> str:
    """The full id of ``text``, which may be the 10-character prefix `orders list` shows."""
    if not _ID.match(text):
        raise CommandError(f"{text!r} is not an order id")
    if client.exists(keys.order_state(text)) or len(text) < 6:
        return text
    found = {k[len(keys.order_state("")):] for k in map(_s, client.scan_iter(match=keys.order_state(text) + "*",
                                                                               count=1000))}
    if len(found) > 1:
        raise CommandError(f"{text!r} matches {len(found)} orders: give more of the id")
    return found.pop() if found else text


def find(client: redis.Redis, keys: Keys, text: str) -> tuple[str, list[dict[str, str]], dict[str, str]]:
    """(id, events oldest first, state hash). A claimed order has one first event: stop there."""
    oid = resolve(client, keys, text)
    state = _states(client, keys, [oid])[oid]
    events: list[dict[str, str]] = []
    for batch in _batches(client, keys, newest_first=True):
        events += [e for e in batch if e.get("order_id") == oid]
        if state and any(e.get("event") in _START for e in events):
            break
    if not events and not state:
        raise CommandError(f"no order {text!r} in the journal of namespace {keys.namespace!r}")
    return oid, events[::-1], state


def show(settings: Settings, client: redis.Redis, text: str
         ) -> tuple[dict[str, Any], list[dict[str, str]], dict[str, str] | None]:
    """(the order's record, its events oldest first, the position it opened or is closing)."""
    keys = Keys(settings.redis.namespace)
    oid, events, state = find(client, keys, text)
    row = _row(oid, events, state, {oid} if client.sismember(keys.orders_pending(), oid) else set())
    pos = Gate(settings, client).position(row["strategy"], row["symbol"]) if row["strategy"] else None
    mine = pos is not None and oid in (pos.get("exit_order_id"), pos.get("order_id"))
    return row, events, pos if mine else None


def _pos_line(p: Mapping[str, str], who: bool = True) -> str:
    side = "long" if int(p.get("dir", "1")) > 0 else "short"
    line = (f"{p.get('strategy')} {p.get('symbol')} " if who else "") + (
        f"{side} {p.get('quantity')} {p.get('contract')} entry {_num(p.get('entry_price'))} mark {_num(p.get('mark'))}")
    state = p.get("state", "open")
    exit_ = f" (exit {p.get('exit_order_id', '')})" if who and state != "open" else ""
    return f"{line}: {'EXIT FAILED' if state == 'exit_failed' else state}{exit_}"


# -- export -----------------------------------------------------------------------------------


def export(client: redis.Redis, keys: Keys, path: str, fmt: str, first: date | None = None,
           last: date | None = None) -> int:
    """One row per order whose signal bar's CME trading day is in [first, last], in journal order
    (of their first events); returns how many."""
    groups: dict[str, list[dict[str, str]]] = {}
    for batch in _batches(client, keys):
        for ev in batch:
            if ev.get("order_id"):
                groups.setdefault(ev["order_id"], []).append(ev)
    pending = {_s(m) for m in client.smembers(keys.orders_pending())}
    states = _states(client, keys, list(groups))
    rows = [r for r in (_row(oid, evs, states[oid], pending) for oid, evs in groups.items())
            if (first is None or r["trading_day"] >= first.isoformat())
            and (last is None or r["trading_day"] <= last.isoformat())]
    if fmt == "csv":
        import csv

        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
            w.writeheader()
            w.writerows({k: "" if r[k] is None else r[k] for k in COLUMNS} for r in rows)
        return len(rows)
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Typed columns (instants in UTC, the trading day as a date), so readers need no parsing.
    ts = pa.timestamp("us", tz="UTC")
    types = {"time": ts, "bar_start": ts, "trading_day": pa.date32(), "quantity": pa.int64(), "price": pa.float64(),
             "attempts": pa.int64(), "late": pa.bool_(), "stale": pa.bool_(), "review": pa.bool_()}
    conv = {"time": cme_time.parse_iso, "bar_start": cme_time.parse_iso, "trading_day": date.fromisoformat}
    typed = [{c: (conv[c](r[c]) if r[c] else None) if c in conv else r[c] for c in COLUMNS} for r in rows]
    schema = pa.schema([(c, types.get(c, pa.string())) for c in COLUMNS])
    pq.write_table(pa.Table.from_pylist(typed, schema=schema), path)
    return len(rows)


# -- rendering ----------------------------------------------------------------------------------


def _clip(text: str, width: int) -> str:
    """Shorten at a word boundary (never mid-word) and say so with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    cut = text[:max(1, width - 1)]
    if " " in cut:
        cut = cut[:cut.rindex(" ")]
    return cut.rstrip(" ;,:(-") + "…"


def _when(ts: str, fmt: str = "%m-%d %H:%M") -> str:
    return cme_time.parse_iso(ts).strftime(fmt) if ts else ""


def render_list(console: Console, rows: list[dict[str, Any]]) -> None:
    """Fits the console (80 columns when piped): kind and ticker only from 100 columns up (the
    action says the kind: buy/sell enter, exit exits); the detail is cut at a word."""
    wide = console.width >= 100
    cols: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("time (UTC)", lambda r: _when(r["time"])), ("id", lambda r: r["order_id"][:10]),
        ("strategy", lambda r: _clip(r["strategy"], 10)), ("sym", lambda r: r["symbol"]),
        *([("kind", lambda r: r["kind"])] if wide else []), ("act", lambda r: r["action"]),
        ("qty", lambda r: "" if r["quantity"] is None else str(r["quantity"])),
        *([("ticker", lambda r: r["ticker"])] if wide else []), ("price", lambda r: _num(r["price"])),
        ("state", lambda r: r["state"])]
    cells = [[f(r) for _, f in cols] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (h, _) in enumerate(cols)]
    room = max(8, console.width - sum(widths) - len(cols))  # one space after every column
    table = Table(box=None, padding=(0, 1, 0, 0), pad_edge=False, header_style="bold")
    for h, _ in cols:
        table.add_column(h, no_wrap=True)
    table.add_column("detail", no_wrap=True, max_width=room)
    for r, c in zip(rows, cells):
        table.add_row(*map(Text, c[:-1]), Text(c[-1], style=_STYLE.get(r["state"], "")),
                      Text(_clip(r["detail"], room)))
    console.print(table)


def next_step(row: Mapping[str, Any], pos: Mapping[str, str] | None) -> list[str]:
    """What the operator does about this order now (nothing: [])."""
    oid = row["order_id"]
    if row["kind"] == "exit" and pos and pos.get("exit_order_id") == oid and pos.get("state") == "exit_failed":
        return ["next: check the broker.", f"  still holding it: multialpha orders retry {oid}",
                f"  flat there:       multialpha orders ack {oid} [--price P]"]
    if row["review"] and row["kind"] == "entry":
        return ["next: check the broker.", f"  filled:           multialpha orders ack {oid}",
                f"  never arrived:    multialpha orders ack {oid} --not-filled"]
    return ["next: check the broker, then", f"  multialpha orders ack {oid}"] if row["review"] else []


def render_show(console: Console, row: Mapping[str, Any], events: list[dict[str, str]],
                pos: Mapping[str, str] | None) -> None:
    what = row["kind"] if row["kind"] == row["action"] else f"{row['kind']} {row['action']}"
    out = [f"order {row['order_id']}",
           f"  {row['strategy']} {row['symbol']} {what} x{row['quantity'] or ''} {row['ticker'] or row['contract']} "
           f"@ {_num(row['price'])} -> {row['destination'] or 'refused before the gate'}",
           f"  signal bar {row['bar_start']} (trading day {row['trading_day']})",
           f"  state: {row['state']}" + (" (on the review list)" if row["review"] else "")
           + f", {row['attempts']} attempt(s)"]
    if pos:
        out.append(f"  position: {_pos_line(pos, who=False)}")
    for line in out:
        console.print(Text(line))
    table = Table(box=None, padding=(0, 1, 0, 0), pad_edge=False, header_style="bold")
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("event", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for e in events:
        table.add_row(_when(e.get("ts", ""), "%m-%d %H:%M:%S"), Text(e.get("event", ""),
                      style="red" if e.get("event") == "exit_failed" else ""), Text(_what(e)))
    console.print(table)
    for line in next_step(row, pos):
        console.print(Text(line, style="bold"))
