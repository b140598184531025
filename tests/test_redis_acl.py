"""Least-privilege Redis users (multialpha/redis_acl.py) on a real redis-server that loads the ACL file
`multialpha redis acl --write` produced: each role does its normal work with its own user, and gets
NOPERM outside it."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis
from click.testing import CliRunner

from multialpha import redis_acl
from multialpha.bar import Bar
from multialpha.cli import main
from multialpha.heartbeat import Heartbeat
from multialpha.hub.publisher import Publisher
from multialpha.keys import Keys
from multialpha.managed_redis import ManagedRedis
from multialpha.orders import journal
from multialpha.orders.router import OrderRouter
from multialpha.redis_conn import connect
from multialpha.worker.turns import Turns
from tests.conftest import SHIPPED_CONFIG
from tests.orders import support
from tests.orders.support import intent

ROLES = ("hub", "worker.breakout", "worker.ibs_a", "worker.ibs_b", "status", "supervisor")
ADMIN = "pw-admin-9876543210"
PASSWORDS = {redis_acl.password_env(r): f"pw-{r}-0123456789" for r in ROLES}


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedRedis]:
    path = tmp_path_factory.mktemp("acl") / "users.acl"
    result = CliRunner().invoke(main, ["redis", "acl", "--config", str(SHIPPED_CONFIG), "--write", str(path)],
                                env={**PASSWORDS, "REDIS_PASSWORD": ADMIN})
    assert result.exit_code == 0, result.output
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    assert all(p not in text for p in PASSWORDS.values())  # only their SHA-256
    # requirepass (argv) is ignored with an aclfile: the file's default user has ADMIN's hash.
    with ManagedRedis(password=ADMIN, extra_args=("--aclfile", str(path))) as server:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=server.port).ping()  # nobody anonymous
        yield server


@pytest.fixture
def as_role(acl_redis: ManagedRedis, settings_for: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for k, v in PASSWORDS.items():
        monkeypatch.setenv(k, v)
    settings = settings_for(MULTIALPHA__REDIS__PORT=str(acl_redis.port), MULTIALPHA__REDIS__ACL="true",
                            REDIS_PASSWORD=ADMIN)
    admin = acl_redis.client(decode_responses=True)
    admin.flushall()
    clients: list[redis.Redis] = []

    def build(role: str) -> tuple[Any, redis.Redis]:
        c = connect(settings, role=role, decode_responses=True, retries=0)
        clients.append(c)
        return settings, c

    yield build
    for c in clients:
        c.close()
    admin.close()


@pytest.fixture
def clock() -> support.Clock:
    return support.Clock(datetime(2025, 12, 10, 15, 30, tzinfo=timezone.utc))


def _noperm(call: Any) -> str:
    with pytest.raises(redis.exceptions.NoPermissionError) as e:
        call()
    return str(e.value)


def test_a_worker_cannot_publish_market_data_or_touch_another_strategys_keys(as_role: Any) -> None:
    settings, w = as_role("worker.breakout")
    k = Keys(settings.redis.namespace)
    assert w.client_info()["user"] == "multialpha.worker.breakout"
    _noperm(lambda: w.publish(k.bars("ES"), '{"symbol": "ES"}'))
    _noperm(lambda: w.xadd(k.bar_log("ES"), {"close": "1"}, id="1-0"))  # a fake bar in the log either
    _noperm(lambda: w.hset(k.worker_cursor("ibs_a"), "ES", "1-0"))
    _noperm(lambda: w.hset(k.heartbeat("worker.ibs_a"), "state", "live"))
    _noperm(lambda: w.flushall())
    _noperm(lambda: w.config_get("requirepass"))
    # ... while its own keys are its own; control is the one channel it may publish on.
    assert w.hset(k.worker_cursor("breakout"), "ES", "1-0") == 1
    assert w.publish(k.control(), '{"command": "noop"}') == 0
    status = as_role("status")[1]
    assert status.hget(k.worker_cursor("breakout"), "ES") == "1-0"  # status reads everything ...
    _noperm(lambda: status.hset(k.worker_cursor("breakout"), "ES", "2-0"))  # ... and writes nothing
    _noperm(lambda: status.publish(k.control(), "{}"))
    hub = as_role("hub")[1]
    _noperm(lambda: hub.hset(k.portfolio("halt"), "x", "1"))  # the hub publishes bars, never trades


def test_each_role_runs_its_normal_path_with_its_own_user(as_role: Any, clock: Any) -> None:
    settings, hub = as_role("hub")
    _, w = as_role("worker.breakout")
    _, sup = as_role("supervisor")
    k = Keys(settings.redis.namespace)
    sub = w.pubsub(ignore_subscribe_messages=True)
    sub.subscribe(k.bars("ES"), k.minute_closed(), k.control())
    assert sub.get_message(timeout=1) is None  # a confirmation (swallowed): subscribing is allowed
    # Hub: bars through the Lua publish script into the log and onto the channel; its heartbeat.
    pub = Publisher(hub, k)
    start = datetime(2025, 12, 10, 15, 29, tzinfo=timezone.utc)
    pub.add(Bar("ES", start, 6000.0, 6001.0, 5999.5, 6000.25, 10, "ESZ5", 3))
    pub.add_minute_closed(1)
    assert pub.flush() and pub.published == 1 and pub.errors == 0
    Heartbeat(hub, k, "hub").beat("connected")
    got = [sub.get_message(timeout=1) for _ in range(5)]  # 3 subscribe confirmations read as None
    assert [m["channel"] for m in got if m] == [k.bars("ES"), k.minute_closed()]
    # Worker: catch-up read of the bar log, the gate (claim + journal), paper outcome, turns, heartbeat.
    assert [i for i, _ in w.xrange(k.bar_log("ES"))] == [f"{int(start.timestamp() * 1000)}-0"]
    r = OrderRouter(settings, w, "breakout", clock=clock, environ={})
    d = r.submit(intent())
    assert d.accepted and d.reason == "paper"
    assert [e["event"] for e in journal.read(w, k, d.order_id)] == ["intent", "outcome"]
    assert r.mark("ES", 6001.0, clock()) is not None
    r.close()
    turns = Turns(w, k, "breakout", ["ibs_a", "breakout"], 1.0)
    Heartbeat(as_role("worker.ibs_a")[1], k, "worker.ibs_a").beat("live")
    as_role("worker.ibs_a")[1].hset(k.worker_turns(), "ibs_a", str(int(start.timestamp() * 1000)))
    assert turns.wait(start) and turns.errors == 0  # reads the other strategy's turn and heartbeat
    turns.finished(start)
    Heartbeat(w, k, "worker.breakout").beat("live")
    assert w.hget(k.worker_turns(), "breakout") == str(int(start.timestamp() * 1000))
    # Supervisor: halt/resume (portfolio control + control channel), heartbeats, events.
    from multialpha.portfolio import control

    control.halt(settings, sup, "acl test")
    assert sub.get_message(timeout=1)["channel"] == k.control()
    assert control.resume(settings, sup)
    Heartbeat(sup, k, "supervisor").beat("running")
    assert {h for h in sup.scan_iter(match=k.heartbeat_pattern())} == {
        k.heartbeat("hub"), k.heartbeat("worker.breakout"), k.heartbeat("worker.ibs_a"), k.heartbeat("supervisor")}
    # Status: the whole status document with the read-only user.
    from multialpha.status.collect import collect

    _, status = as_role("status")
    doc = collect(settings, status)
    assert {p["name"] for p in doc["processes"]} >= {"hub", "worker.breakout"}
    sub.close()


def test_acl_file_needs_every_role_password(tmp_path: Path) -> None:
    env = {**PASSWORDS, redis_acl.password_env("status"): ""}
    result = CliRunner().invoke(main, ["redis", "acl", "--config", str(SHIPPED_CONFIG)], env=env)
    assert result.exit_code == 2 and "MULTIALPHA_REDIS_PASSWORD_STATUS is not set" in result.output
    result = CliRunner().invoke(main, ["redis", "acl", "--config", str(SHIPPED_CONFIG)],
                                env={**PASSWORDS, "REDIS_PASSWORD": None})
    assert result.exit_code == 0
    assert result.output.startswith("user default resetpass off\n")  # no REDIS_PASSWORD: nobody anonymous
    assert [line.split()[1] for line in result.output.splitlines()[1:]] == [f"multialpha.{r}" for r in
                                                                        ("hub", "worker.ibs_a", "worker.ibs_b",
                                                                         "worker.breakout", "status", "supervisor")]


def test_a_child_of_up_gets_only_its_own_role_password() -> None:
    env = {**PASSWORDS, "PATH": "/bin"}
    worker = redis_acl.own_password_only("worker.ibs_a", env)
    own = "MULTIALPHA_REDIS_PASSWORD_WORKER_IBS_A"
    assert worker == {"PATH": "/bin", own: PASSWORDS[own]}
    assert redis_acl.own_password_only("sandbox", env) == {"PATH": "/bin"}


def test_a_process_without_its_role_password_is_told_so_in_one_line(acl_redis: ManagedRedis, tmp_path: Path) -> None:
    env = {**{k: v for k, v in PASSWORDS.items() if "HUB" not in k}, "MULTIALPHA__REDIS__ACL": "true",
           "MULTIALPHA__REDIS__PORT": str(acl_redis.port), "MULTIALPHA_RUNTIME_DIR": str(tmp_path)}
    hub = CliRunner().invoke(main, ["hub", "--config", str(SHIPPED_CONFIG)], env=env)
    assert hub.exit_code == 2 and "MULTIALPHA_REDIS_PASSWORD_HUB is not set" in hub.output
    env[redis_acl.password_env("status")] = ""
    status = CliRunner().invoke(main, ["status", "--once", "--config", str(SHIPPED_CONFIG)], env=env)
    assert status.exit_code == 1 and "MULTIALPHA_REDIS_PASSWORD_STATUS is not set" in status.output
    assert "Traceback" not in status.output


def test_a_role_password_is_redacted_from_logs_once_read() -> None:
    """Every client of a role (redis_conn.connect, the supervisor's and CLI's own clients) gets its
    password from redis_acl.password: from then on no log line can carry it."""
    from multialpha import logs

    secret = "pw-role-redaction-7f3a"
    assert logs.redact(f"AUTH {secret}") == f"AUTH {secret}"  # unknown before
    assert redis_acl.password("worker.ibs_a", {redis_acl.password_env("worker.ibs_a"): secret}) == secret
    assert logs.redact(f"AUTH {secret}") == "AUTH ***"
