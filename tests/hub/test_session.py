from __future__ import annotations

import random
import threading

from multialpha.hub.session import Connected, Disconnected, Inbox, Session, Target, backoff_delay


def test_backoff_grows_with_jitter_and_is_capped():
    rng = random.Random(1)
    delays = [backoff_delay(n, 0.5, 60.0, rng) for n in range(12)]
    for n, d in enumerate(delays):
        base = min(60.0, 0.5 * 2**n)
        assert base / 2 <= d <= base
    assert max(delays) <= 60.0 and delays[-1] >= 30.0
    assert len({round(backoff_delay(3, 0.5, 60.0, rng), 6) for _ in range(20)}) > 1  # jitter


def test_inbox_keeps_order_and_never_loses_a_wakeup():
    box = Inbox()
    n = 20_000

    def produce() -> None:
        for i in range(n):
            box.put(i)

    t = threading.Thread(target=produce)
    t.start()
    got: list[int] = []
    while len(got) < n:
        got += box.drain(1000, 5.0)  # a lost wake-up would stall here for 5 s per batch
    t.join()
    assert got == list(range(n))
    assert box.drain(10, 0.0) == []


def test_session_never_gives_up_on_failures_and_asks_the_hub_where_to_resume():
    """`connect` raising stands in for an unreachable gateway (the real one is
    exercised against the sandbox in test_main.py)."""
    attempts: list[int] = []

    def connect() -> Target:
        attempts.append(1)
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    box = Inbox()
    s = Session(connect, box, dataset="GLBX.MDP3", symbols=["ES.FUT"], reconnect_initial_s=0.001,
                reconnect_cap_s=0.004, rng=random.Random(0))
    s.start()
    markers = []
    while len(markers) < 5:
        for m in box.drain(10, 5.0):
            assert isinstance(m, Disconnected) and "refused" in m.reason
            markers.append(m)
            s.resume(None if len(markers) < 3 else 1_000)
    s.stop()
    assert not s.alive() and s.reconnects >= 5 and len(attempts) >= 5
    assert [m.gen for m in markers] == sorted(m.gen for m in markers)
    assert not any(isinstance(m, Connected) for m in markers)
