"""Shared fixtures: a real redis-server on a free loopback port, the shipped config."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

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


@pytest.fixture(scope="session")
def sandbox_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sandbox store (``sandbox.store_dir``) for every `up` of the run whose test is not about
    the store itself: the first sandbox that needs a day generates it (~0.3 s of CPU per root for
    a warmup's history, ~6 s for the shipped config), later ones read it. Sharing is safe: the
    store is keyed by a fingerprint of everything the bars depend on, a file is replaced whole
    (``os.replace``) and a lost write only means a day is generated again (sandbox/store.py).
    Under xdist it sits in the run's common temp root, so the workers share it too."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # pytest-N/ of this run, above each worker's popen-gwK/
    return root / "sandbox-store"


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


# -- parallel runs (pytest-xdist, `-n 4 --dist loadscope --no-loadscope-reorder` in setup.cfg) ---------
#
# Tests that share a costly session- or module-scoped fixture run on one xdist worker, so the fixture
# is built once, as in a serial run. The groups are named here by path, and the scheduler below reads
# them from each test's node id: xdist's own `xdist_group` mark works by renaming node ids, which
# pytest 9.2 no longer allows (Node.nodeid is read-only), so the marks would be silently ignored.
# Keys are paths relative to the repo (a directory key covers everything under it) or one test's node
# id (`path::name[param]`), for a module whose tests belong to different groups.
XDIST_GROUPS: dict[str, str] = {
    # one pinned sandbox with 120 days of history and one warmup cache (tests/backtest/conftest.py)
    "tests/backtest/": "backtest-sandbox",
    "tests/mlveto/test_train.py": "backtest-sandbox",  # imports those fixtures
    "tests/report/test_command.py": "backtest-sandbox",  # those fixtures (tests/report/conftest.py) + a paper week
    # one sandbox with 300 days of history (tests/sandbox/conftest.py)
    "tests/sandbox/": "sandbox",
    # module-scoped rig and fault-free reference run
    "tests/e2e/test_hub_faults.py": "hub-faults",
    # module-scoped servers (a Sentinel group; a Redis with ACL users), built once instead of once per worker
    "tests/supervisor/test_redis_setup.py": "sentinel-group",
    "tests/test_redis_acl.py": "acl-redis",
    # the session's fault-free `multialpha up` reference run (tests/e2e/conftest.py: up_reference), in
    # two groups of about 4 minutes each: if both land on one worker the reference is built once, if
    # not, one extra reference run (~40 s) buys two faulted runs at a time
    "tests/e2e/test_worker_faults.py": "up-faults-a",
    "tests/e2e/test_order_faults.py": "up-faults-a",
    "tests/e2e/test_stale_bars.py": "up-faults-a",
    "tests/e2e/test_supervisor_faults.py": "up-faults-b",
    "tests/e2e/test_up_compare.py": "up-faults-b",
    "tests/e2e/test_redis_failover.py": "up-faults-b",  # compares with the same reference
    # The live-vs-replay runs: each an `up` paced in wall time on the sandbox (3-4 min, about half a
    # core: parity[roll] took 88 s of CPU in 165 s). Two groups of about equal length that SLOW_FIRST
    # starts first, so each lands on its own xdist worker: at most two paced runs at a time (their
    # rigs assert that no bar was late or dropped, so no third one competes for the 2 cores), and
    # the ~14 min they took one after the other on one worker no longer bound the whole run.
    # (measured with 4 workers: [dst] 240 s, test_rolls 224 s, verify 178 s, [roll] 166 s)
    "tests/parity/test_rolls.py": "parity-a",
    "tests/verify/test_cli.py::test_verify_live_day_then_altered_journal_entry": "parity-a",
    "tests/parity/test_parity.py::test_live_orders_equal_backtest[dst]": "parity-b",
    "tests/parity/test_parity.py::test_live_orders_equal_backtest[roll]": "parity-b",
}

# The longest tests and groups, longest first (measured with --durations; README, "Development").
# xdist hands out work in collection order, so these go first: a 4-minute test started last would
# run alone at the end while the other workers idle. A group ranks as its highest-ranked member
# here. Everything else keeps its collection order.
SLOW_FIRST: tuple[str, ...] = (
    "tests/parity/test_parity.py::test_live_orders_equal_backtest[dst]",  # parity-b and parity-a first:
    "tests/parity/test_rolls.py",  # one to each of two workers
    "tests/e2e/test_worker_faults.py",  # up-faults-a
    "tests/fuzz/test_control_messages.py",
    "tests/report/test_command.py",  # backtest-sandbox
    "tests/e2e/test_supervisor_faults.py",  # up-faults-b
    "tests/fuzz/test_config_yaml.py",
    "tests/fuzz/test_bar_json.py",
    "tests/e2e/test_hub_faults.py",
    "tests/fuzz/test_webhook_responses.py",
    "tests/worker/test_warmup.py",
    "tests/supervisor/test_up_cli.py",
    "tests/hub/test_main.py",
    "tests/sandbox/test_live.py",  # sandbox
    "tests/fuzz/test_dbn_extremes.py",
    "tests/e2e/test_reload.py",
    "tests/e2e/test_up.py",
    "tests/fuzz/test_bar_log.py",
    "tests/multihost/test_two_hosts.py",
    "tests/supervisor/test_processes.py",
    "tests/test_bar.py",
)


def xdist_group_of(nodeid: str) -> str | None:
    """The group of a test (node id relative to the repo) or of a whole file (its path)."""
    path = nodeid.split("::", 1)[0]
    for key, group in XDIST_GROUPS.items():
        if nodeid == key or path == key or (key.endswith("/") and path.startswith(key)):
            return group
    return None


def _rel(item: pytest.Item) -> str:
    return Path(str(item.path)).resolve().relative_to(REPO).as_posix()


def _nodeid(item: pytest.Item) -> str:
    """The item's node id relative to the repo, whatever directory pytest was started from."""
    rel = _rel(item)
    return f"{rel}::{item.nodeid.split('::', 1)[1]}" if "::" in item.nodeid else rel


