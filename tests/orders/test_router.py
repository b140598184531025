"""OrderRouter end to end: gate -> journal -> paper / TradersPost (real local receiver)."""

from __future__ import annotations

from datetime import datetime, timezone

from multialpha.keys import Keys
from multialpha.orders import journal
from multialpha.orders.router import OrderRouter
from tests.orders.support import WEBHOOK_PASSWORD, intent, live_settings, webhook_env


def test_paper_is_default_and_journals_intent_then_outcome(settings_for, redis_client, clock, receiver):
    s = settings_for()
    r = OrderRouter(s, redis_client, "breakout", clock=clock, environ=webhook_env(receiver.url))
    assert r.destination == "paper"  # a URL alone never makes it live
    d = r.submit(intent())
    assert d.accepted and d.reason == "paper"
    events = [e["event"] for e in journal.read(redis_client, Keys(s.redis.namespace), d.order_id)]
    assert events == ["intent", "outcome"]
    assert receiver.requests == []
    assert journal.pending_orders(redis_client, Keys(s.redis.namespace)) == []
    [pos] = r.open_positions()
    # The paper fill: the signal price 6000.25 plus backtest.slippage_ticks (1 ES tick) on a buy.
    assert (pos.symbol, pos.side, pos.contract, pos.entry_price) == ("ES", "long", "ESZ5", 6000.5)
    [ev] = [e for e in journal.read(redis_client, Keys(s.redis.namespace), d.order_id) if e["event"] == "intent"]
    assert (ev["price"], ev["fill_price"]) == ("6000.25", "6000.5")
    r.close()


def test_live_sends_once_and_replayed_bar_is_not_resent(settings_for, redis_client, clock, receiver):
    s = live_settings(settings_for)
    r = OrderRouter(s, redis_client, "breakout", clock=clock, environ=webhook_env(receiver.url),
                    sleep=clock.sleep)
    first = r.submit(intent())
    assert first.accepted
    assert r.wait_idle(5)
    again = r.submit(intent())  # the same bar replayed after a reconnect
    assert not again.accepted and again.reason.startswith("duplicate")
    assert again.order_id == first.order_id
    assert r.wait_idle(5)
    r.close()
    # A restarted worker (new router) replaying the bar cannot send it either.
    r2 = OrderRouter(s, redis_client, "breakout", clock=clock, environ=webhook_env(receiver.url),
                     sleep=clock.sleep)
    assert not r2.submit(intent()).accepted
    r2.close()
    assert receiver.order_ids() == [first.order_id]
    req = receiver.requests[0]
    assert req["path"].endswith(WEBHOOK_PASSWORD)
    assert req["body"]["ticker"] == "ESZ2025" and req["body"]["action"] == "buy"
    states = redis_client.hget(Keys(s.redis.namespace).order_state(first.order_id), "state")
    assert states == "delivered"


def test_roll_entry_then_exit_closes_the_held_contract(settings_for, redis_client, clock, receiver):
    """ES rolls on 2025-12-11 (ESZ5 -> ESH6). An exit after the roll closes ESZ5, the contract held."""
    s = live_settings(settings_for)
    r = OrderRouter(s, redis_client, "breakout", clock=clock, environ=webhook_env(receiver.url),
                    sleep=clock.sleep)
    assert r.submit(intent(bar_start=datetime(2025, 12, 10, 15, 29, tzinfo=timezone.utc), contract="ESZ5")).accepted
    assert r.wait_idle(5)  # delivered before the clock jumps a day (it would have expired)
    clock.set(datetime(2025, 12, 11, 15, 0, tzinfo=timezone.utc))
    exit_ = intent(kind="exit", bar_start=datetime(2025, 12, 11, 14, 59, tzinfo=timezone.utc), contract="ESH6")
    assert r.submit(exit_).accepted
    reentry = intent(bar_start=datetime(2025, 12, 11, 15, 0, tzinfo=timezone.utc), contract="ESH6")
    # The ESZ5 position stays on the book until its exit is delivered: the re-entry waits for that.
    assert r.submit(reentry).accepted
    assert r.wait_idle(5)
    r.close()
    got = [(q["body"]["action"], q["body"]["ticker"], q["body"]["sentiment"]) for q in receiver.requests]
    assert got == [("buy", "ESZ2025", "bullish"), ("exit", "ESZ2025", "flat"), ("buy", "ESH2026", "bullish")]


