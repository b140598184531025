"""Alert rules over the status document (plus new order-journal entries).

The supervisor evaluates these every few seconds and feeds an
:class:`~multialpha.alerts.Alerter`; the alerter's per-key window turns a
long outage into one alert. Conditions that need a duration ("hub
disconnected longer than N s") are tracked here with an injected monotonic
clock; when a condition clears its key is resolved, so the next outage
alerts at once. Failed/flapping children are alerted by the supervisor
itself the moment it decides, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import redis

from multialpha.alerts import Alerter
from multialpha.keys import Keys

BAD_ORDER_RESULTS = {"rejected", "failed", "ambiguous", "unresolved", "abandoned"}


@dataclass(frozen=True)
class Thresholds:
    hub_disconnect_s: float = 60.0
    bar_lag_s: float = 180.0
    pending_order_s: float = 60.0  # an intent without outcome this long = unsent after a crash


class AlertRules:
    def __init__(self, alerter: Alerter, clock: Callable[[], float], thresholds: Thresholds = Thresholds()) -> None:
        self.alerter, self.clock, self.t = alerter, clock, thresholds
        self._since: dict[str, float] = {}
        self._orders_cursor: str | None = None

    def _held(self, key: str, active: bool, threshold: float) -> float | None:
        """How long ``key`` has been active (None when inactive or not for long enough)."""
        now = self.clock()
        if not active:
            if self._since.pop(key, None) is not None:
                self.alerter.resolve(key)
            return None
        since = self._since.setdefault(key, now)
        return now - since if now - since >= threshold else None

    def check(self, doc: dict[str, Any]) -> None:
        procs = {p["name"]: p for p in doc["processes"]}
        hub = procs.get("hub")
        if hub is not None:
            hb_state = hub["detail"].split(" — ")[0] if hub["detail"] else ""
            down = hub["state"] != "running" or hb_state not in ("connected", "live")
            held = self._held("hub_disconnected", down, self.t.hub_disconnect_s)
            if held is not None:
                seen = f"{hub['state']}/{hb_state or 'no heartbeat'}"
                self.alerter.alert("hub_disconnected", "critical", f"hub not connected for {held:.0f}s (state {seen})",
                                   "hub")
        for s in doc["symbols"]:
            key = f"bar_lag:{s['symbol']}"
            late = doc["market_open"] and (s["lag_s"] is None or s["lag_s"] > self.t.bar_lag_s)
            if self._held(key, late, 0.0 if s["lag_s"] is not None else self.t.bar_lag_s) is not None:
                what = "no bars" if s["lag_s"] is None else f"last bar {s['lag_s']:.0f}s old"
                self.alerter.alert(key, "warning", f"{s['symbol']}: {what} while the market is open", "hub")
        p = doc["portfolio"]
        if p["available"]:
            day_key = f"daily_stop:{p['trading_day']}"
            if p["stopped"]:
                self.alerter.alert(day_key, "critical",
                                   f"daily stop hit: day P&L {p['day_pnl']:,.2f} vs stop -{p['daily_stop_loss']:,.0f}; "
                                   "entries blocked until the next trading day", "portfolio")
            if self._held("halt", bool(p["halted"]), 0.0) is not None:
                self.alerter.alert("halt", "critical", f"trading halted: {p['halt_reason'] or 'no reason given'}",
                                   "portfolio")
            held = self._held("pending_orders", bool(p["pending_orders"]), self.t.pending_order_s)
            if held is not None:
                self.alerter.alert("pending_orders", "critical",
                                   f"{p['pending_orders']} order intent(s) without an outcome for {held:.0f}s — "
                                   "check the broker, then the journal (docs/RUNBOOK.md)", "orders")

    def check_orders(self, client: "redis.Redis", keys: Keys) -> None:
        """Alert on each rejected/failed order outcome journaled since the last call."""
        if self._orders_cursor is None:  # first look: only what happens from now on
            last = client.xrevrange(keys.orders(), count=1)
            self._orders_cursor = last[0][0] if last else "0-0"
            return
        entries = client.xrange(keys.orders(), min=f"({self._orders_cursor}", count=1000)
        for sid, f in entries:
            self._orders_cursor = sid
            if f.get("event") == "exit_failed":
                oid = f.get("order_id", sid)
                self.alerter.alert(f"exit_failed:{oid}", "critical",
                                   f"EXIT FAILED {f.get('strategy', '')} {f.get('symbol', '')} (order {oid}, "
                                   f"{f.get('result', '')}): the broker may still hold the position; "
                                   f"{f.get('strategy', '')} is reduce-only until `multialpha orders retry {oid}` "
                                   f"or `orders ack {oid}`", "orders")
            elif f.get("event") == "outcome" and f.get("result") in BAD_ORDER_RESULTS:
                oid = f.get("order_id", sid)
                self.alerter.alert(f"order:{oid}", "critical",
                                   f"order {oid} {f.get('result')}: {f.get('strategy', '')} {f.get('symbol', '')} "
                                   f"{f.get('detail', '')}".strip(), "orders")
