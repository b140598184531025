import pytest
import redis

from multialpha.managed_redis import ManagedRedis


def test_password_is_enforced_and_process_stops() -> None:
    with ManagedRedis(password="pw-test-123") as server:
        assert server.client().ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host=server.host, port=server.port).ping()
        proc = server.proc
    assert proc is not None and proc.poll() is not None


def test_refuses_non_loopback() -> None:
    with pytest.raises(ValueError, match="non-loopback"):
        ManagedRedis(host="0.0.0.0")
