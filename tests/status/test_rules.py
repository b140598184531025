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
        return [a.key for a in self.alerts if a.kind != "resolved"]

    def kinds(self) -> list[tuple[str, str]]:
        return [(a.key, a.kind) for a in self.alerts]


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
    assert [k for _, k in rec.kinds()] == ["open", "resolved", "open"]


def test_bar_lag_only_while_market_open() -> None:
    rules, rec, now = make()
    from datetime import datetime, timedelta, timezone

    t0 = datetime(2026, 1, 6, 14, 0, tzinfo=timezone.utc)
    rules.lag.observe_many("ES", [t0 + timedelta(minutes=i) for i in range(60)])  # a liquid rhythm: 180 s
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


# -- issue #20: thresholds that follow each symbol, incidents, the demo ------------------------------

from datetime import datetime, timedelta, timezone  # noqa: E402

from multialpha import cme_time  # noqa: E402
from multialpha.status.rules import LagModel  # noqa: E402
from tests.status import demo_sequence as ds  # noqa: E402


def lag_doc(sym: str, last: datetime | None, now: datetime) -> dict:
    d = doc(symbols=[{"symbol": sym, "last_bar": cme_time.iso_z(last) if last else None,
                      "lag_s": (now - last - timedelta(minutes=1)).total_seconds() if last else None}])
    d["clock"] = {"source": "sandbox", "market_now": cme_time.iso_z(now)}
    d["market_open"] = cme_time.is_open(now)
    return d


def test_the_threshold_follows_the_symbols_own_gaps() -> None:
    m = LagModel(Thresholds())
    t0 = datetime(2026, 1, 6, 14, 0, tzinfo=timezone.utc)
    assert m.threshold("ES") == 1800  # nothing known yet: the cold threshold
    m.observe_many("ES", [t0 + timedelta(minutes=i) for i in range(100)])
    assert m.threshold("ES") == 240  # 4 x 60 s
    gaps = [12 if i % 20 == 0 else 5 for i in range(100)]  # mostly 5-minute gaps, some 12-minute ones
    thin = [t0 + timedelta(minutes=sum(gaps[:i])) for i in range(101)]
    m.observe_many("6M", thin)
    assert m.threshold("6M") == 4 * 720  # 4 x p99
    assert m.threshold("unknown") == 1800
    # The daily halt (16:00-17:00 CT) is not a gap: 15:59 CT -> 17:00 CT counts one minute.
    halt = LagModel(Thresholds())
    before = datetime(2026, 1, 6, 21, 59, tzinfo=timezone.utc)  # 15:59 CST
    halt.observe("ZB", before)
    halt.observe("ZB", before + timedelta(minutes=61))
    assert list(halt.gaps["ZB"]) == [60.0]


def test_a_thin_symbol_incident_opens_once_and_resolves_once() -> None:
    rules, rec, now = make()
    t0 = datetime(2026, 1, 6, 14, 0, tzinfo=timezone.utc)  # Tuesday, open market
    bars = [t0 + timedelta(minutes=3 * i) for i in range(60)]  # a thin rhythm: a bar every 3 minutes
    rules.lag.observe_many("6M", bars)
    th = rules.lag.threshold("6M")
    assert th == 720
    market = bars[-1] + timedelta(minutes=1)
    last = bars[-1]
    # Quiet, but within its rhythm: nothing.
    for _ in range(10):
        market += timedelta(seconds=60)
        rules.check(lag_doc("6M", last, market))
    assert rec.alerts == []
    # An outage: 30 market minutes without a bar, checked every 5 minutes of market time.
    for _ in range(6):
        market += timedelta(minutes=5)
        now[0] += 5
        rules.check(lag_doc("6M", last, market))
    assert rec.kinds() == [("bar_lag:6M", "open")]
    assert "threshold is 720s" in rec.alerts[0].message
    # Still out for a long time (hours of checks): no more notifications.
    for _ in range(200):
        market += timedelta(minutes=5)
        now[0] += 5
        rules.check(lag_doc("6M", last, market))
    assert len(rec.alerts) == 1
    # Bars again: one resolution, then a trickle of normal bars changes nothing.
    for _ in range(50):
        market += timedelta(minutes=3)
        last = market - timedelta(minutes=1)
        now[0] += 3
        rules.check(lag_doc("6M", last, market))
    assert rec.kinds() == [("bar_lag:6M", "open"), ("bar_lag:6M", "resolved")]
    assert "bars flowing again" in rec.alerts[1].message


def test_a_quiet_symbol_is_not_late_across_the_daily_halt() -> None:
    rules, rec, now = make()
    close = datetime(2026, 1, 6, 22, 0, tzinfo=timezone.utc)  # 16:00 CST
    rules.lag.observe_many("ZB", [close - timedelta(minutes=2 * i) for i in range(1, 60)])
    last = close - timedelta(minutes=2)
    for minutes in (10, 30, 59):  # halted: nothing
        rules.check(lag_doc("ZB", last, close + timedelta(minutes=minutes)))
    rules.check(lag_doc("ZB", last, close + timedelta(minutes=63)))  # 3 minutes after the open
    assert rec.alerts == []


def test_the_demo_sequence_raises_no_alert_and_a_real_outage_exactly_one() -> None:
    """The demo's sandbox market (seed 7) at 60x, checked every 5 wall seconds like `up` does: the
    thin products (6M, 6N, PL, ZB) plus 6C and ES for 40 wall minutes (40 market hours).
    The old fixed 180 s rule sent 81 notifications in the first 8 wall minutes of this sequence."""
    from multialpha import config as cfg
    from multialpha.sandbox.market import SyntheticMarket
    from tests.conftest import SHIPPED_CONFIG

    market = SyntheticMarket(cfg.load(SHIPPED_CONFIG, environ={}), 7)
    wall_s = 40 * 60
    end = ds.DEMO_START + timedelta(seconds=wall_s * 60)
    bars = {r: ds.front_bars(market, r, ds.DEMO_START, end) for r in ds.THIN + ["6C", "ES"]}

    def rules_for(rec: Rec):
        return lambda clock: AlertRules(Alerter([rec], window_s=900, clock=clock), clock, Thresholds())

    rec = Rec()
    ds.run(rules_for(rec), bars, ds.DEMO_START, wall_s)
    assert rec.alerts == []
    # The same sequence with a 2-hour outage of 6N in the middle: one open, one resolve.
    cut0, cut1 = ds.DEMO_START + timedelta(hours=14), ds.DEMO_START + timedelta(hours=16)
    assert cme_time.is_open(cut0) and cme_time.is_open(cut1)
    broken = {**bars, "6N": [t for t in bars["6N"] if not cut0 <= t < cut1]}
    rec = Rec()
    ds.run(rules_for(rec), broken, ds.DEMO_START, wall_s)
    assert rec.kinds() == [("bar_lag:6N", "open"), ("bar_lag:6N", "resolved")]
