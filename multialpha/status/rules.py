"""Alert rules over the status document (plus new order-journal entries and the bar logs).

The supervisor evaluates these every few seconds and feeds an
:class:`~multialpha.alerts.Alerter`. Conditions are **incidents**: the rule
opens one when the condition holds (long enough), and resolves it when the
condition clears; the alerter notifies once for each, whatever happens in
between. Conditions that need a duration ("hub disconnected longer than
N s") are tracked here with an injected monotonic clock. Failed/flapping
children are alerted by the supervisor itself the moment it decides, not here.

Bar lag (``bar_lag:<SYM>``) is judged per symbol in **market time**, against
that symbol's own rhythm (:class:`LagModel`): a thin product (6M, 6N, PL, ZB)
often goes several quiet minutes without a trade, and a minute without a
trade has no bar, so a fixed 3-minute limit cries wolf all night. The lag
counts only open-market seconds (the daily halt and the weekend are not
"late"), and the threshold is

    max(bar_lag_s, bar_lag_factor x the bar_lag_quantile of the symbol's last
        bar_lag_window open-market gaps between bars)

— defaults: max(180 s, 4 x p99 of the last 1000 gaps): about 4 minutes for ES,
about 50 market minutes for 6M at night. Until a symbol has
``bar_lag_min_gaps`` gaps on record the threshold is at least
``bar_lag_cold_s`` (30 market minutes). The gaps come from the hub's bar log
in Redis (:meth:`AlertRules.learn`) and from the bars the documents show.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

import redis

from multialpha import cme_time
from multialpha.alerts import Alerter
from multialpha.keys import Keys
from multialpha.status.values import _parse

BAD_ORDER_RESULTS = {"rejected", "failed", "ambiguous", "unresolved", "abandoned"}
BAR_SPAN = timedelta(minutes=1)


@dataclass(frozen=True)
class Thresholds:
    hub_disconnect_s: float = 60.0
    bar_lag_s: float = 180.0  # floor of every symbol's lag threshold (market seconds)
    pending_order_s: float = 60.0  # an intent without outcome this long = unsent after a crash
    bar_lag_factor: float = 4.0
    bar_lag_quantile: float = 0.99
    bar_lag_window: int = 1000
    bar_lag_min_gaps: int = 30
    bar_lag_cold_s: float = 1800.0
    no_bars_s: float = 180.0  # wall seconds without any bar (and the cold threshold in market time)


class LagModel:
    """Per-symbol lag thresholds from each symbol's own recent gaps between bars (market time)."""

    def __init__(self, t: Thresholds) -> None:
        self.t = t
        self.last: dict[str, datetime] = {}
        self.gaps: dict[str, deque[float]] = {}

    def observe(self, symbol: str, bar_start: datetime) -> None:
        """A bar of ``symbol`` started at ``bar_start`` (older or repeated bars are ignored)."""
        prev = self.last.get(symbol)
        if prev is not None and bar_start <= prev:
            return
        self.last[symbol] = bar_start
        if prev is not None:
            gap = cme_time.open_seconds(prev, bar_start)
            if gap > 0:
                self.gaps.setdefault(symbol, deque(maxlen=self.t.bar_lag_window)).append(gap)

    def observe_many(self, symbol: str, starts: Iterable[datetime]) -> None:
        for s in sorted(starts):
            self.observe(symbol, s)

    def threshold(self, symbol: str) -> float:
        gaps = sorted(self.gaps.get(symbol, ()))
        q = _quantile(gaps, self.t.bar_lag_quantile) if gaps else 0.0
        th = max(self.t.bar_lag_s, self.t.bar_lag_factor * q)
        if len(gaps) < self.t.bar_lag_min_gaps:
            th = max(th, self.t.bar_lag_cold_s)
        return th


