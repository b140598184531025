"""CursorWriter against a real redis-server: sends without waiting, counts refusals, resends after failures."""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from multialpha.managed_redis import ManagedRedis
from multialpha.worker.cursor import CursorWriter
from tests.worker.conftest import wait_for

KEY = "multialpha:worker:cursor:test"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def writer_for(server: ManagedRedis, clock: Clock | None = None) -> CursorWriter:
    return CursorWriter(lambda: server.client(socket_connect_timeout=0.5, socket_timeout=2.0, retry=Retry(NoBackoff(), 0)),
                        KEY, retry_s=1.0, **({"monotonic": clock} if clock else {}))


def test_writes_land_without_waiting_for_replies(redis_server: ManagedRedis, redis_client: Any) -> None:
    w = writer_for(redis_server)
    for i in range(50):
        w.write({"ES": f"{i}-0"})
        if i % 2:
            w.write({"NQ": f"{i}-0"})
    assert w.unread > 0  # replies are read later, never waited for on the bar path
    assert w.flush(2.0) and w.unread == 0
    assert redis_client.hgetall(KEY) == {"ES": "49-0", "NQ": "49-0"}
    assert w.errors == 0
    w.write({"ES": "50-0"})
    assert w.unread == 1
    wait_for(lambda: w.retry() or w.unread == 0, what="the reply read at idle time")
    w.close()


def test_a_refused_write_is_counted_not_raised(redis_server: ManagedRedis, redis_client: Any) -> None:
    redis_client.set(KEY, "not a hash")
    w = writer_for(redis_server)
    w.write({"ES": "1-0"})  # WRONGTYPE: read back later
    w.flush(2.0)
    assert w.errors == 1
    redis_client.delete(KEY)
    w.write({"NQ": "2-0"})
    assert w.flush(2.0)
    assert redis_client.hgetall(KEY) == {"NQ": "2-0"}
    w.close()


def test_a_killed_connection_resends_the_whole_cursor(redis_server: ManagedRedis, redis_client: Any) -> None:
    clock = Clock()
    w = writer_for(redis_server, clock)
    w.write({"ES": "1-0", "NQ": "1-0"})
    assert w.flush(2.0)
    redis_client.delete(KEY)  # as if those writes were lost with the connection
    redis_client.client_kill_filter(_type="normal", skipme=True)
    w.write({"ES": "2-0"})
    w.flush(2.0)  # the dead connection shows up on this send or its reply
    clock.t += 1.5
    w.write({"ES": "3-0"})
    assert w.flush(2.0)
    assert redis_client.hgetall(KEY) == {"ES": "3-0", "NQ": "1-0"}  # NQ came back with the whole cursor
    assert w.errors >= 1
    w.close()


def test_redis_down_then_back() -> None:
    clock = Clock()
    server = ManagedRedis().start()
    port = server.port
    w = writer_for(server, clock)
    w.write({"ES": "1-0"})
    assert w.flush(2.0)
    server.stop()
    made = []
    factory = w.client_factory
    w.client_factory = lambda: made.append(1) or factory()
    for i in range(2, 6):  # never raises; keeps the newest ids
        w.write({"ES": f"{i}-0"})
    w.retry()
    assert len(made) <= 1  # at most one connect attempt per retry_s on the bar path
    assert not w.flush(0.5) and w.errors >= 1
    assert w.unsent == {"ES": "5-0"}
    server = ManagedRedis(port=port).start()
    try:
        w.retry()  # before retry_s: nothing is attempted
        assert w.unsent == {"ES": "5-0"}
        clock.t += 1.5
        w.retry()
        assert w.flush(2.0)
        assert redis.Redis(host=server.host, port=port, decode_responses=True).hgetall(KEY) == {"ES": "5-0"}
    finally:
        w.close()
        server.stop()
