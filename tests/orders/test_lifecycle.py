"""The money-safe order lifecycle through a live router, a real local webhook and the real gate:
an exit counts only when delivered, a failed exit makes the strategy reduce-only, an entry
that may have landed is never resent, and a stale entry never leaves."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from multialpha.keys import Keys
from multialpha.orders import journal
from multialpha.orders.ratelimit import RateLimiter
from multialpha.orders.router import OrderRouter
from multialpha.portfolio.gate import Gate
from tests.orders.support import Reply, intent, live_settings, webhook_env

T0 = datetime(2025, 12, 10, 15, 29, tzinfo=timezone.utc)
OK = '{"success": true, "id": "a", "logId": "b", "payload": {}}'


class HeldSleep:
    """An injected sleep that parks the sender thread until the test lets it go (no wall time)."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.parked = threading.Event()
        self.go = threading.Event()

    def __call__(self, seconds: float) -> None:
        self.parked.set()
        assert self.go.wait(10), "test never released the sender"
        self.clock.advance(seconds)


def _router(s, redis_client, clock, receiver, name="breakout", sleep=None):
    return OrderRouter(s, redis_client, name, clock=clock, environ=webhook_env(receiver.url),
                       sleep=sleep or clock.sleep, rand=lambda: 0.5)


def test_exit_that_gets_500_then_succeeds_stays_open_until_delivered(settings_for, redis_client, clock, receiver):
    s = live_settings(settings_for)
    held = HeldSleep(clock)
    r = _router(s, redis_client, clock, receiver, sleep=held)
    gate = Gate(s, redis_client)
    assert r.submit(intent(price=6000.0)).accepted and r.wait_idle(5)
    receiver.script = [Reply(500), Reply(200, body=OK)]
    x = r.submit(intent(kind="exit", price=6010.0, bar_start=T0 + timedelta(minutes=2)))
    assert x.accepted
    assert held.parked.wait(5)  # first POST got 500; the sender waits to retry
    pos = gate.position("breakout", "ES")
    assert pos is not None and pos["state"] == "closing"  # still on the book, still counted
    assert redis_client.scard(gate.open_set()) == 1
    assert r.open_positions() == []  # but not the strategy's to manage any more
    day = gate.day_pnl(clock())
    assert day.pnl == -s.commission("breakout", "ES")  # nothing realised yet: only the entry's commission
    held.go.set()
    assert r.wait_idle(5)
    assert gate.position("breakout", "ES") is None
    assert len(receiver.requests) == 3  # entry, exit 500, exit 200
    realized = float(redis_client.hget(gate.day_key(day.trading_day), "realized"))
    assert realized == 10.0 * 50 - 2 * s.commission("breakout", "ES")  # booked at delivery
    assert journal.read(redis_client, Keys(s.redis.namespace), x.order_id)[-1]["result"] == "delivered"
    r.close()