def test_rejected_entry_is_not_retried_and_frees_its_slot(settings_for, redis_client, clock, receiver):
    from tests.orders.support import Reply

    s = live_settings(settings_for)
    receiver.script = [Reply(400, body='{"success": false, "messageCode": "invalid-quantity"}')]
    r = OrderRouter(s, redis_client, "breakout", clock=clock, environ=webhook_env(receiver.url),
                    sleep=clock.sleep)
    d = r.submit(intent())
    assert d.accepted  # the gate accepted; the broker said no
    assert r.wait_idle(5)
    assert len(receiver.requests) == 1 and clock.sleeps == []
    assert r.open_positions() == []  # explicit rejection: no position exists anywhere
    k = Keys(s.redis.namespace)
    entries = journal.read(redis_client, k, d.order_id)
    assert [e["event"] for e in entries] == ["intent", "attempt", "outcome"]
    assert entries[-1]["result"] == "rejected" and entries[1]["status"] == "400"
    assert journal.pending_orders(redis_client, k) == []
    r.close()


def test_gate_unavailable_fails_closed(settings_for, redis_client, clock, receiver):
    import redis as redis_lib

    s = live_settings(settings_for)
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    dead = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, decode_responses=True,
                           retry=Retry(NoBackoff(), 0))
    r = OrderRouter(s, redis_client, "breakout", clock=clock, environ=webhook_env(receiver.url),
                    sleep=clock.sleep)
    r.client = dead
    r.gate.client = dead
    r.gate._script.registered_client = dead
    d = r.submit(intent())
    assert not d.accepted and "gate unavailable" in d.reason
    x = r.submit(intent(kind="exit"))
    assert not x.accepted and "gate unavailable" in x.reason
    late = r.submit(intent(late=True))  # refusal journal write fails too: still a clean "no"
    assert not late.accepted
    assert r.wait_idle(2) and receiver.requests == []
    r.close()


def test_refused_before_gate_late_entry_unknown_contract(settings_for, redis_client, clock):
    s = settings_for()
    r = OrderRouter(s, redis_client, "breakout", clock=clock, environ={})
    late = r.submit(intent(late=True))
    assert not late.accepted and "late entry" in late.reason
    bad = r.submit(intent(contract="ESZ5-ESH6"))
    assert not bad.accepted and "not an outright" in bad.reason
    wrong_root = r.submit(intent(contract="NQZ5"))
    assert not wrong_root.accepted and "does not belong" in wrong_root.reason
    not_mine = r.submit(intent(symbol="CL", contract="CLF6"))
    assert not not_mine.accepted and "not an instrument of breakout" in not_mine.reason
    # Late EXITS are allowed: they reduce risk.
    assert r.submit(intent(kind="exit", late=True)).accepted
    assert r.open_positions() == []
    r.close()


def test_close_abandons_unsent_orders_without_sending(settings_for, redis_client, clock, receiver):
    """Shutdown while the sender waits (rate limit): nothing is sent, the entry's
    slot is freed (it never left), and since nothing can have reached the broker there is
    nothing to review (the outcome is journaled and alerted as abandoned)."""
    from multialpha.orders.ratelimit import RateLimiter

    s = live_settings(settings_for)
    k = Keys(s.redis.namespace)
    other = RateLimiter(redis_client, k, s.orders.rate_per_minute, s.orders.rate_per_hour, clock=clock)
    for _ in range(s.orders.rate_per_minute):
        assert other.try_acquire() == 0.0
    # No injected sleep: the router's own interruptible wait is used.
    r = OrderRouter(s, redis_client, "breakout", clock=clock, environ=webhook_env(receiver.url))
    d = r.submit(intent())
    r.close(timeout=0.2)
    assert not r._thread.is_alive()
    assert receiver.requests == []
    assert journal.read(redis_client, k, d.order_id)[-1]["result"] == "abandoned"
    assert journal.pending_orders(redis_client, k) == []
    assert r.open_positions() == []


