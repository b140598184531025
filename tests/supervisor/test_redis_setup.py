"""redis_setup with ``redis.sentinel``: `up` and the commands find the primary through real sentinels
(multialpha/managed_sentinel.py); the failover itself is tests/test_redis_conn.py and
tests/e2e/test_redis_failover.py."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
import redis

from multialpha.managed_redis import free_port
from multialpha.managed_sentinel import ManagedSentinelGroup
from multialpha.settings_redis import SentinelSettings
from multialpha.supervisor import redis_setup

PASSWORD = "pw-setup-sentinel-42"


@pytest.fixture(scope="module")
def group() -> Iterator[ManagedSentinelGroup]:
    with ManagedSentinelGroup(password=PASSWORD) as g:
        yield g


def _with_sentinel(settings: Any, hosts: list[str], service: str = "multialpha") -> Any:
    r = settings.redis.model_copy(update={"sentinel": SentinelSettings(hosts=hosts, service=service),
                                          "password": PASSWORD})
    return settings.model_copy(update={"redis": r})


def test_up_uses_the_sentinels_primary_and_never_starts_a_redis(group: ManagedSentinelGroup, settings_for: Any) -> None:
    settings = _with_sentinel(settings_for(), group.hosts)
    address, managed = redis_setup.ensure(settings)
    assert managed is None and not address.managed and address.child_env() == {}
    assert (address.host, address.port) == ("127.0.0.1", group.primary.port)
    assert "Sentinel service 'multialpha'" in address.why and PASSWORD not in address.why
    c = address.client(decode_responses=True)  # follows the sentinels, not the address above
    assert c.set("k", "v") and group.primary.client(decode_responses=True).get("k") == "v"
    c.close()
    cmd = redis_setup.connect(settings)  # what status/halt/orders use
    assert cmd.get("k") == "v"
    cmd.close()


def test_no_sentinel_answering_is_one_plain_line(group: ManagedSentinelGroup, settings_for: Any) -> None:
    dead = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    settings = _with_sentinel(settings_for(), dead)
    with pytest.raises(redis_setup.RedisUnreachable) as e:
        redis_setup.connect(settings, timeout=0.5)
    assert e.value.line.startswith("cannot reach Redis at the primary of Sentinel service 'multialpha' (sentinels ")
    assert "no sentinel names a primary" in e.value.line and PASSWORD not in e.value.line
    with pytest.raises(redis_setup.RedisSetupError, match="no sentinel names a primary"):
        redis_setup.ensure(settings)
    # A service the sentinels do not monitor: the same plain line, not a traceback.
    wrong = _with_sentinel(settings_for(), group.hosts, service="other")
    assert "no sentinel names a primary" in (redis_setup.require(wrong, timeout=0.5) or "")
    with pytest.raises(redis.ConnectionError):
        redis_setup.connect(wrong, timeout=0.5)


def test_a_managed_redis_with_acl_users(settings_for: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """redis.acl with a managed Redis: the users are loaded, nobody anonymous gets in, `up` itself is
    the supervisor user, and children get neither the administrator password nor other roles' ones."""
    from multialpha import redis_acl

    for role in ("hub", "worker.ibs_a", "worker.ibs_b", "worker.breakout", "status", "supervisor"):
        monkeypatch.setenv(redis_acl.password_env(role), f"pw-{role}")
    settings = settings_for(MULTIALPHA__REDIS__MANAGED="always", MULTIALPHA__REDIS__ACL="true")
    address, managed = redis_setup.ensure(settings)
    try:
        assert managed is not None and address.acl == ("multialpha.supervisor", "pw-supervisor")
        assert "MULTIALPHA__REDIS__PASSWORD" not in address.child_env()
        users = (managed.workdir / "users.acl")
        assert users.stat().st_mode & 0o777 == 0o600 and "pw-hub" not in users.read_text()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=address.port).ping()
        sup = address.client(decode_responses=True)
        assert sup.client_info()["user"] == "multialpha.supervisor"
        hub = redis.Redis(port=address.port, username="multialpha.hub", password="pw-hub")
        assert hub.publish("market:ES:1min", "{}") == 0
        worker = redis.Redis(port=address.port, username="multialpha.worker.ibs_a", password="pw-worker.ibs_a")
        with pytest.raises(redis.exceptions.NoPermissionError):
            worker.publish("market:ES:1min", "{}")
        for c in (sup, hub, worker):
            c.close()
    finally:
        managed.stop()
