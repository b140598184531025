"""Planning the children, and finding/refusing Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from multialpha.managed_redis import free_port
from multialpha.supervisor import redis_setup
from multialpha.supervisor.up import UpError, plan, select
from tests.conftest import SHIPPED_CONFIG


def test_select_order_and_only(settings_for) -> None:
    s = settings_for()
    assert select(s, None) == ["sandbox", "hub", "worker.ibs_a", "worker.ibs_b", "worker.breakout"]
    assert select(s, "breakout,ibs_a") == ["worker.ibs_a", "worker.breakout"]  # start order kept
    assert select(s, "hub, worker.ibs_b") == ["hub", "worker.ibs_b"]
    with pytest.raises(UpError, match="unknown component 'nope'"):
        select(s, "nope")
    keyed = settings_for(DATABENTO_API_KEY="db-" + "k" * 29)
    assert select(keyed, None)[0] == "hub"


def test_plan_puts_secrets_in_env_not_argv(settings_for) -> None:
    s = settings_for()
    env = redis_setup.RedisAddress("127.0.0.1", 7000, "s3cret-pw", managed=True).child_env()
    specs = plan(s, SHIPPED_CONFIG, select(s, None), env, python="/py")
    by = {sp.name: sp for sp in specs}
    assert by["hub"].argv == ("/py", "-m", "multialpha", "--config", str(SHIPPED_CONFIG), "hub")
    # With the sandbox: the workers start beside it (not after it) and wait for its state file themselves.
    assert by["worker.ibs_a"].argv[-5:] == ("worker", "--await-sandbox", "60", "--strategy", "ibs_a")
    assert not by["worker.ibs_a"].gated and by["hub"].gated
    alone = plan(s, SHIPPED_CONFIG, ["worker.ibs_a"], env, python="/py")[0]
    assert alone.argv[-3:] == ("worker", "--strategy", "ibs_a") and alone.gated
    assert by["worker.ibs_a"].heartbeat == "worker.ibs_a" and by["hub"].heartbeat == "hub"
    assert by["sandbox"].heartbeat is None and by["sandbox"].ready is not None
    assert "--log-json" in plan(s, SHIPPED_CONFIG, ["hub"], {}, python="/py", log_json=True)[0].argv
    for sp in specs:
        assert "s3cret-pw" not in " ".join(sp.argv)
        assert dict(sp.env)["MULTIALPHA__REDIS__PASSWORD"] == "s3cret-pw"
        assert dict(sp.env)["MULTIALPHA__REDIS__PORT"] == "7000"


def test_unmanaged_redis_adds_no_env() -> None:
    assert redis_setup.RedisAddress("10.0.0.5", 6379, "pw", managed=False).child_env() == {}


def test_an_unauthenticated_redis_is_used_only_when_told(settings_for, redis_server) -> None:
    """The test Redis answers without a password, like Debian's redis-server on 6379."""
    assert redis_setup.probe(settings_for()) == "open"
    for env, told in (({"MULTIALPHA__REDIS__ALLOW_UNAUTHENTICATED": "true"}, "allow_unauthenticated"),
                      ({"MULTIALPHA__REDIS__MANAGED": "never"}, "redis.managed: never")):
        address, managed = redis_setup.ensure(settings_for(**env))
        assert managed is None and address.port == redis_server.port and not address.managed
        assert "WITHOUT a password" in address.why and told in address.why
        assert "WITHOUT persistence" in address.why  # appendonly no


def test_auto_never_uses_an_unauthenticated_redis_it_did_not_start(settings_for, redis_server) -> None:
    s = settings_for()
    address, managed = redis_setup.ensure(s)
    try:
        assert managed is not None and address.managed and address.password
        assert address.port != redis_server.port  # that port is taken: a free one
        assert f"not using the Redis at 127.0.0.1:{redis_server.port}: it answers without a password" in address.why
        assert f"started a managed redis-server on 127.0.0.1:{address.port} (port {redis_server.port} is taken)" \
            in address.why
        # Commands find the managed one (not the open one on the configured port) through the state file...
        import os

        env = {k: v for k, v in os.environ.items() if not k.startswith("MULTIALPHA__REDIS__")}
        c = redis_setup.connect(s, environ=env)
        assert c.connection_pool.connection_kwargs["port"] == address.port
        # ...unless MULTIALPHA__REDIS__HOST/PORT name an address: the override wins over the file.
        c = redis_setup.connect(s, environ={"MULTIALPHA__REDIS__PORT": str(redis_server.port)})
        assert c.connection_pool.connection_kwargs["port"] == redis_server.port
    finally:
        managed.stop()


def test_managed_always_and_never(settings_for, redis_server) -> None:
    address, managed = redis_setup.ensure(settings_for(MULTIALPHA__REDIS__MANAGED="always"))
    try:
        assert managed is not None and address.port != redis_server.port
        assert address.why.startswith("redis.managed: always: started a managed redis-server")
    finally:
        managed.stop()
    nothing = str(free_port())
    with pytest.raises(redis_setup.RedisSetupError, match="no Redis answers at 127.0.0.1:.* and redis.managed is never"):
        redis_setup.ensure(settings_for(MULTIALPHA__REDIS__MANAGED="never", MULTIALPHA__REDIS__PORT=nothing))