def test_rejected_exit_is_exit_failed_and_the_strategy_goes_reduce_only(settings_for, redis_client, clock, receiver):
    s = live_settings(settings_for)
    r = _router(s, redis_client, clock, receiver)
    gate = Gate(s, redis_client)
    k = Keys(s.redis.namespace)
    assert r.submit(intent()).accepted and r.wait_idle(5)
    receiver.script = [Reply(200, body='{"success": false, "messageCode": "no-position"}')]
    x = r.submit(intent(kind="exit", bar_start=T0 + timedelta(minutes=1)))
    assert x.accepted and r.wait_idle(5)
    assert len(receiver.requests) == 2  # a rejection is never retried
    pos = gate.position("breakout", "ES")
    assert pos["state"] == "exit_failed" and pos["exit_order_id"] == x.order_id
    assert gate.reduce_only() == {"breakout": "exit failed for breakout:ES"}
    assert x.order_id in [p["order_id"] for p in journal.pending_orders(redis_client, k)]
    events = [e["event"] for e in journal.read(redis_client, k, x.order_id)]
    assert events == ["intent", "attempt", "outcome", "exit_failed"]
    # This strategy may not enter anything; another strategy may.
    denied = r.submit(intent(symbol="NQ", contract="NQZ5", price=21000.0, bar_start=T0 + timedelta(minutes=2)))
    assert not denied.accepted and denied.reason.startswith("reduce-only: exit failed")
    other = _router(s, redis_client, clock, receiver, name="ibs_a")
    assert other.submit(intent(strategy="ibs_a", symbol="GC", contract="GCG6", price=4000.0,
                               bar_start=T0 + timedelta(minutes=2))).accepted
    # The position is still marked: the daily stop sees it.
    flatten = r.mark("ES", 5990.0, T0 + timedelta(minutes=3), contract="ESZ5")
    assert gate.position("breakout", "ES")["mark"] == "5990.0" and flatten == ""
    # An operator resends it; once delivered the strategy may enter again.
    assert gate.exit_retry("breakout", "ES", x.order_id, clock())
    assert gate.exit_done("breakout", "ES", x.order_id, clock()) is not None
    assert gate.reduce_only() == {}
    assert r.submit(intent(symbol="NQ", contract="NQZ5", price=21000.0, bar_start=T0 + timedelta(minutes=4))).accepted
    r.close()
    other.close()


def test_a_502_on_an_entry_is_never_resent(settings_for, redis_client, clock, receiver):
    s = live_settings(settings_for)
    r = _router(s, redis_client, clock, receiver)
    receiver.script = [Reply(502)]
    d = r.submit(intent())
    assert d.accepted and r.wait_idle(5)
    assert receiver.order_ids() == [d.order_id] and clock.sleeps == []
    k = Keys(s.redis.namespace)
    assert journal.read(redis_client, k, d.order_id)[-1]["result"] == "ambiguous"
    assert [p["order_id"] for p in journal.pending_orders(redis_client, k)] == [d.order_id]
    # It may have landed: the slot stays counted (the strategy holds it) until a human says.
    assert Gate(s, redis_client).position("breakout", "ES") is not None
    r.close()


def test_200_with_success_false_on_an_entry_is_a_rejection_not_a_position(settings_for, redis_client, clock,
                                                                          receiver):
    s = live_settings(settings_for)
    r = _router(s, redis_client, clock, receiver)
    receiver.script = [Reply(200, body='{"success": false, "messageCode": "market-closed"}')]
    d = r.submit(intent())
    assert d.accepted and r.wait_idle(5)
    assert len(receiver.requests) == 1
    assert journal.read(redis_client, Keys(s.redis.namespace), d.order_id)[-1]["result"] == "rejected"
    assert Gate(s, redis_client).position("breakout", "ES") is None  # slot freed
    r.close()


def test_entry_expires_behind_a_full_rate_limit_window(settings_for, redis_client, clock, receiver):
    """Another worker used the minute's 60 requests; by the time a slot frees, the signal is
    more than orders.max_age_s old: refused, journaled expired, nothing sent, slot freed."""
    s = live_settings(settings_for, MULTIALPHA__ORDERS__MAX_AGE_S="30")
    k = Keys(s.redis.namespace)
    other = RateLimiter(redis_client, k, s.orders.rate_per_minute, s.orders.rate_per_hour, clock=clock)
    for _ in range(s.orders.rate_per_minute):
        assert other.try_acquire() == 0.0
    r = _router(s, redis_client, clock, receiver)
    d = r.submit(intent())  # bar 15:29 closed at 15:30 = now; the next slot frees at 15:31
    assert d.accepted and r.wait_idle(5)
    assert receiver.requests == []
    entries = journal.read(redis_client, k, d.order_id)
    assert entries[-1]["event"] == "outcome" and entries[-1]["result"] == "expired"
    assert Gate(s, redis_client).position("breakout", "ES") is None
    assert journal.pending_orders(redis_client, k) == []  # nothing was sent: nothing to review
    r.close()


