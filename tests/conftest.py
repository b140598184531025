"""Shared fixtures: a real redis-server on a free loopback port, the shipped config."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import hypothesis
import pytest
import redis

from multialpha import config as cfg
from multialpha.managed_redis import ManagedRedis

REPO = Path(__file__).resolve().parents[1]
SHIPPED_CONFIG = REPO / "config.multi_alpha.yml"
SHARED = REPO.parent / "shared"

# No example database in the checkout (`.hypothesis/`): parallel workers would share it, and a test
# run should leave the repo as it found it. Tests that set their own `settings` keep this default.
hypothesis.settings.register_profile("multialpha", database=None)
hypothesis.settings.load_profile("multialpha")


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


# -- parallel runs (pytest-xdist, `-n 2 --dist loadgroup` in setup.cfg) ------------------------------
#
# Tests that share a costly session- or module-scoped fixture run on one xdist worker, so the fixture
# is built once, as in a serial run: with loadgroup every test with the same `xdist_group` goes to the
# same worker, every other test is scheduled on its own. Keys are paths relative to the repo; a
# directory key covers everything under it.
XDIST_GROUPS: dict[str, str] = {
    # one pinned sandbox with 120 days of history and one warmup cache (tests/backtest/conftest.py)
    "tests/backtest/": "backtest-sandbox",
    "tests/mlveto/test_train.py": "backtest-sandbox",  # imports those fixtures
    # one sandbox with 300 days of history (tests/sandbox/conftest.py)
    "tests/sandbox/": "sandbox",
    # module-scoped rig and fault-free reference run
    "tests/e2e/test_hub_faults.py": "hub-faults",
    # the session's fault-free `multialpha up` reference run (tests/e2e/conftest.py: up_reference)
    "tests/e2e/test_worker_faults.py": "up-faults",
    "tests/e2e/test_order_faults.py": "up-faults",
    "tests/e2e/test_supervisor_faults.py": "up-faults",
    "tests/e2e/test_stale_bars.py": "up-faults",
    "tests/e2e/test_up_compare.py": "up-faults",
}


def xdist_group_of(relpath: str) -> str | None:
    for key, group in XDIST_GROUPS.items():
        if relpath == key or (key.endswith("/") and relpath.startswith(key)):
            return group
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Runs before xdist's own (trylast) hook, which turns the marks into scheduling groups.
    for item in items:
        group = xdist_group_of(Path(str(item.path)).resolve().relative_to(REPO).as_posix())
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
