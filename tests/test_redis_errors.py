"""A wrong Redis address: one clear line on stderr, a non-zero exit — in every command that needs
Redis (subprocesses, as an operator runs them). `down` needs no Redis (pid file + SIGTERM).

No wall-clock assertion (tests do not measure time): the 60 s subprocess timeout only guards
against a command that hangs retrying instead of failing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from multialpha.managed_redis import free_port
from tests.conftest import REPO, SHIPPED_CONFIG

COMMANDS = [
    ("worker", "--strategy", "ibs_a"),
    ("hub",),
    ("status", "--once"),
    ("status", "--json"),
    ("halt",),
    ("resume",),
    ("flatten", "--all"),
    ("orders", "list"),
    ("restart", "hub"),
]


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MULTIALPHA__REDIS__")}
    e.update({"MULTIALPHA_RUNTIME_DIR": str(tmp_path / "run"), "DATABENTO_API_KEY": "", **env})
    return subprocess.run([sys.executable, "-m", "multialpha", "--config", str(SHIPPED_CONFIG), *args], env=e,
                          capture_output=True, text=True, timeout=60, cwd=REPO)


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a))
def test_a_wrong_address_is_one_line_and_a_nonzero_exit(tmp_path: Path, args: tuple[str, ...]) -> None:
    port = free_port()
    p = run(tmp_path, *args, MULTIALPHA__REDIS__PORT=str(port))
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    out = p.stdout if args == ("status", "--json") else p.stderr
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1, out
    assert f"cannot reach Redis at 127.0.0.1:{port}: connection refused" in lines[0]
    assert "Traceback" not in p.stderr + p.stdout


def test_the_override_wins_over_the_managed_state_file(tmp_path: Path, redis_server) -> None:
    """A managed_redis.json naming a live Redis does not capture a command whose environment names
    another address: the operator asked for that address."""
    from multialpha import runtime

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    runtime.write_json_atomic(run_dir / "managed_redis.json", {"host": "127.0.0.1", "port": redis_server.port,
                                                              "password": "", "pid": None})
    port = free_port()
    p = run(tmp_path, "halt", MULTIALPHA__REDIS__PORT=str(port))
    assert p.returncode == 1 and f"127.0.0.1:{port}" in p.stderr
    p = run(tmp_path, "status", "--json")  # no override: the state file's Redis is the one `up` runs
    assert p.returncode == 0, p.stderr


def test_down_needs_no_redis(tmp_path: Path) -> None:
    p = run(tmp_path, "down", MULTIALPHA__REDIS__PORT=str(free_port()))
    assert p.returncode == 0 and p.stdout.strip() == "no detached `multialpha up` is running"
    assert "Traceback" not in p.stderr
