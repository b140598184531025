"""Shared fixtures: a real redis-server on a free loopback port, the shipped config."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import redis

from multialpha import config as cfg
from multialpha.managed_redis import ManagedRedis

REPO = Path(__file__).resolve().parents[1]
SHIPPED_CONFIG = REPO / "config.multi_alpha.yml"
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ManagedRedis]:
    """One real redis-server for the session (tests flush it via `redis_client`)."""
    with ManagedRedis() as server:
        yield server


@pytest.fixture
def redis_client(redis_server: ManagedRedis) -> Iterator[redis.Redis]:
    client = redis_server.client(decode_responses=True)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def settings_for(redis_server: ManagedRedis, tmp_path: Path):
    """Build Settings from the shipped config, pointed at the test Redis and tmp dirs."""

    def build(**env: str) -> cfg.Settings:
        environ = {
            "MULTIALPHA__REDIS__PORT": str(redis_server.port),
            "MULTIALPHA__REDIS__HOST": redis_server.host,
            "MULTIALPHA_RUNTIME_DIR": str(tmp_path / "run"),
            "MULTIALPHA_CACHE_DIR": str(tmp_path / "cache"),
            **env,
        }
        return cfg.load(SHIPPED_CONFIG, environ=environ)

    return build


@pytest.fixture(autouse=True)
def _process_role_reset() -> Iterator[None]:
    """`redis_acl.set_role` is per process (the hub, a worker and `status` set theirs at entry);
    tests that run those entry points in-process must not leave it set for the next test."""
    from multialpha import redis_acl

    yield
    redis_acl.set_role("supervisor")