def test_stale_entry_is_refused_before_the_gate_and_a_stale_exit_still_goes(settings_for, redis_client, clock):
    s = settings_for()  # paper
    r = OrderRouter(s, redis_client, "breakout", clock=clock, environ={})
    assert r.submit(intent()).accepted
    clock.advance(10 * 60)  # the worker fell 10 minutes behind
    old = r.submit(intent(symbol="NQ", contract="NQZ5", price=21000.0, bar_start=T0 + timedelta(minutes=1)))
    assert not old.accepted and old.reason.startswith("expired")
    k = Keys(s.redis.namespace)
    assert journal.read(redis_client, k, old.order_id)[-1]["event"] == "expired"
    x = r.submit(intent(kind="exit", bar_start=T0 + timedelta(minutes=1)))
    assert x.accepted
    assert journal.read(redis_client, k, x.order_id)[0]["stale"] == "1"
    assert Gate(s, redis_client).position("breakout", "ES") is None
    r.close()


def test_an_exit_without_outcome_after_a_crash_is_exit_failed_at_restart(settings_for, redis_client, clock,
                                                                         receiver):
    s = live_settings(settings_for)
    r = _router(s, redis_client, clock, receiver)
    assert r.submit(intent()).accepted and r.wait_idle(5)
    r.close()
    gate = Gate(s, redis_client)
    # The exit's intent is journaled, then the process dies before the POST (no sender here).
    x = intent(kind="exit", bar_start=T0 + timedelta(minutes=1))
    res = gate.submit(now=clock(), order_id=x.order_id, kind="exit", strategy="breakout", symbol="ES",
                      direction=1, quantity=1, price=x.price, contract="ESZ5", entry_time=x.bar_start,
                      journal={"order_id": x.order_id, "kind": "exit"})
    assert res.status == "accepted" and gate.position("breakout", "ES")["state"] == "closing"
    r2 = _router(s, redis_client, clock, receiver)
    assert [d["order_id"] for d in r2.needs_review] == [x.order_id]
    assert gate.position("breakout", "ES")["state"] == "exit_failed"
    assert "breakout" in gate.reduce_only()
    assert receiver.order_ids() == [intent().order_id]  # the exit was never resent
    r2.close()


def test_a_reentry_waits_for_its_exit_and_is_refused_if_it_is_not_delivered(settings_for, redis_client, clock,
                                                                            receiver):
    """A quick re-entry decides as in the backtest when the webhook is healthy (it waits for the
    exit's delivery); when the exit is stuck, the gate refuses it: the position is still closing."""
    s = live_settings(settings_for, MULTIALPHA__ORDERS__EXIT_WAIT_S="0.2")
    held = HeldSleep(clock)
    r = _router(s, redis_client, clock, receiver, sleep=held)
    assert r.submit(intent()).accepted and r.wait_idle(5)
    receiver.script = [Reply(503)]  # the exit's first POST fails; its retry is parked
    assert r.submit(intent(kind="exit", bar_start=T0 + timedelta(minutes=1))).accepted
    assert held.parked.wait(5)
    stuck = r.submit(intent(bar_start=T0 + timedelta(minutes=2)))
    assert not stuck.accepted and stuck.reason == "position already open for breakout:ES"
    held.go.set()
    assert r.wait_idle(5) and Gate(s, redis_client).position("breakout", "ES") is None
    # Healthy: the exit is delivered while the re-entry waits, and the re-entry goes through.
    assert r.submit(intent(bar_start=T0 + timedelta(minutes=3))).accepted and r.wait_idle(5)
    assert r.submit(intent(kind="exit", bar_start=T0 + timedelta(minutes=4))).accepted
    assert r.submit(intent(side="short", bar_start=T0 + timedelta(minutes=4))).accepted  # a reversal
    assert r.wait_idle(5)
    assert [q["body"]["action"] for q in receiver.requests][-3:] == ["buy", "exit", "sell"]
    r.close()
