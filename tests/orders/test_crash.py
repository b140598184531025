"""kill -9 a worker between journal-intent and send: at restart the intent is
reported for review and never re-sent, not even when the bar is replayed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from multialpha import cme_time
from multialpha.keys import Keys
from multialpha.orders import journal
from multialpha.orders.router import OrderRouter
from tests.conftest import SHIPPED_CONFIG
from tests.orders.support import WEBHOOK_PASSWORD, WEBHOOK_UUID, intent, webhook_env

CHILD = r"""
import json, sys
from datetime import datetime, timezone
from multialpha import config, logs
from multialpha.orders.router import OrderRouter
from multialpha.orders.intent import OrderIntent
from multialpha.portfolio.control import connect
env = json.loads(sys.argv[1])
logs.setup("worker.breakout", json_lines=True, level="DEBUG")
s = config.load(sys.argv[2], environ=env)
r = OrderRouter(s, connect(s), "breakout", environ=env)
d = r.submit(OrderIntent("breakout", "ES", "long", "entry", 1, 6000.25,
                         datetime(2025, 12, 10, 15, 29, tzinfo=timezone.utc), "ESZ5"))
print(json.dumps({"accepted": d.accepted, "order_id": d.order_id}), flush=True)
r.wait_idle(600)   # the sender is stuck waiting for a rate-limit slot: we get killed here
"""


def _env(redis_server, tmp_path, url: str) -> dict[str, str]:
    return {
        "MULTIALPHA__REDIS__PORT": str(redis_server.port),
        "MULTIALPHA__REDIS__HOST": redis_server.host,
        "MULTIALPHA_RUNTIME_DIR": str(tmp_path / "run"),
        "MULTIALPHA_CACHE_DIR": str(tmp_path / "cache"),
        "MULTIALPHA__ORDERS__MODE": "live",
        **webhook_env(url),
        # The child runs on the wall clock and its signal bar is from 2025: no expiry here.
        "MULTIALPHA__ORDERS__MAX_AGE_S": "1e9",
    }


def test_kill9_between_intent_and_send(redis_server, redis_client, settings_for, tmp_path, receiver, clock):
    env = _env(redis_server, tmp_path, receiver.url)
    s = settings_for(MULTIALPHA__ORDERS__MODE="live", **webhook_env(receiver.url))
    k = Keys(s.redis.namespace)
    # Another worker just used the whole minute of TradersPost's rate limit, so
    # the child journals its intent and then waits for a slot before POSTing.
    now_ms = cme_time.to_ns(cme_time.utcnow()) // 1_000_000
    redis_client.zadd(k.rate_limit("minute"), {f"other-{i}": now_ms for i in range(s.orders.rate_per_minute)})
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log_file:
        child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(env), str(SHIPPED_CONFIG)],
                                 stdout=subprocess.PIPE, stderr=log_file, text=True)
        try:
            line = child.stdout.readline()
            sent = json.loads(line)
            assert sent["accepted"]
            deadline = time.monotonic() + 10
            while redis_client.hget(k.order_state(sent["order_id"]), "state") != "claimed":
                assert time.monotonic() < deadline, "intent never journaled"
                time.sleep(0.01)
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
        finally:
            if child.poll() is None:
                child.kill()
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    oid = sent["order_id"]
    assert [e["event"] for e in journal.read(redis_client, k, oid)] == ["intent"]
    assert receiver.requests == []

    # The restarted worker asks what is unresolved before doing anything else.
    [review] = journal.pending_review(redis_client, k, "breakout", now=clock())
    assert review["order_id"] == oid and review["state"] == "unresolved"
    assert journal.read(redis_client, k, oid)[-1]["result"] == "unresolved"
    # Still listed for status until a human acknowledges it.
    assert [p["order_id"] for p in journal.pending_orders(redis_client, k)] == [oid]
    r = OrderRouter(s, redis_client, "breakout", clock=clock, environ=env, sleep=clock.sleep)
    assert [o["order_id"] for o in r.needs_review] == [oid]  # the router reports it by itself too
    assert len(r.open_positions()) == 1  # the slot stays counted: the order may exist
    replay = r.submit(intent())  # the hub replays the same bar
    assert not replay.accepted and replay.order_id == oid and "duplicate" in replay.reason
    assert r.wait_idle(5)
    r.close()
    assert receiver.requests == []
    assert journal.acknowledge(redis_client, k, oid, "checked TradersPost: not received", now=clock())
    assert journal.pending_orders(redis_client, k) == []
    text = log_path.read_text()
    assert oid in text  # the child did log the order...
    assert WEBHOOK_PASSWORD not in text and WEBHOOK_UUID not in text  # ...but never the URL


def test_router_start_marks_leftover_intents_unresolved(settings_for, redis_client, clock):
    """Same as after kill -9, without a child: the intent exists, the outcome does not."""
    from multialpha.portfolio.gate import Gate

    s = settings_for()
    k = Keys(s.redis.namespace)
    i = intent()
    Gate(s, redis_client).submit(now=clock(), order_id=i.order_id, kind="entry", strategy="breakout", symbol="ES",
                                 direction=1, quantity=1, price=6000.25, contract="ESZ5", entry_time=i.bar_start,
                                 journal={"order_id": i.order_id, "strategy": "breakout"})
    other = OrderRouter(s, redis_client, "ibs_a", clock=clock, environ={})
    assert other.needs_review == []  # another strategy's orders are not its business
    r = OrderRouter(s, redis_client, "breakout", clock=clock, environ={})
    assert [(o["order_id"], o["state"]) for o in r.needs_review] == [(i.order_id, "unresolved")]
    assert [e["event"] for e in journal.read(redis_client, k, i.order_id)] == ["intent", "outcome"]
