"""Retry policy against a real local receiver: 500, 429 + Retry-After, timeouts, 400, refused."""

from __future__ import annotations

import email.utils
from datetime import timedelta

from multialpha.keys import Keys
from multialpha.orders import journal
from multialpha.orders.router import OrderRouter
from multialpha.orders.sender import backoff, retry_after
from multialpha.managed_redis import free_port
from tests.orders.support import Reply, intent, live_settings


def _router(s, redis_client, clock, url, rand=lambda: 0.5):
    return OrderRouter(s, redis_client, "breakout", clock=clock, environ={"TRADERSPOST_WEBHOOK_URL": url},
                       sleep=clock.sleep, rand=rand)


def _events(redis_client, s, oid):
    return journal.read(redis_client, Keys(s.redis.namespace), oid)


def _accepted_deliveries(receiver, oid, replies):
    """How many POSTs of this order the receiver answered with 2xx."""
    statuses = [r.status for r in replies] + [200] * (len(receiver.requests) - len(replies))
    return sum(1 for q, st in zip(receiver.requests, statuses) if q["body"]["extras"]["orderId"] == oid and st < 300)


def test_backoff_is_exponential_capped_and_jittered(settings_for):
    p = settings_for().orders  # 0.5 s initial, 30 s cap
    assert [backoff(p, n, lambda: 1.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert [backoff(p, n, lambda: 0.0) for n in (1, 2, 3)] == [0.25, 0.5, 1.0]
    assert backoff(p, 20, lambda: 1.0) == 30.0


def test_retry_after_seconds_and_http_date(clock):
    assert retry_after("7", clock()) == 7.0
    assert retry_after(None, clock()) is None and retry_after("soon", clock()) is None
    when = email.utils.format_datetime(clock() + timedelta(seconds=12), usegmt=True)
    assert retry_after(when, clock()) == 12.0


def test_500_is_retried_with_backoff_until_accepted(settings_for, redis_client, clock, receiver):
    s = live_settings(settings_for)
    replies = [Reply(500, body="<html>oops</html>"), Reply(503)]
    receiver.script = list(replies)
    r = _router(s, redis_client, clock, receiver.url)
    d = r.submit(intent())
    assert r.wait_idle(5)
    r.close()
    assert receiver.order_ids() == [d.order_id] * 3
    assert clock.sleeps == [0.375, 0.75]  # 0.5 * 2^(n-1), equal jitter at rand=0.5
    ev = _events(redis_client, s, d.order_id)
    assert [e["event"] for e in ev] == ["intent", "attempt", "attempt", "attempt", "outcome"]
    assert [e["status"] for e in ev if e["event"] == "attempt"] == ["500", "503", "200"]
    assert ev[-1]["result"] == "sent"
    assert _accepted_deliveries(receiver, d.order_id, replies) == 1


def test_429_honours_retry_after(settings_for, redis_client, clock, receiver):
    s = live_settings(settings_for)
    replies = [Reply(429, headers={"Retry-After": "7"})]
    receiver.script = list(replies)
    r = _router(s, redis_client, clock, receiver.url)
    d = r.submit(intent())
    assert r.wait_idle(5)
    r.close()
    assert clock.sleeps == [7.0]
    ev = _events(redis_client, s, d.order_id)
    assert [e.get("status") for e in ev if e["event"] == "attempt"] == ["429", "200"]
    assert ev[1]["retry_in_s"] == "7.000"
    assert _accepted_deliveries(receiver, d.order_id, replies) == 1


def test_other_4xx_is_rejected_without_retry(settings_for, redis_client, clock, receiver):
    s = live_settings(settings_for)
    receiver.script = [Reply(404, body='{"success": false, "messageCode": "not-found"}')]
    r = _router(s, redis_client, clock, receiver.url)
    d = r.submit(intent(kind="exit"))
    assert r.wait_idle(5)
    r.close()
    assert len(receiver.requests) == 1 and clock.sleeps == []
    assert _events(redis_client, s, d.order_id)[-1]["result"] == "rejected"
    # A rejected EXIT may leave a position at the broker: listed for review.
    [review] = journal.pending_orders(redis_client, Keys(s.redis.namespace))
    assert review["order_id"] == d.order_id and review["state"] == "rejected"


def test_entry_read_timeout_is_not_retried_and_flagged(settings_for, redis_client, clock, receiver):
    """The broker may have the order: resending an entry could double the position."""
    s = live_settings(settings_for)
    receiver.script = [Reply(hang=True)]
    r = _router(s, redis_client, clock, receiver.url)
    d = r.submit(intent())
    assert r.wait_idle(10)
    r.close()
    assert receiver.order_ids() == [d.order_id]  # exactly one delivery
    ev = _events(redis_client, s, d.order_id)
    assert [e["event"] for e in ev] == ["intent", "attempt", "outcome"]
    assert ev[1]["delivered"] == "maybe" and "ReadTimeout" in ev[1]["error"]
    assert ev[-1]["result"] == "ambiguous"
    k = Keys(s.redis.namespace)
    [pending] = journal.pending_orders(redis_client, k)
    assert pending["order_id"] == d.order_id and pending["state"] == "ambiguous"
    assert len(r.open_positions()) == 1  # stays counted until a human resolves it


def test_exit_read_timeout_is_retried(settings_for, redis_client, clock, receiver):
    """A second exit of a flat position is a no-op; a lost exit is open risk."""
    s = live_settings(settings_for)
    receiver.script = [Reply(hang=True)]
    r = _router(s, redis_client, clock, receiver.url)
    d = r.submit(intent(kind="exit"))
    assert r.wait_idle(10)
    r.close()
    assert receiver.order_ids() == [d.order_id, d.order_id]
    ev = _events(redis_client, s, d.order_id)
    assert [e.get("delivered") for e in ev if e["event"] == "attempt"] == ["maybe", "yes"]
    assert ev[-1]["result"] == "sent"


def test_connection_refused_is_retried_then_failed_for_review(settings_for, redis_client, clock):
    s = live_settings(settings_for)
    url = f"http://127.0.0.1:{free_port()}/trading/webhook/uuid-1234/secretpw-refused"
    r = _router(s, redis_client, clock, url)
    d = r.submit(intent())
    assert r.wait_idle(10)
    r.close()
    ev = _events(redis_client, s, d.order_id)
    attempts = [e for e in ev if e["event"] == "attempt"]
    assert len(attempts) == s.orders.max_attempts
    assert all(a["delivered"] == "no" for a in attempts)
    assert clock.sleeps == [0.375, 0.75, 1.5]
    assert ev[-1]["result"] == "failed"
    assert [p["order_id"] for p in journal.pending_orders(redis_client, Keys(s.redis.namespace))] == [d.order_id]
    assert "secretpw-refused" not in str(ev)