def _slow_rank(item: pytest.Item) -> int:
    rel, nodeid = _rel(item), _nodeid(item)
    for rank, key in enumerate(SLOW_FIRST):
        if nodeid == key or rel == key:
            return rank
    return len(SLOW_FIRST)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's load-scope scheduler with our groups as scopes: one group, one worker; every other
    test is a scope of its own (scheduled alone, like `--dist load`)."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid) or nodeid

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The controller schedules in the order its workers collected; a worker has `workerinput` (xdist
    # resets its numprocesses). A serial run (-n 0) keeps the plain order.
    if not (hasattr(config, "workerinput") or config.getoption("numprocesses", None)):
        return
    # A group is scheduled where its first test stands, so its members move up together.
    group_rank: dict[str, int] = {}
    for item in items:
        group = xdist_group_of(_nodeid(item))
        if group:
            group_rank[group] = min(group_rank.get(group, len(SLOW_FIRST)), _slow_rank(item))

    def rank(item: pytest.Item) -> int:
        group = xdist_group_of(_nodeid(item))
        return group_rank[group] if group else _slow_rank(item)

    items.sort(key=rank)  # stable: the rest keeps its order


# -- the `up` fault scenarios' results table (tests/e2e/up_rig.py: RESULTS), printed at the end -------
# Under xdist the rows are built in the workers: each hands its rows to the controller when it
# finishes (workeroutput), and the controller prints one table, as a serial run does.
_UP_RESULTS = "multialpha_up_results"


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker
        from tests.e2e import up_rig as R

        workeroutput[_UP_RESULTS] = json.dumps(R.RESULTS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    rows = getattr(node, "workeroutput", {}).get(_UP_RESULTS)
    if rows:
        from tests.e2e import up_rig as R

        R.RESULTS.extend((name, recovery, d) for name, recovery, d in json.loads(rows))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.e2e import up_rig as R

    if R.RESULTS:
        terminalreporter.write_sep("=", "multialpha up: fault scenarios vs the reference run")
        terminalreporter.write_line(R.table(R.RESULTS))
