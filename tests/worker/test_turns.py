"""Turn order at the gate (worker/turns.py) against a real Redis, and the FeedBus markers it rides on."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from multialpha.keys import Keys
from multialpha.worker.feeds import FeedBus, Item, Marker
from multialpha.worker.resample import OHLCV
from multialpha.worker.turns import Turns

UTC = timezone.utc
T = datetime(2025, 12, 9, 15, 30, tzinfo=UTC)
MIN = timedelta(minutes=1)
ORDER = ["a", "b", "c"]


def live(client, *names: str, state: str = "live") -> None:
    for n in names:
        client.hset(Keys().heartbeat(f"worker.{n}"), "state", state)


class FakeTime:
    """Monotonic time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept = 0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s
        self.slept += 1


def turns(client, name: str, timeout: float = 30.0, fake: FakeTime | None = None) -> Turns:
    kw = {"monotonic": fake.monotonic, "sleep": fake.sleep} if fake else {}
    return Turns(client, Keys(), name, ORDER, timeout, **kw)


def test_a_strategy_waits_for_those_before_it_in_the_minute_and_after_it_in_the_previous(redis_client):
    live(redis_client, *ORDER)
    a, b, c = (turns(redis_client, n) for n in ORDER)
    c.finished(T - MIN)
    passed = threading.Event()
    t = threading.Thread(target=lambda: (b.wait(T), passed.set()), daemon=True)
    t.start()
    assert not passed.wait(0.2)  # a has not finished T
    a.finished(T)
    assert passed.wait(10), "b's turn did not come after a finished the minute"
    assert b.timeouts == 0 and b.waits == 1
    # Same minute again: already granted, no second wait; c (last) needs a and b at T.
    assert b.wait(T)
    fake = FakeTime()
    c2 = turns(redis_client, "c", timeout=1.0, fake=fake)
    assert not c2.wait(T) and c2.timeouts == 1  # b has not recorded T
    b.finished(T)
    assert turns(redis_client, "c", timeout=1.0, fake=FakeTime()).wait(T)


def test_the_first_strategy_waits_for_the_others_previous_minute(redis_client):
    live(redis_client, *ORDER)
    fake = FakeTime()
    a = turns(redis_client, "a", timeout=0.5, fake=fake)
    b, c = turns(redis_client, "b"), turns(redis_client, "c")
    b.finished(T - 2 * MIN)
    c.finished(T - MIN)
    assert not a.wait(T)  # b is a minute behind: a must not run ahead of it
    assert a.timeouts == 1 and fake.slept > 0
    b.finished(T - MIN)
    assert turns(redis_client, "a", fake=FakeTime()).wait(T)


def test_strategies_that_are_not_trading_are_not_waited_for(redis_client):
    live(redis_client, "a")
    live(redis_client, "b", state="warming")  # c has no heartbeat at all (down)
    a = turns(redis_client, "a")
    fake = FakeTime()
    c = turns(redis_client, "c", timeout=1.0, fake=fake)
    assert not c.wait(T)  # a is live and has not finished T
    a.finished(T)
    c = turns(redis_client, "c", timeout=1.0, fake=FakeTime())
    assert c.wait(T) and c.timeouts == 0
    live(redis_client, "b", state="degraded")  # degraded still trades: waited for
    assert not turns(redis_client, "c", timeout=1.0, fake=FakeTime()).wait(T)


def test_turns_off_and_a_lone_strategy_never_wait(redis_client):
    live(redis_client, *ORDER)
    fake = FakeTime()
    assert Turns(redis_client, Keys(), "c", ORDER, 0.0, monotonic=fake.monotonic, sleep=fake.sleep).wait(T)
    assert Turns(redis_client, Keys(), "c", ["c"], 5.0, monotonic=fake.monotonic, sleep=fake.sleep).wait(T)
    assert fake.slept == 0


def test_redis_trouble_never_blocks_a_strategy():
    import redis

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    t = Turns(dead, Keys(), "b", ORDER, 30.0)
    t.finished(T)
    assert not t.wait(T) and t.errors == 2


def _item(minute: datetime) -> Item:
    return Item(OHLCV(minute, minute + MIN, 1, 1, 1, 1, 1), "live")


def test_bus_markers_are_reached_only_after_everything_before_them_was_consumed():
    reached: list[datetime] = []
    bus = FeedBus(on_marker=reached.append)
    bus.register("ES")
    bus.register("NQ")
    bus.put_many([("ES", _item(T)), ("NQ", _item(T))], turn=T)
    bus.put_marker(T)
    bus.put_many([("ES", _item(T + MIN))], turn=T + MIN)
    assert bus.take("ES", 0) is not None and bus.turn == T
    assert bus.take("NQ", 0) is not None and reached == []
    assert bus.take("ES", 0) is None and reached == []  # the step is still hot
    bus.step_done()
    got = bus.take("ES", 0)
    assert reached == [T] and isinstance(got, Item) and got.bar.start == T + MIN and bus.turn == T + MIN
    assert bus.backlog() == 0
    bus.step_done()
    bus.put_marker(T + MIN)
    assert bus.take("ES", 1.0) is None and reached == [T, T + MIN]  # reached without waiting out the timeout
    assert Marker(T) == Marker(T)
