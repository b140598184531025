"""`multialpha halt` / `resume` from one process stop and allow entries in others."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from multialpha.keys import Keys
from tests.conftest import SHIPPED_CONFIG

T0 = datetime(2025, 12, 10, 15, 29, tzinfo=timezone.utc)


def _cli(redis_server, tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MULTIALPHA__REDIS__PORT": str(redis_server.port),
           "MULTIALPHA__REDIS__HOST": redis_server.host, "MULTIALPHA_RUNTIME_DIR": str(tmp_path / "run")}
    return subprocess.run([sys.executable, "-m", "multialpha", "--config", str(SHIPPED_CONFIG), *args],
                          env=env, capture_output=True, text=True, timeout=60)


def _worker_submit(settings, strategy, symbol, contract, minute, out) -> None:
    """A separate worker process submitting one entry."""
    import redis

    from multialpha.orders.router import OrderRouter
    from tests.orders.support import intent

    client = redis.Redis(host=settings.redis.host, port=settings.redis.port, decode_responses=True)
    clock = lambda: T0 + timedelta(minutes=minute, seconds=30)  # noqa: E731
    r = OrderRouter(settings, client, strategy, clock=clock, environ={})
    d = r.submit(intent(strategy=strategy, symbol=symbol, contract=contract, price=100.0,
                        bar_start=T0 + timedelta(minutes=minute)))
    out.put((d.accepted, d.reason))


def _in_worker(settings, *args) -> tuple[bool, str]:
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    p = ctx.Process(target=_worker_submit, args=(settings, *args, out))
    p.start()
    res = out.get(timeout=30)
    p.join(10)
    return res


def test_halt_and_resume_across_processes(redis_server, redis_client, settings_for, tmp_path):
    s = settings_for()
    pubsub = redis_client.pubsub()
    pubsub.subscribe(Keys(s.redis.namespace).control())
    pubsub.get_message(timeout=1)  # subscribe confirmation

    assert _in_worker(s, "breakout", "ES", "ESZ5", 0) == (True, "paper")
    res = _cli(redis_server, tmp_path, "halt", "--reason", "broker outage")
    assert res.returncode == 0, res.stderr
    assert "HALTED" in res.stdout and "broker outage" in res.stdout
    msg = pubsub.get_message(timeout=5)
    assert msg and json.loads(msg["data"])["command"] == "halt"

    accepted, reason = _in_worker(s, "ibs_a", "GC", "GCG6", 1)
    assert not accepted and reason.startswith("halted: broker outage")

    res = _cli(redis_server, tmp_path, "resume")
    assert res.returncode == 0 and "resumed" in res.stdout
    assert json.loads(pubsub.get_message(timeout=5)["data"])["command"] == "resume"
    assert _in_worker(s, "ibs_a", "GC", "GCG6", 2) == (True, "paper")
    events = [f["type"] for _, f in redis_client.xrange(Keys(s.redis.namespace).events())]
    assert events == ["halt", "resume"]
    pubsub.close()


def test_halt_cli_reports_unreachable_redis(tmp_path):
    env = {**os.environ, "MULTIALPHA__REDIS__PORT": "1", "MULTIALPHA__REDIS__PASSWORD": "hunter2-redis-pw"}
    res = subprocess.run([sys.executable, "-m", "multialpha", "--config", str(SHIPPED_CONFIG), "halt"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "cannot reach Redis at 127.0.0.1:1" in res.stderr
    assert "hunter2-redis-pw" not in res.stderr + res.stdout
