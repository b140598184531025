"""Retry policy against a real local receiver: 5xx (entry vs exit), 429 + Retry-After, the 2xx
body's `success`, read timeouts, 3xx/4xx, refused connections. Deadlines and the rate-limit wait:
tests/orders/test_sender_lifecycle.py.

Most tests call ``deliver`` directly (the policy under test); a few go through ``OrderRouter`` to
check that the attempts are journaled and what an ambiguous entry does to its slot."""

from __future__ import annotations

import email.utils
import json
import threading
from datetime import timedelta
from http.server import ThreadingHTTPServer

import pytest
import requests

from multialpha.config import OrdersSettings
from multialpha.keys import Keys
from multialpha.managed_redis import free_port
from multialpha.orders import journal
from multialpha.orders.router import OrderRouter
from multialpha.orders.sender import Result, backoff, deliver, retry_after
from tests.orders.support import WEBHOOK_PASSWORD, WEBHOOK_UUID, Reply, intent, live_settings

# Fast, bounded retries (as live_settings): 4 tries, 0.5 s initial backoff, 30 s cap.
POLICY = OrdersSettings(mode="live", timeout_s=0.3, max_attempts=4, backoff_initial_s=0.5, backoff_max_s=30.0)
ORDER_ID = "o-0123456789abcdef"
BODY = json.dumps({"ticker": "ESZ2025", "action": "buy", "sentiment": "bullish", "quantity": 1,
                   "extras": {"orderId": ORDER_ID}}).encode()
OK = '{"success": true, "id": "a", "logId": "b", "payload": {}}'


def send(url, clock, *, kind="entry", sleep=None, **kw) -> Result:
    """One ``deliver`` of BODY on a fresh session, rand fixed at 0.5 (backoff 0.375, 0.75, 1.5...)."""
    seen = []
    with requests.Session() as session:
        res = deliver(session, url, BODY, kw.pop("policy", POLICY), idempotent=kind == "exit", clock=clock,
                      sleep=sleep or clock.sleep, rand=lambda: 0.5, on_attempt=seen.append, **kw)
    assert seen == res.attempts  # every attempt is reported, in order, as it happens
    return res


def closed_port_url() -> str:
    """A webhook URL on a loopback port nobody listens on: connection refused, nothing sent."""
    return f"http://127.0.0.1:{free_port()}/trading/webhook/{WEBHOOK_UUID}/{WEBHOOK_PASSWORD}"


