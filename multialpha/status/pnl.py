"""Portfolio P&L for status, computed exactly as the gate computes it.

The portfolio is read from the gate's own keys (names from
:class:`~multialpha.portfolio.gate.Gate`) and its day P&L is computed exactly
as ``day_pnl()`` in ``portfolio/gate.lua`` does: the day hash's ``realized``
plus, for every open position whose ``ref_day`` is today,
``dir * quantity * mult * (mark - ref_price)``. The gate keeps ``realized``
for the whole portfolio only, so a strategy's realised P&L today is derived
from today's order journal (:func:`journal_realized`); whatever the journal
cannot attribute (an exit of a position opened on an earlier trading day,
an operator's ``orders ack`` at a price) is shown as ``unattributed`` so the
strategies always add up to the gate's figure.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Iterable

from multialpha import cme_time
from multialpha.config import Settings
from multialpha.orders.journal import ENTRY_RELEASED  # the gate frees the slot, refunds commission
from multialpha.status.raw import Raw
from multialpha.status.values import _int, _num, _parse



def journal_realized(settings: Settings, entries: Iterable[tuple[str, dict[str, str]]],
                     day: date) -> dict[str, float]:
    """Realised P&L of trading day ``day`` per strategy, from the order journal (oldest first).

    The same bookings as gate.lua, keyed by the signal bar's trading day (``day_at``):
    an accepted entry pays ``quantity * commission``; an entry released by a
    rejected/expired/failed/abandoned outcome gets it back; an exit books
    ``dir * quantity * mult * (exit price - entry price) - quantity * commission`` when it
    is delivered (paper: with its intent). Only exits of positions opened today can be
    attributed (a carried position's reference is the previous day's last mark, which the
    journal does not hold): the caller shows the difference to the gate as unattributed."""
    out: dict[str, float] = {}
    entries_by_id: dict[str, dict[str, Any]] = {}
    opened: dict[str, dict[str, Any]] = {}  # strategy:symbol -> today's entry
    exits: dict[str, dict[str, Any]] = {}

    def commission(strat: str, sym: str) -> float:
        try:
            return float(settings.commission(strat, sym))
        except (KeyError, ValueError, AttributeError):
            return 0.0

    def book_exit(x: dict[str, Any]) -> None:
        entry = opened.pop(x["pid"], None)
        if entry is None:
            return  # carried from an earlier day: unattributed
        inst = settings.instruments.get(x["symbol"])
        mult = float(inst.multiplier) if inst is not None else 0.0
        pnl = entry["dir"] * x["qty"] * mult * (x["price"] - entry["price"]) - x["qty"] * commission(x["strategy"], x["symbol"])
        out[x["strategy"]] = out.get(x["strategy"], 0.0) + pnl

    for _, f in entries:
        event, strat, sym, oid = f.get("event"), f.get("strategy", ""), f.get("symbol", ""), f.get("order_id", "")
        bar = _parse(f.get("bar_start"))
        if event == "intent" and f.get("decision") == "accepted" and strat and sym and bar is not None:
            if cme_time.trading_day(bar) != day:
                continue
            qty, price = _int(f.get("quantity")) or 0, _num(f.get("price")) or 0.0
            if f.get("kind") == "entry":
                e = {"dir": 1 if f.get("side") == "long" else -1, "qty": qty, "price": price, "strategy": strat,
                     "pid": f"{strat}:{sym}"}
                entries_by_id[oid], opened[e["pid"]] = e, e
                out[strat] = out.get(strat, 0.0) - qty * commission(strat, sym)
            elif f.get("kind") == "exit":
                x = {"strategy": strat, "symbol": sym, "qty": qty, "price": price, "pid": f"{strat}:{sym}"}
                if f.get("destination") == "paper":
                    book_exit(x)
                else:
                    exits[oid] = x
        elif event == "outcome":
            result = f.get("result", "")
            if result == "delivered" and oid in exits:
                book_exit(exits.pop(oid))
            elif result in ENTRY_RELEASED and oid in entries_by_id:
                e = entries_by_id.pop(oid)
                if opened.get(e["pid"]) is e:
                    opened.pop(e["pid"])
                    out[e["strategy"]] = out.get(e["strategy"], 0.0) + e["qty"] * commission(e["strategy"], sym)
    return out


def portfolio(settings: Settings, raw: Raw, mnow: datetime) -> dict[str, Any]:
    """The gate's state, computed as gate.lua's ``day_pnl()`` / ``op == 'pnl'`` do."""
    day = cme_time.trading_day(mnow)
    dayiso = day.isoformat()
    realized = _num(raw.day_hash.get("realized")) or 0.0
    pnl = realized
    positions = []
    for p in raw.positions:
        d, q, m = _num(p.get("dir")), _num(p.get("quantity")), _num(p.get("mult"))
        entry, mark, ref = _num(p.get("entry_price")), _num(p.get("mark")), _num(p.get("ref_price"))
        known = None not in (d, q, m, mark)
        open_pnl = round(d * q * m * (mark - entry), 2) if known and entry is not None else None  # type: ignore[operator]
        day_pnl = 0.0
        if p.get("ref_day") == dayiso and known and ref is not None:
            day_pnl = d * q * m * (mark - ref)  # type: ignore[operator]
        pnl += day_pnl
        positions.append({"strategy": p.get("strategy", ""), "symbol": p.get("symbol", ""), "dir": _int(d),
                          "quantity": _int(q), "entry_price": entry, "mark": mark, "open_pnl": open_pnl,
                          "day_pnl": round(day_pnl, 2), "contract": p.get("contract", ""),
                          "entry_time": p.get("entry_time", ""), "mark_time": p.get("mark_time", ""),
                          "state": p.get("state", "open")})  # open | closing | exit_failed
    limit = float(settings.portfolio.daily_stop_loss)
    stopped = raw.day_hash.get("stopped") == "1" or pnl <= -limit
    reduce_only = dict(raw.reduce_only)
    for pid in raw.exit_failed_set:  # as Gate.reduce_only()
        reduce_only.setdefault(pid.split(":", 1)[0], f"exit failed for {pid}")
    scopes = set(raw.flatten) | ({"*"} if raw.day_hash.get("flatten") == "1" else set())
    flatten_pending = sorted({p["strategy"] for p in positions if p["state"] == "open"
                              and ("*" in scopes or p["strategy"] in scopes)})
    exit_failed = [f"{p['strategy']}:{p['symbol']}" for p in positions if p["state"] == "exit_failed"]
    return {"available": True, "trading_day": dayiso, "open_positions": len(positions),
            "max_positions": settings.portfolio.max_positions, "day_pnl": round(pnl, 2),
            "realized": round(realized, 2), "unattributed_pnl": 0.0,
            "daily_stop_loss": settings.portfolio.daily_stop_loss, "on_daily_stop": settings.portfolio.on_daily_stop,
            "stopped": bool(stopped), "stopped_at": raw.day_hash.get("stopped_at"),
            "halted": raw.halt is not None, "halt_reason": raw.halt,
            "pending_orders": len(raw.pending), "pending_order_ids": raw.pending[:5],
            "positions": positions, "reduce_only": reduce_only, "exit_failed": exit_failed,
            "flatten_pending": flatten_pending, "unmanaged": dict(raw.unmanaged),
            "entries": "blocked" if (raw.halt is not None or stopped or "*" in reduce_only) else "allowed",
            "degraded": bool(stopped or raw.halt is not None or raw.pending or exit_failed or reduce_only
                             or raw.unmanaged)}
