"""Redis Sentinel: the failover pause, and what WAIT costs an order claim.

Measured in one run on loopback (multialpha/managed_sentinel.py: primary + replica + 3 sentinels,
down-after 1000 ms):

  failover   kill -9 of the primary -> the first bar the hub's Publisher gets into the new primary
             (its client built by redis_conn.connect on the sentinels), beside its floor: kill ->
             the sentinels' own +switch-master announcement (no client can follow before that).
  claim      Gate.submit (the order claim: gate script + journaled intent) with redis.wait_replicas 0
             and 1, beside their floors: a bare EVALSHA of `return 1`, and a bare SET + WAIT 1 in one
             pipeline (the replication round trip itself).

    .venv/bin/python bench/redis_failover.py [--failovers 3] [--claims 2000]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from multialpha import config, redis_conn  # noqa: E402
from multialpha.bar import Bar  # noqa: E402
from multialpha.hub.publisher import Publisher  # noqa: E402
from multialpha.keys import Keys  # noqa: E402
from multialpha.managed_sentinel import ManagedSentinelGroup  # noqa: E402
from multialpha.portfolio.gate import Gate  # noqa: E402
from multialpha.settings_redis import SentinelSettings  # noqa: E402

PASSWORD = "bench-failover-pw-0123456789"
T0 = datetime(2025, 12, 10, 15, 0, tzinfo=timezone.utc)


def settings_for(group: ManagedSentinelGroup, **redis_fields: Any) -> Any:
    s = config.load(REPO / "config.multi_alpha.yml", environ={})
    r = s.redis.model_copy(update={"sentinel": SentinelSettings(hosts=group.hosts, service=group.service),
                                   "password": PASSWORD, **redis_fields})
    # Wide limits: every claim of the run is accepted and opens a position.
    p = s.portfolio.model_copy(update={"max_positions": 10**9, "daily_stop_loss": 10**12})
    risk = s.risk.model_copy(update={"max_quantity": None, "max_notional": None, "price_band_pct": None})
    return s.model_copy(update={"redis": r, "portfolio": p, "risk": risk})


def one_failover() -> tuple[float, float]:
    """(kill -> +switch-master, kill -> first bar in the new primary), seconds."""
    with ManagedSentinelGroup(password=PASSWORD) as group:
        settings = settings_for(group)
        keys = Keys(settings.redis.namespace)
        client = redis_conn.connect(settings, timeout=0.5, connect_timeout=0.2, retries=0)
        pub = Publisher(client, keys, retry_s=0.005)
        watch = group.sentinel_client(group.sentinel_ports[0]).pubsub(ignore_subscribe_messages=True)
        watch.subscribe("+switch-master")
        minute = 0

        def bar() -> Bar:
            nonlocal minute
            minute += 1
            return Bar("ES", T0 + timedelta(minutes=minute), 6000.0, 6001.0, 5999.0, 6000.5, 10, "ESZ5", 4)

        pub.add(bar())
        assert pub.flush() and pub.published == 1
        assert group.primary.proc is not None
        t_kill = time.monotonic()
        group.primary.proc.kill()
        switched = None
        before = pub.published
        pub.add(bar())  # the hub closes minutes on: this one waits for a primary
        while True:
            now = time.monotonic()
            if switched is None and watch.get_message(timeout=0) is not None:
                switched = now - t_kill
            if pub.flush(force=True) and pub.published > before:
                published = time.monotonic() - t_kill
                break
            if now - t_kill > 60:
                raise RuntimeError("no failover within 60 s")
            time.sleep(0.002)
        while switched is None:  # the announcement may be read after the first publish
            if watch.get_message(timeout=1.0) is not None:
                switched = time.monotonic() - t_kill
        watch.close()
        client.close()
        return switched, published


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def claims(n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    with ManagedSentinelGroup(password=PASSWORD) as group:
        for want in (0, 1):
            settings = settings_for(group, wait_replicas=want, wait_timeout_ms=1000)
            client = redis_conn.connect(settings, timeout=2.0)
            client.flushall()
            gate = Gate(settings, client)
            trivial = client.register_script("return 1")
            lat: list[float] = []
            floor: list[float] = []
            for i in range(n):
                t = time.perf_counter()
                if want:
                    pipe = client.pipeline(transaction=False)
                    pipe.set("bench:floor", i)
                    pipe.execute_command("WAIT", 1, 1000)
                    assert pipe.execute()[1] == 1
                else:
                    trivial()
                floor.append(time.perf_counter() - t)
                # Entries and exits alternate on one symbol (an exit delivered with its intent, as in
                # paper): every claim passes the gate's full path and writes its journaled intent.
                kind = "entry" if i % 2 == 0 else "exit"
                t = time.perf_counter()
                res = gate.submit(now=T0, order_id=f"bench-{want}-{i}", kind=kind, strategy="breakout", symbol="ES",
                                  direction=1, quantity=1, price=6000.25, contract="ESZ5", entry_time=T0,
                                  journal={"order_id": f"bench-{want}-{i}", "payload": "x" * 300}, day_at=T0,
                                  destination="env:bench", deliver_now=kind == "exit")
                lat.append(time.perf_counter() - t)
                assert res.status == "accepted", res
                assert not res.unreplicated
            out[f"claim wait={want}"] = lat
            out[f"floor wait={want}"] = floor
            client.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--failovers", type=int, default=3)
    ap.add_argument("--claims", type=int, default=2000)
    args = ap.parse_args()
    logging.getLogger("multialpha").setLevel(logging.CRITICAL)  # the publisher's expected "unreachable" lines
    switch: list[float] = []
    first: list[float] = []
    for _ in range(args.failovers):
        s, p = one_failover()
        switch.append(s)
        first.append(p)
    print(f"failover: kill -> first bar published  n={len(first)}  median={statistics.median(first):.3f} s  "
          f"max={max(first):.3f} s")
    print(f"failover floor: kill -> +switch-master  n={len(switch)}  median={statistics.median(switch):.3f} s  "
          f"max={max(switch):.3f} s  (sentinel down-after 1.000 s)")
    got = claims(args.claims)
    for name, label in (("claim wait=0", "claim without WAIT"), ("floor wait=0", "floor: bare EVALSHA"),
                        ("claim wait=1", "claim with WAIT 1"), ("floor wait=1", "floor: SET + WAIT 1")):
        xs = [x * 1000 for x in got[name]]
        print(f"{label + ':':<26} n={len(xs)}  p50={pct(xs, 0.5):7.3f} ms  p99={pct(xs, 0.99):7.3f} ms")


if __name__ == "__main__":
    main()