def _router(s, redis_client, clock, url, rand=lambda: 0.5):
    return OrderRouter(s, redis_client, "breakout", clock=clock, environ={s.webhook_env("breakout"): url},
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


# -- 5xx: an entry is never resent, an exit is retried ------------------------------------------

@pytest.mark.parametrize("status", [502, 504, 500, 503])
def test_entry_5xx_is_ambiguous_and_never_resent(clock, receiver, status):
    """A 502/504 from a proxy can come after TradersPost accepted the entry: resending could double it."""
    receiver.script = [Reply(status, body="<html>Bad Gateway</html>")]
    res = send(receiver.url, clock)
    assert receiver.order_ids() == [ORDER_ID]  # exactly one POST
    assert res.result == "ambiguous" and clock.sleeps == []
    [a] = res.attempts
    assert (a.status, a.delivered, a.retry_in_s) == (status, "maybe", None)


def test_entry_502_is_journaled_ambiguous_and_keeps_its_slot(settings_for, redis_client, clock, receiver):
    s = live_settings(settings_for)
    receiver.script = [Reply(502, body="<html>Bad Gateway</html>")]
    r = _router(s, redis_client, clock, receiver.url)
    d = r.submit(intent())
    assert r.wait_idle(5)
    r.close()
    assert receiver.order_ids() == [d.order_id] and clock.sleeps == []
    ev = _events(redis_client, s, d.order_id)
    assert [e["event"] for e in ev] == ["intent", "attempt", "outcome"]
    assert (ev[1]["status"], ev[1]["delivered"], ev[1]["retry_in_s"]) == ("502", "maybe", "")
    assert ev[-1]["result"] == "ambiguous"
    [pending] = journal.pending_orders(redis_client, Keys(s.redis.namespace))
    assert pending["order_id"] == d.order_id and pending["state"] == "ambiguous"
    assert len(r.open_positions()) == 1  # may be open at the broker: counted until a human resolves it


def test_exit_5xx_is_retried_with_backoff_until_accepted(clock, receiver):
    """A second exit of a flat position is a no-op; a lost exit is open risk: exits retry 5xx."""
    replies = [Reply(500, body="<html>oops</html>"), Reply(503)]
    receiver.script = list(replies)
    res = send(receiver.url, clock, kind="exit")
    assert receiver.order_ids() == [ORDER_ID] * 3
    assert clock.sleeps == [0.375, 0.75]  # 0.5 * 2^(n-1), equal jitter at rand=0.5
    assert [a.status for a in res.attempts] == [500, 503, 200]
    # The 5xx may have landed ("maybe"); resent only because a duplicate exit is harmless.
    assert [a.delivered for a in res.attempts] == ["maybe", "maybe", "yes"]
    assert [a.retry_in_s for a in res.attempts] == [0.375, 0.75, None]
    assert res.result == "sent"
    assert _accepted_deliveries(receiver, ORDER_ID, replies) == 1


def test_exit_500_then_success_is_sent_on_the_second_post(clock, receiver):
    receiver.script = [Reply(500), Reply(200, body=OK)]
    res = send(receiver.url, clock, kind="exit")
    assert receiver.order_ids() == [ORDER_ID] * 2
    assert [a.status for a in res.attempts] == [500, 200] and clock.sleeps == [0.375]
    assert res.result == "sent"


def test_exit_5xx_until_out_of_attempts_is_ambiguous_not_failed(clock, receiver):
    """Every try may have landed: 'failed' would claim nothing did."""
    receiver.script = [Reply(502)] * POLICY.max_attempts
    res = send(receiver.url, clock, kind="exit")
    assert len(receiver.requests) == POLICY.max_attempts
    assert res.result == "ambiguous"


# -- 2xx: the body's `success` decides ----------------------------------------------------------

@pytest.mark.parametrize("kind", ["entry", "exit"])
def test_200_with_success_false_is_rejected_without_retry(clock, receiver, kind):
    """The spec's 200 body carries `success`: false means TradersPost did not place the order."""
    receiver.script = [Reply(200, body='{"success": false, "id": "x", "logId": "y", "payload": {}, '
                                       '"messageCode": "insufficient-buying-power"}')]
    res = send(receiver.url, clock, kind=kind)
    assert receiver.order_ids() == [ORDER_ID] and clock.sleeps == []
    assert res.result == "rejected"
    [a] = res.attempts
    assert (a.status, a.delivered, a.retry_in_s) == (200, "no", None)
    assert "insufficient-buying-power" in a.response


def test_entry_200_success_false_frees_its_slot(settings_for, redis_client, clock, receiver):
    """Nothing was placed: the portfolio slot is free again."""
    s = live_settings(settings_for)
    receiver.script = [Reply(200, body='{"success": false, "id": "x", "logId": "y", "payload": {}}')]
    r = _router(s, redis_client, clock, receiver.url)
    d = r.submit(intent())
    assert r.wait_idle(5)
    r.close()
    assert receiver.order_ids() == [d.order_id]
    assert _events(redis_client, s, d.order_id)[-1]["result"] == "rejected"
    assert r.open_positions() == []


@pytest.mark.parametrize("kind", ["entry", "exit"])
@pytest.mark.parametrize("body", [
    "<html><body>OK</body></html>",                        # not JSON (a proxy's page)
    '{"id": "x", "logId": "y", "payload": {}}',            # JSON without success
    '{"success": "true", "id": "x"}',                      # success, but not a boolean
    '{"success": 1, "id": "x"}',                           # nor is 1
    '[{"success": true}]',                                 # not an object
    '{"success": tr',                                      # truncated
])
def test_2xx_without_a_boolean_success_is_ambiguous(clock, receiver, kind, body):
    """We cannot tell whether it was placed: never resent, not even an exit; a human checks."""
    receiver.script = [Reply(200, body=body)]
    res = send(receiver.url, clock, kind=kind)
    assert receiver.order_ids() == [ORDER_ID] and clock.sleeps == []
    assert res.result == "ambiguous"
    [a] = res.attempts
    assert (a.status, a.delivered, a.retry_in_s) == (200, "maybe", None)


def test_200_with_success_true_is_sent(clock, receiver):
    receiver.script = [Reply(201, body=OK)]
    res = send(receiver.url, clock)
    assert receiver.order_ids() == [ORDER_ID]
    assert res.result == "sent" and [a.delivered for a in res.attempts] == ["yes"]


# -- 429, other 4xx, 3xx --------------------------------------------------------------------------

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
    assert ev[1]["retry_in_s"] == "7.000" and ev[1]["delivered"] == "no"
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


def test_3xx_is_rejected_and_not_followed(clock, receiver):
    """The URL carries a password: a redirect is not followed anywhere."""
    receiver.script = [Reply(302, headers={"Location": receiver.url + "/elsewhere"})]
    res = send(receiver.url, clock, kind="exit")
    assert len(receiver.requests) == 1 and res.result == "rejected"
    assert [a.delivered for a in res.attempts] == ["no"]


# -- no answer: read timeout (may have landed) vs refused (nothing sent) -------------------------

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


def test_exit_read_timeout_is_retried(clock, receiver):
    """A second exit of a flat position is a no-op; a lost exit is open risk."""
    receiver.script = [Reply(hang=True)]
    res = send(receiver.url, clock, kind="exit")
    assert receiver.order_ids() == [ORDER_ID, ORDER_ID]
    assert [a.delivered for a in res.attempts] == ["maybe", "yes"]
    assert "ReadTimeout" in res.attempts[0].error
    assert res.result == "sent"


def test_connection_refused_is_retried_then_failed(settings_for, redis_client, clock):
    s = live_settings(settings_for)
    url = f"http://127.0.0.1:{free_port()}/trading/webhook/uuid-1234/secretpw-refused"
    r = _router(s, redis_client, clock, url)
    d = r.submit(intent())
    assert r.wait_idle(10)
    r.close()
    ev = _events(redis_client, s, d.order_id)
    attempts = [e for e in ev if e["event"] == "attempt"]
    assert len(attempts) == s.orders.max_attempts
    assert all(a["delivered"] == "no" and a["status"] == "" for a in attempts)
    assert clock.sleeps == [0.375, 0.75, 1.5]
    assert ev[-1]["result"] == "failed"  # nothing can have landed
    assert "secretpw-refused" not in str(ev)


def test_entry_refused_connection_is_retried_then_sent(clock, receiver):
    """Refused: nothing left this machine, so even an entry is safe to resend."""
    url = closed_port_url()
    port = int(url.split(":")[2].split("/")[0])
    servers: list[ThreadingHTTPServer] = []

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if not servers:  # TradersPost is back: the receiver's handler now listens on that port
            srv = ThreadingHTTPServer(("127.0.0.1", port), receiver.server.RequestHandlerClass)
            srv.daemon_threads = True
            threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
            servers.append(srv)

    try:
        res = send(url, clock, sleep=sleep)
    finally:
        for srv in servers:
            srv.shutdown()
            srv.server_close()
    assert receiver.order_ids() == [ORDER_ID]  # the second attempt, the only one that arrived
    assert clock.sleeps == [0.375]
    assert [(a.status, a.delivered) for a in res.attempts] == [(None, "no"), (200, "yes")]
    assert "ConnectionError" in res.attempts[0].error
    assert res.result == "sent"
