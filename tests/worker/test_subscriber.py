"""The pumped subscriber (real redis-server): no thread of its own, bars wait in the socket until pumped."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import redis

from multialpha.keys import Keys
from multialpha.worker.feeds import FeedBus, Item
from multialpha.worker.resample import OHLCV
from multialpha.worker.subscriber import BarSubscriber
from tests.worker.conftest import make_bar, publish, publish_closed

UTC = timezone.utc
T0 = datetime(2025, 12, 3, 15, 0, tzinfo=UTC)


class Sink:
    def __init__(self) -> None:
        self.bars: list[tuple[str, float, str]] = []  # (symbol, close, thread that handled it)
        self.notices: list[datetime] = []
        self.resubscribed = 0

    def bar(self, bar, recv_ns: int) -> None:
        self.bars.append((bar.symbol, bar.close, threading.current_thread().name))

    def notice(self, minute: datetime) -> None:
        self.notices.append(minute)

    def again(self) -> None:
        self.resubscribed += 1


def subscriber(redis_server, sink: Sink, symbols=("ES", "NQ")) -> BarSubscriber:
    return BarSubscriber(lambda: redis_server.client(decode_responses=True), Keys(), list(symbols), sink.bar,
                         qcheck=0.05, on_resubscribed=sink.again, on_minute_closed=sink.notice)


def pump_until(sub: BarSubscriber, pred, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        sub.pump(0.05)


def test_bars_wait_in_the_socket_until_pumped_then_arrive_in_order(redis_server, redis_client):
    sink = Sink()
    sub = subscriber(redis_server, sink)
    assert sub.subscribe(5.0) and sub.connected
    assert not any(t.name == "bar-subscriber" for t in threading.enumerate())  # no reader thread
    for i in range(3):
        publish(redis_client, make_bar("ES", T0 + timedelta(minutes=i), 6000 + i))
        publish(redis_client, make_bar("NQ", T0 + timedelta(minutes=i), 21000 + i))
    publish_closed(redis_client, T0 + timedelta(minutes=2))
    assert sink.bars == []  # published, not yet read: nothing happens without a pump
    pump_until(sub, lambda: len(sink.notices) == 1, "the minute-close notice")
    me = threading.current_thread().name
    assert sink.bars == [(s, c + i, me) for i in range(3) for s, c in (("ES", 6000), ("NQ", 21000))]
    assert sink.notices == [T0 + timedelta(minutes=2)]
    sub.close()


def test_an_empty_pump_returns_within_its_timeout_and_stop_returns_at_once(redis_server, redis_client):
    sink = Sink()
    sub = subscriber(redis_server, sink)
    assert sub.subscribe(5.0)
    t = time.monotonic()
    sub.pump(0.2)
    assert 0.15 <= time.monotonic() - t < 2.0 and sink.bars == []
    sub.stop()
    publish(redis_client, make_bar("ES", T0, 6000))
    sub.pump(5.0)  # stopped: returns without reading
    assert sink.bars == []
    sub.close()


def test_lost_connection_never_raises_reconnects_and_reports_resubscribed(redis_server, redis_client):
    sink = Sink()
    sub = subscriber(redis_server, sink)
    assert sub.subscribe(5.0) and sub.sessions == 1
    redis_client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    pump_until(sub, lambda: sink.resubscribed == 1, "the re-subscription")
    assert sub.connected and sub.sessions == 2
    publish(redis_client, make_bar("ES", T0, 6000))
    pump_until(sub, lambda: sink.bars, "a bar after the reconnect")
    assert [b[:2] for b in sink.bars] == [("ES", 6000)]
    sub.close()


def test_redis_down_pumps_back_off_and_degrade_without_raising():
    sink = Sink()
    sub = BarSubscriber(lambda: redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2),
                        Keys(), ["ES"], sink.bar, qcheck=0.05)
    assert not sub.subscribe(0.5)
    assert not sub.connected and sink.bars == []


def test_bus_pumps_its_feeder_instead_of_waiting():
    """FeedBus: with nothing pending, a poll runs the feeder (in the polling thread) and sees what it staged."""
    calls: list[tuple[float, str]] = []
    bus: FeedBus

    def feeder(timeout: float) -> None:
        calls.append((timeout, threading.current_thread().name))
        bar = OHLCV(T0, T0 + timedelta(minutes=1), 1.0, 2.0, 0.5, 1.5, 10)
        bus.put_many([("ES", Item(bar, "live"))], T0)

    bus = FeedBus(feeder=feeder)
    bus.register("ES")
    bus.register("NQ")
    assert bus.ready("NQ", 0.3) is None  # the feeder ran, staged an ES bar: not NQ's
    assert calls == [(0.3, threading.current_thread().name)]
    item = bus.take("ES", 0.3)  # pending now: no second feeder call
    assert isinstance(item, Item) and item.bar.close == 1.5 and bus.turn == T0
    assert len(calls) == 1
    assert bus.take("NQ", 0.3) is None and len(calls) == 1  # a bar is in hand this step: no waiting
    bus.step_done()
    bus.stop()
    assert bus.take("ES", 0.3) is False and len(calls) == 1
