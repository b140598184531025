"""The shared TradersPost rate limiter (60/min, 500/h) on a controlled clock."""

from __future__ import annotations

from multialpha.keys import Keys
from multialpha.orders.ratelimit import RateLimiter
from multialpha.orders.router import OrderRouter
from tests.orders.support import intent, live_settings, webhook_env


def test_per_minute_limit_is_shared_between_limiters(redis_client, clock):
    k = Keys("t")
    a = RateLimiter(redis_client, k, 60, 500, clock=clock)
    b = RateLimiter(redis_client, k, 60, 500, clock=clock)  # another worker
    for i in range(60):
        assert (a if i % 2 else b).try_acquire() == 0.0
        clock.advance(0.5)
    # 60 taken within 30 s: the next slot opens when the first one is 60 s old.
    assert a.try_acquire() == 30.001
    assert b.try_acquire() > 0
    clock.advance(30.001)
    assert b.try_acquire() == 0.0


def test_per_hour_limit(redis_client, clock):
    lim = RateLimiter(redis_client, Keys("t"), 60, 500, clock=clock)
    for _ in range(500):
        assert lim.try_acquire() == 0.0
        clock.advance(2.0)  # 30/min: never the minute limit
    wait = lim.try_acquire()
    assert 2599 < wait <= 2600.001  # first of the 500 turns 1 h old
    assert lim.acquire(clock.sleep) and clock.sleeps == [wait]
    assert not lim.acquire(clock.sleep, should_stop=lambda: True)


def test_router_waits_for_a_slot_before_posting(settings_for, redis_client, clock, receiver):
    s = live_settings(settings_for, MULTIALPHA__ORDERS__RATE_PER_MINUTE="2")
    other = RateLimiter(redis_client, Keys(s.redis.namespace), 2, 500, clock=clock)
    assert other.try_acquire() == 0.0 and other.try_acquire() == 0.0  # another worker used the minute
    r = OrderRouter(s, redis_client, "breakout", clock=clock, environ=webhook_env(receiver.url),
                    sleep=clock.sleep)
    r.submit(intent())
    assert r.wait_idle(5)
    r.close()
    assert clock.sleeps == [60.001] and len(receiver.requests) == 1