def _quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile (no interpolation: a gap that was actually seen)."""
    i = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[i]


class AlertRules:
    def __init__(self, alerter: Alerter, clock: Callable[[], float], thresholds: Thresholds = Thresholds()) -> None:
        self.alerter, self.clock, self.t = alerter, clock, thresholds
        self.lag = LagModel(thresholds)
        self._since: dict[str, float] = {}
        self._first_seen: dict[str, tuple[float, datetime | None]] = {}  # symbol -> (wall, market) first check
        self._orders_cursor: str | None = None
        self._bar_cursor: dict[str, str] = {}

    def _held(self, key: str, active: bool, threshold: float, resolved: str = "") -> float | None:
        """How long ``key`` has been active (None when inactive or not for long enough); the
        incident resolves (notifying once, if it was opened) when the condition clears."""
        now = self.clock()
        if not active:
            if self._since.pop(key, None) is not None:
                self.alerter.resolve(key, resolved)
            return None
        since = self._since.setdefault(key, now)
        return now - since if now - since >= threshold else None

    # -- learning the bars' rhythm ----------------------------------------------------------
    def learn(self, client: "redis.Redis", keys: Keys, symbols: list[str]) -> None:
        """Read the bars each symbol's bar log gained since the last call (the first call: the last
        ``bar_lag_window`` of them) into the lag model; stream ids are bar starts in ms."""
        pipe = client.pipeline(transaction=False)
        for sym in symbols:
            cursor = self._bar_cursor.get(sym)
            if cursor is None:
                pipe.xrevrange(keys.bar_log(sym), count=self.t.bar_lag_window + 1)
            else:
                pipe.xrange(keys.bar_log(sym), min=f"({cursor}", count=10_000)
        for sym, entries in zip(symbols, pipe.execute()):
            ids = [e[0] if isinstance(e[0], str) else e[0].decode() for e in entries]
            if not ids:
                continue
            starts = [cme_time.from_ns(int(i.split("-")[0]) * 1_000_000) for i in ids]
            self.lag.observe_many(sym, starts)
            self._bar_cursor[sym] = max(ids, key=lambda i: tuple(int(x) for x in i.split("-")))

    # -- the document -------------------------------------------------------------------------
    def check(self, doc: dict[str, Any]) -> None:
        procs = {p["name"]: p for p in doc["processes"]}
        hub = procs.get("hub")
        if hub is not None:
            hb_state = hub["detail"].split(" — ")[0] if hub["detail"] else ""
            down = hub["state"] != "running" or hb_state not in ("connected", "live")
            held = self._held("hub_disconnected", down, self.t.hub_disconnect_s, "hub connected again")
            if held is not None:
                seen = f"{hub['state']}/{hb_state or 'no heartbeat'}"
                self.alerter.open("hub_disconnected", "critical", f"hub not connected for {held:.0f}s (state {seen})",
                                  "hub")
        self._bar_lag(doc)
        p = doc["portfolio"]
        if p["available"]:
            day_key = f"daily_stop:{p['trading_day']}"
            if p["stopped"]:  # one per trading day (the key names it): an event, it lifts by itself
                self.alerter.alert(day_key, "critical",
                                   f"daily stop hit: day P&L {p['day_pnl']:,.2f} vs stop -{p['daily_stop_loss']:,.0f}; "
                                   "entries blocked until the next trading day", "portfolio")
            if self._held("halt", bool(p["halted"]), 0.0, "trading resumed") is not None:
                self.alerter.open("halt", "critical", f"trading halted: {p['halt_reason'] or 'no reason given'}",
                                  "portfolio")
            held = self._held("pending_orders", bool(p["pending_orders"]), self.t.pending_order_s,
                              "no order intent without an outcome any more")
            if held is not None:
                self.alerter.open("pending_orders", "critical",
                                  f"{p['pending_orders']} order intent(s) without an outcome for {held:.0f}s — "
                                  "check the broker, then the journal (docs/RUNBOOK.md)", "orders")

    def _bar_lag(self, doc: dict[str, Any]) -> None:
        market_now = _parse((doc.get("clock") or {}).get("market_now"))
        market_open = bool(doc["market_open"])
        wall = self.clock()
        for s in doc["symbols"]:
            sym = s["symbol"]
            key = f"bar_lag:{sym}"
            last = _parse(s.get("last_bar"))
            if last is not None:
                self.lag.observe(sym, last)
            if not market_open:
                continue  # the market is shut: nothing is late, nothing recovers; incidents stay as they are
            threshold = self.lag.threshold(sym)
            if last is None and s.get("lag_s") is None:
                first_wall, first_market = self._first_seen.setdefault(sym, (wall, market_now))
                waited = market_now is None or first_market is None or \
                    cme_time.open_seconds(first_market, market_now) >= max(threshold, self.t.bar_lag_cold_s)
                if wall - first_wall >= self.t.no_bars_s and waited:
                    self.alerter.open(key, "warning", f"{sym}: no bars while the market is open", "hub")
                continue
            if last is not None and market_now is not None:
                lag = cme_time.open_seconds(last + BAR_SPAN, market_now)
            else:
                lag = float(s["lag_s"])
            if lag > threshold:
                self.alerter.open(key, "warning", f"{sym}: last bar {lag:.0f}s old (market time) while the market "
                                  f"is open; this symbol's threshold is {threshold:.0f}s", "hub", lag_s=lag,
                                  threshold_s=threshold)
            else:
                self.alerter.resolve(key, f"{sym}: bars flowing again")

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


def thresholds_from_settings(a: Any) -> Thresholds:
    """Thresholds from ``settings.alerts``."""
    return Thresholds(hub_disconnect_s=a.hub_disconnect_s, bar_lag_s=a.bar_lag_s, pending_order_s=a.pending_order_s,
                      bar_lag_factor=a.bar_lag_factor, bar_lag_quantile=a.bar_lag_quantile,
                      bar_lag_window=a.bar_lag_window, bar_lag_min_gaps=a.bar_lag_min_gaps,
                      bar_lag_cold_s=a.bar_lag_cold_s)