def test_a_redis_with_our_password_is_used(settings_for, tmp_path) -> None:
    from multialpha.managed_redis import ManagedRedis

    (tmp_path / "own").mkdir()
    with ManagedRedis(password="their-password", workdir=tmp_path / "own") as srv:
        s = settings_for(MULTIALPHA__REDIS__PORT=str(srv.port), MULTIALPHA__REDIS__PASSWORD="their-password")
        address, managed = redis_setup.ensure(s)
        assert managed is None and address.port == srv.port
        assert "it requires a password and accepted ours" in address.why


def test_managed_refused_on_non_loopback(settings_for) -> None:
    s = settings_for(MULTIALPHA__REDIS__HOST="192.0.2.1", MULTIALPHA__REDIS__PORT=str(free_port()))
    assert redis_setup.probe(s, timeout=0.3) == "refused"
    with pytest.raises(redis_setup.RedisSetupError, match="only started on a loopback"):
        redis_setup.start_managed(s)


def test_wrong_password_is_reported_not_replaced(settings_for, tmp_path) -> None:
    from multialpha.managed_redis import ManagedRedis

    (tmp_path / "r").mkdir()
    with ManagedRedis(password="right-password", workdir=tmp_path / "r") as srv:
        s = settings_for(MULTIALPHA__REDIS__PORT=str(srv.port), MULTIALPHA__REDIS__PASSWORD="wrong")
        assert redis_setup.probe(s) == "auth"
        with pytest.raises(redis_setup.RedisSetupError, match="refused our credentials"):
            redis_setup.ensure(s)


def test_connect_falls_back_to_the_managed_state_file(settings_for, tmp_path) -> None:
    s = settings_for(MULTIALPHA__REDIS__PORT=str(free_port()))
    address, mr = redis_setup.start_managed(s)
    try:
        assert address.managed and address.password
        c = redis_setup.connect(s)
        assert c.ping() and c.connection_pool.connection_kwargs["port"] == address.port
        # The password is set after start: it is not in redis-server's argv.
        assert address.password not in Path(f"/proc/{mr.proc.pid}/cmdline").read_text()
        import json

        state = redis_setup.state_path(s)
        assert json.loads(state.read_text())["pid"] == mr.proc.pid
        # After a restart by the supervisor (up.watch_redis), the state file names the new process.
        from multialpha.supervisor.up import _restart_managed

        old = mr.proc.pid
        mr.proc.kill()
        mr.proc.wait()
        _restart_managed(mr, address)
        redis_setup.record(s, address, mr)
        doc = json.loads(state.read_text())
        assert doc["pid"] == mr.proc.pid != old and doc["password"] == address.password
        assert redis_setup.connect(s).ping()
    finally:
        mr.stop()


def test_a_persisted_bar_log_makes_the_sandbox_continue_after_it(settings_for, redis_client) -> None:
    """The managed Redis persists; the sandbox replays from sandbox.from_date on every start. A
    second `up` must start the sandbox clock after the newest logged bar, or the hub would refuse
    every minute until the replay caught up (silent for as long as the first run lasted)."""
    from datetime import datetime, timezone

    from multialpha import cme_time
    from multialpha.keys import Keys
    from multialpha.supervisor.up import sandbox_resume_at

    s = settings_for()  # sandbox.from_date 2025-12-01: first open 2025-11-30 23:00Z
    keys = Keys(s.redis.namespace)
    assert sandbox_resume_at(s, redis_client, keys) is None  # nothing logged: a fresh market
    before = datetime(2025, 11, 28, 20, 0, tzinfo=timezone.utc)  # e.g. a warmup-era entry
    redis_client.xadd(keys.bar_log("ES"), {"symbol": "ES"}, id=f"{cme_time.to_ns(before) // 1_000_000}-0")
    assert sandbox_resume_at(s, redis_client, keys) is None
    last = datetime(2025, 12, 2, 14, 37, tzinfo=timezone.utc)
    for sym, t in (("NQ", last), ("CL", datetime(2025, 12, 2, 14, 30, tzinfo=timezone.utc))):
        redis_client.xadd(keys.bar_log(sym), {"symbol": sym}, id=f"{cme_time.to_ns(t) // 1_000_000}-0")
    resume = sandbox_resume_at(s, redis_client, keys)
    assert resume == datetime(2025, 12, 2, 14, 38, tzinfo=timezone.utc)  # after the newest bar, any symbol
    specs = plan(s, SHIPPED_CONFIG, ["sandbox"], {}, python="/py", sandbox_args=("--resume-at", cme_time.iso_z(resume)))
    assert specs[0].argv[-2:] == ("--resume-at", "2025-12-02T14:38:00Z")


def test_the_sandbox_starts_its_clock_at_resume_at(settings_for, tmp_path) -> None:
    from datetime import datetime, timezone

    from click.testing import CliRunner

    from multialpha.sandbox.server import Sandbox

    at = datetime(2025, 12, 2, 14, 38, tzinfo=timezone.utc)
    sb = Sandbox(settings_for(), speed=0.0, state_file=tmp_path / "sb.json", start_at=at)
    st = sb.start()
    try:
        assert st.now() == at
    finally:
        sb.stop()
    from multialpha.cli import main

    bad = CliRunner().invoke(main, ["--config", str(SHIPPED_CONFIG), "sandbox", "--resume-at", "yesterday"])
    assert bad.exit_code == 2 and "--resume-at" in bad.output