def test_snapshot_for_status(settings_for, redis_client, clock):
    from multialpha.portfolio import control

    s = settings_for()
    r = OrderRouter(s, redis_client, "breakout", clock=clock, environ={})
    r.submit(intent(price=6000.0))
    r.mark("ES", 5900.0, clock())
    snap = control.snapshot(s, redis_client, clock=clock)
    assert snap["trading_day"] == "2025-12-10" and snap["stopped"] and snap["entries"] == "blocked"
    # Paper entry filled at 6000.25 (1 tick of slippage): (5900 - 6000.25) x 50 - 2.50 commission.
    assert snap["day_pnl"] == -5015.0 and snap["open_positions"] == 1
    assert snap["positions"][0]["contract"] == "ESZ5" and snap["pending_orders"] == []
    r.close()


def test_exit_sends_the_quantity_held(settings_for, redis_client, clock, receiver):
    s = live_settings(settings_for)
    r = OrderRouter(s, redis_client, "breakout", clock=clock, environ=webhook_env(receiver.url),
                    sleep=clock.sleep)
    r.submit(intent(quantity=3))
    r.submit(intent(kind="exit", quantity=1, bar_start=intent().bar_start.replace(minute=40)))
    assert r.wait_idle(5)
    r.close()
    assert [q["body"]["quantity"] for q in receiver.requests] == [3, 3]


def test_live_needs_https_except_on_loopback(settings_for, redis_client, clock):
    import pytest

    s = live_settings(settings_for)
    url = "http://hooks.example.com/trading/webhook/uuid-x/pw-cleartext-123"
    with pytest.raises(ValueError) as e:
        OrderRouter(s, redis_client, "breakout", clock=clock, environ=webhook_env(url))
    assert "https" in str(e.value) and "pw-cleartext-123" not in str(e.value)
    ok = OrderRouter(s, redis_client, "breakout", clock=clock,
                     environ=webhook_env("https://webhooks.traderspost.io/trading/webhook/u/p"))
    assert ok.destination == "live"
    ok.close()


def test_unreplicated_claim_is_never_sent(settings_for, redis_client, clock, receiver):
    """redis.wait_replicas: 1 and no replica acknowledges (the test Redis has none): fail closed. The
    entry is journaled failed and frees its slot; the exit goes exit_failed (reduce-only, an event);
    the receiver sees only the entry sent before WAIT was asked for."""
    plain = live_settings(settings_for)
    r = OrderRouter(plain, redis_client, "breakout", clock=clock, environ=webhook_env(receiver.url),
                    sleep=clock.sleep)
    opened = r.submit(intent())
    assert opened.accepted and r.wait_idle(5)
    r.close()
    waiting = live_settings(settings_for, MULTIALPHA__REDIS__WAIT_REPLICAS="1", MULTIALPHA__REDIS__WAIT_TIMEOUT_MS="20")
    w = OrderRouter(waiting, redis_client, "breakout", clock=clock, environ=webhook_env(receiver.url),
                    sleep=clock.sleep)
    ex = w.submit(intent(kind="exit", bar_start=datetime(2025, 12, 10, 15, 29, 30, tzinfo=timezone.utc)))
    assert not ex.accepted and "0 of 1 replica(s)" in ex.reason and "NOT sent" in ex.reason
    k = Keys(waiting.redis.namespace)
    assert journal.read(redis_client, k, ex.order_id)[-1]["result"] == "failed"
    assert w.gate.positions("breakout")[0]["state"] == "exit_failed"  # still held: an operator resolves it
    assert any(f.get("type") == "exit_failed" for _, f in redis_client.xrange(k.events()))
    other = OrderRouter(waiting, redis_client, "ibs_a", clock=clock, environ=webhook_env(receiver.url),
                        sleep=clock.sleep)
    en = other.submit(intent(strategy="ibs_a", symbol="GC", contract="GCG6", price=4000.0))
    assert not en.accepted and "NOT sent" in en.reason
    assert other.open_positions() == []  # nothing placed: the slot is free again
    assert journal.read(redis_client, k, en.order_id)[-1]["result"] == "failed"
    assert w.wait_idle(2) and other.wait_idle(2)
    w.close()
    other.close()
    assert receiver.order_ids() == [opened.order_id]
