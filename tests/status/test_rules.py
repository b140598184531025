"""Alert rules: conditions held over (fake) time, one alert per outage, journal outcomes from real Redis."""

from __future__ import annotations

import copy

from multialpha.alerts import Alert, Alerter
from multialpha.keys import Keys
from multialpha.status.rules import AlertRules, Thresholds


class Rec:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def send(self, a: Alert) -> None:
        self.alerts.append(a)

    def keys(self) -> list[str]:
        return [a.key for a in self.alerts]


BASE = {
    "market_open": True,
    "processes": [{"name": "hub", "state": "running", "detail": "connected"}],
    "symbols": [{"symbol": "ES", "lag_s": 10.0}],
    "portfolio": {"available": True, "trading_day": "2026-01-06", "stopped": False, "halted": False,
                  "halt_reason": None, "pending_orders": 0, "day_pnl": 0.0, "daily_stop_loss": 2500},
}


def make():
    now = [0.0]
    rec = Rec()
    rules = AlertRules(Alerter([rec], window_s=900, clock=lambda: now[0]), lambda: now[0],
                       Thresholds(hub_disconnect_s=60, bar_lag_s=180, pending_order_s=60))
    return rules, rec, now


def doc(**changes) -> dict:
    d = copy.deepcopy(BASE)
    for path, v in changes.items():
        node = d
        *head, last = path.split("__")
        for h in head:
            node = node[h] if not h.isdigit() else node[int(h)]
        node[last] = v
    return d


def test_healthy_sends_nothing() -> None:
    rules, rec, now = make()
    for _ in range(100):
        now[0] += 5
        rules.check(doc())
    assert rec.alerts == []


def test_hub_disconnect_after_threshold_once_then_rearmed() -> None:
    rules, rec, now = make()
    bad = doc(processes=[{"name": "hub", "state": "running", "detail": "reconnecting"}])
    rules.check(bad)
    now[0] = 59
    rules.check(bad)
    assert rec.alerts == []
    now[0] = 60
    rules.check(bad)
    for _ in range(50):  # an hour-long outage...
        now[0] += 10
        rules.check(bad)
    assert rec.keys() == ["hub_disconnected"]  # ...one alert
    rules.check(doc())  # recovered
    now[0] += 1
    rules.check(bad)
    now[0] += 60
    rules.check(bad)
    assert rec.keys() == ["hub_disconnected", "hub_disconnected"]


def test_bar_lag_only_while_market_open() -> None:
    rules, rec, now = make()
    rules.check(doc(symbols=[{"symbol": "ES", "lag_s": 400.0}], market_open=False))
    assert rec.alerts == []
    rules.check(doc(symbols=[{"symbol": "ES", "lag_s": 400.0}]))
    rules.check(doc(symbols=[{"symbol": "ES", "lag_s": 410.0}]))
    assert rec.keys() == ["bar_lag:ES"] and "400s old" in rec.alerts[0].message


def test_daily_stop_halt_and_unsent_intents() -> None:
    rules, rec, now = make()
    rules.check(doc(portfolio__stopped=True, portfolio__day_pnl=-2600.0))
    rules.check(doc(portfolio__stopped=True, portfolio__day_pnl=-2700.0))
    rules.check(doc(portfolio__halted=True, portfolio__halt_reason="broker outage"))
    rules.check(doc(portfolio__pending_orders=1))
    now[0] += 61
    rules.check(doc(portfolio__pending_orders=1))
    assert rec.keys() == ["daily_stop:2026-01-06", "halt", "pending_orders"]
    assert "broker outage" in rec.alerts[1].message


def test_rejected_order_outcomes_from_the_journal(redis_client) -> None:
    keys = Keys("multialpha")
    rules, rec, now = make()
    redis_client.xadd(keys.orders(), {"event": "outcome", "order_id": "old", "result": "rejected"})
    rules.check_orders(redis_client, keys)  # history is not re-alerted
    redis_client.xadd(keys.orders(), {"event": "intent", "order_id": "a1"})
    redis_client.xadd(keys.orders(), {"event": "outcome", "order_id": "a1", "result": "delivered"})
    redis_client.xadd(keys.orders(), {"event": "outcome", "order_id": "b2", "result": "rejected",
                                      "strategy": "ibs_a", "symbol": "6A", "detail": "HTTP 400"})
    rules.check_orders(redis_client, keys)
    rules.check_orders(redis_client, keys)
    assert rec.keys() == ["order:b2"] and "HTTP 400" in rec.alerts[0].message


def test_a_failed_exit_alerts_once_with_what_to_do(redis_client) -> None:
    keys = Keys("multialpha")
    rules, rec, now = make()
    rules.check_orders(redis_client, keys)  # the cursor starts here
    redis_client.xadd(keys.orders(), {"event": "outcome", "order_id": "x9", "result": "ambiguous",
                                      "strategy": "breakout", "symbol": "ES", "kind": "exit"})
    redis_client.xadd(keys.orders(), {"event": "exit_failed", "order_id": "x9", "strategy": "breakout",
                                      "symbol": "ES", "result": "ambiguous"})
    rules.check_orders(redis_client, keys)
    rules.check_orders(redis_client, keys)
    assert rec.keys() == ["order:x9", "exit_failed:x9"]
    msg = rec.alerts[1].message
    assert "EXIT FAILED breakout ES" in msg and "reduce-only" in msg and "orders retry x9" in msg
