"""An order's life in ``deliver`` against its deadline: the rate-limit wait, Retry-After and backoff
never carry a stale entry past it; exits (no deadline) go out however late.

Real local receiver, the real RateLimiter on the test redis-server, and the injected clock that
the injected sleep advances: nothing really sleeps."""

from __future__ import annotations

from datetime import timedelta

import pytest

from multialpha.keys import Keys
from multialpha.orders.ratelimit import RateLimiter
from tests.orders.support import Reply
from tests.orders.test_sender import ORDER_ID, closed_port_url, send

NS = Keys("t")


def _limiter(redis_client, clock, per_minute=2, per_hour=500):
    return RateLimiter(redis_client, NS, per_minute, per_hour, clock=clock)


def _fill_minute(redis_client, clock, per_minute=2):
    """Another worker uses the whole minute window now: the next slot opens in 60.001 s."""
    other = _limiter(redis_client, clock, per_minute)
    for _ in range(per_minute):
        assert other.try_acquire() == 0.0
    return other


def _slots_taken(redis_client) -> int:
    return redis_client.zcard(NS.rate_limit("minute"))


# -- the rate-limit wait ---------------------------------------------------------------------------

def test_entry_behind_a_full_rate_window_past_its_deadline_expires_unsent(redis_client, clock, receiver):
    """The slot opens after the deadline: no POST, and no waiting for a slot that cannot be used."""
    _fill_minute(redis_client, clock)
    deadline = clock() + timedelta(seconds=30)
    res = send(receiver.url, clock, limiter=_limiter(redis_client, clock), deadline=deadline)
    assert res.result == "expired" and res.attempts == []
    assert receiver.requests == []
    assert clock.sleeps == [] and clock() <= deadline
    assert "deadline" in res.detail and "rate-limit" in res.detail


def test_entry_whose_rate_wait_keeps_growing_expires_without_sleeping_past_the_deadline(
        redis_client, clock, receiver):
    """Other workers take the slots as they free: we wait while a slot could come in time, then give up."""
    other = _fill_minute(redis_client, clock)
    t0 = clock()
    deadline = t0 + timedelta(seconds=90)

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        taken = 0
        while other.try_acquire() == 0.0:  # the competitors win the slots that just freed
            taken += 1
        assert taken == 2

    res = send(receiver.url, clock, sleep=sleep, limiter=_limiter(redis_client, clock), deadline=deadline)
    assert res.result == "expired" and res.attempts == []
    assert receiver.requests == []
    # Waited 60.001 s for a slot that was due in time; the next one (t0 + 120.002 s) is not.
    assert clock.sleeps == [60.001]
    assert clock() - t0 == timedelta(seconds=60.001) and clock() <= deadline


def test_entry_whose_rate_wait_overruns_its_deadline_is_not_sent(redis_client, clock, receiver):
    """The slot was due before the deadline but the wait overran it (a slow machine): checked after the wait."""
    _fill_minute(redis_client, clock)
    deadline = clock() + timedelta(seconds=62)

    def late_sleep(seconds: float) -> None:
        clock.sleep(seconds + 5.0)  # woke 5 s late

    lim = _limiter(redis_client, clock)
    res = send(receiver.url, clock, sleep=late_sleep, limiter=lim, deadline=deadline)
    assert clock.sleeps == [65.001] and clock() > deadline
    assert res.result == "expired" and res.attempts == []
    assert receiver.requests == []


def test_entry_that_gets_a_slot_before_its_deadline_is_sent(redis_client, clock, receiver):
    """Control for the tests above: the deadline bounds the wait, it does not forbid it."""
    _fill_minute(redis_client, clock)
    deadline = clock() + timedelta(seconds=61)
    res = send(receiver.url, clock, limiter=_limiter(redis_client, clock), deadline=deadline)
    assert clock.sleeps == [60.001]
    assert res.result == "sent" and receiver.order_ids() == [ORDER_ID]


def test_entry_already_past_its_deadline_takes_no_rate_slot(redis_client, clock, receiver):
    """Nothing sent, zero attempts, and no shared rate-limit slot burnt for a dead order."""
    res = send(receiver.url, clock, limiter=_limiter(redis_client, clock),
               deadline=clock() - timedelta(seconds=1))
    assert res.result == "expired" and res.attempts == []
    assert receiver.requests == [] and clock.sleeps == []
    assert _slots_taken(redis_client) == 0


def test_entry_exactly_at_its_deadline_is_still_sent(clock, receiver):
    res = send(receiver.url, clock, deadline=clock())
    assert res.result == "sent" and receiver.order_ids() == [ORDER_ID]


def test_stop_during_the_rate_wait_is_abandoned_not_expired(redis_client, clock, receiver):
    """Shutdown keeps its meaning: 'abandoned' (nothing sent), even with a deadline ahead."""
    _fill_minute(redis_client, clock)
    stop = []

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        stop.append(True)  # close() interrupted the wait

    res = send(receiver.url, clock, sleep=sleep, limiter=_limiter(redis_client, clock),
               should_stop=lambda: bool(stop), deadline=clock() + timedelta(seconds=120))
    assert res.result == "abandoned" and res.attempts == [] and receiver.requests == []


# -- Retry-After and backoff ---------------------------------------------------------------------------

def test_entry_whose_deadline_passes_during_a_429_wait_expires(clock, receiver):
    receiver.script = [Reply(429, headers={"Retry-After": "7"})]
    res = send(receiver.url, clock, deadline=clock() + timedelta(seconds=5))
    assert receiver.order_ids() == [ORDER_ID]  # exactly one POST
    assert res.result == "expired"
    [a] = res.attempts
    assert (a.status, a.delivered, a.retry_in_s) == (429, "no", None)  # no retry announced
    assert clock.sleeps == []  # no sleeping for a retry that cannot happen
    assert "HTTP 429" in res.detail and "deadline" in res.detail


def test_entry_429_retry_within_its_deadline_is_sent(clock, receiver):
    receiver.script = [Reply(429, headers={"Retry-After": "3"})]
    res = send(receiver.url, clock, deadline=clock() + timedelta(seconds=5))
    assert receiver.order_ids() == [ORDER_ID] * 2 and clock.sleeps == [3.0]
    assert res.result == "sent"


def test_entry_backoff_past_its_deadline_expires(clock):
    """Refused (nothing sent): retried while a retry can still make the deadline."""
    res = send(closed_port_url(), clock, deadline=clock() + timedelta(seconds=0.5))
    # backoff 0.375 s fits; the next one (0.75 s, ending at 1.125 s) does not.
    assert clock.sleeps == [0.375]
    assert [a.delivered for a in res.attempts] == ["no", "no"]
    assert [a.retry_in_s for a in res.attempts] == [0.375, None]
    assert res.result == "expired"


def test_a_deadline_never_hides_a_try_that_may_have_landed(clock, receiver):
    """An idempotent order with a deadline: its first try got a 502 (may have landed), the retry
    would be too late -> ambiguous, not 'expired' (which says nothing landed)."""
    receiver.script = [Reply(502)]
    res = send(receiver.url, clock, kind="exit", deadline=clock() + timedelta(seconds=0.1))
    assert receiver.order_ids() == [ORDER_ID] and clock.sleeps == []
    assert res.result == "ambiguous"


# -- exits: no deadline ---------------------------------------------------------------------------------

def test_exit_without_deadline_is_sent_however_long_it_waited(redis_client, clock, receiver):
    """A full hour window (~1 h) then a 429 asking for another hour: the exit still goes out."""
    other = _limiter(redis_client, clock, per_minute=60, per_hour=2)
    assert other.try_acquire() == 0.0 and other.try_acquire() == 0.0
    t0 = clock()
    receiver.script = [Reply(429, headers={"Retry-After": "3600"})]
    res = send(receiver.url, clock, kind="exit", limiter=_limiter(redis_client, clock, per_minute=60, per_hour=2),
               deadline=None)
    assert res.result == "sent"
    assert receiver.order_ids() == [ORDER_ID] * 2
    assert clock.sleeps == [3600.001, 3600.0]
    assert clock() - t0 >= timedelta(hours=2)


def test_naive_deadline_is_refused_before_anything_is_sent(clock, receiver):
    with pytest.raises(TypeError):
        send(receiver.url, clock, deadline=clock().replace(tzinfo=None) + timedelta(seconds=60))
    assert receiver.requests == []
