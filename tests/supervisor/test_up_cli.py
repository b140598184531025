"""The real `multialpha up` command: managed Redis + the real sandbox child, stopped cleanly or orphan-free.

Hub and worker are other issues; `--only sandbox` exercises everything `up` itself owns: the managed
redis-server (generated password, 0600 state file, password in no argv), the start order, the pid
file, per-process logs, SIGTERM shutdown and kill -9 of the supervisor.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from multialpha import heartbeat as hb
from multialpha.keys import Keys
from multialpha.managed_redis import free_port
from tests.conftest import REPO, SHIPPED_CONFIG
from tests.supervisor.test_processes import alive, wait_for

KEYS = Keys("multialpha")


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "MULTIALPHA_RUNTIME_DIR": str(tmp_path / "run"), "MULTIALPHA__REDIS__PORT": str(free_port()),
           "MULTIALPHA_CACHE_DIR": str(tmp_path / "cache"), "DATABENTO_API_KEY": "",
           "MULTIALPHA__SANDBOX__DAYS": "5",
           # cwd is tmp_path: without this the child imports whichever `multialpha` is installed,
           # not this checkout's (whose config keys it may not know).
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))}
    env.pop("MULTIALPHA__REDIS__PASSWORD", None)
    env.pop("REDIS_PASSWORD", None)
    return env


def start_up(tmp_path: Path, *args: str, **extra_env: str) -> tuple[subprocess.Popen[str], Path]:
    run = tmp_path / "run"
    env = {**cli_env(tmp_path), **extra_env}
    p = subprocess.Popen([sys.executable, "-m", "multialpha", "--config", str(SHIPPED_CONFIG), "up", *args],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    return p, run


def managed(run: Path) -> dict[str, Any]:
    return wait_for(lambda: json.loads((run / "managed_redis.json").read_text())
                    if (run / "managed_redis.json").exists() else None, what="managed redis state")


def children(client: redis.Redis) -> dict[str, Any]:
    """`--only` makes the supervisor's heartbeat per host: supervisor.<hostname>."""
    import socket

    return (hb.read(client, KEYS, f"supervisor.{socket.gethostname()}") or {}).get("children") or {}


@pytest.fixture
def up_sandbox(tmp_path):
    health_port = free_port()
    p, run = start_up(tmp_path, "--only", "sandbox", MULTIALPHA__SUPERVISOR__HEALTH_PORT=str(health_port))
    p.health_port = health_port  # type: ignore[attr-defined]
    try:
        st = managed(run)
        client = redis.Redis(host=st["host"], port=st["port"], password=st["password"], decode_responses=True)
        sandbox_pid = wait_for(lambda: children(client).get("sandbox", {}).get("state") == "running"
                               and children(client)["sandbox"]["pid"], timeout=60, what="sandbox running")
        yield p, run, st, client, int(sandbox_pid)
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()


def test_up_managed_redis_then_sigterm_leaves_nothing(up_sandbox) -> None:
    p, run, st, client, sandbox_pid = up_sandbox
    # The managed Redis: password required, stored 0600, on no command line.
    assert stat.S_IMODE((run / "managed_redis.json").stat().st_mode) == 0o600
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=st["host"], port=st["port"]).ping()
    redis_pid = int(st["pid"])
    for pid in (redis_pid, sandbox_pid, p.pid):
        assert st["password"] not in Path(f"/proc/{pid}/cmdline").read_text()
    assert (run / "sandbox.json").exists() and int((run / "supervisor.pid").read_text()) == p.pid
    assert (run / "logs" / "sandbox.log").stat().st_size > 0
    # The supervisor's own /healthz and /metrics.
    from tests.test_health import get

    code, _, body = get(f"http://127.0.0.1:{p.health_port}/healthz")
    assert code == 200 and json.loads(body)["component"] == "supervisor"
    code, _, body = get(f"http://127.0.0.1:{p.health_port}/metrics")
    assert code == 200 and "multialpha_restarts_total" in body
    p.send_signal(signal.SIGTERM)
    assert p.wait(30) == 0
    for pid in (redis_pid, sandbox_pid):
        assert not alive(pid), pid
    assert not (run / "supervisor.pid").exists()


def test_kill9_of_up_takes_redis_and_sandbox_down(up_sandbox) -> None:
    p, run, st, client, sandbox_pid = up_sandbox
    p.send_signal(signal.SIGKILL)
    p.wait(5)
    wait_for(lambda: not alive(sandbox_pid) and not alive(int(st["pid"])), timeout=15, what="no orphans")


def cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "multialpha", "--config", str(SHIPPED_CONFIG), *args],
                          env=env or cli_env(tmp_path), capture_output=True, text=True, timeout=60, cwd=tmp_path)


def test_detach_status_restart_logs_down(tmp_path) -> None:
    env = cli_env(tmp_path)
    r = cli(tmp_path, "up", "--detach", "--only", "sandbox", env=env)
    assert r.returncode == 0, r.stderr
    run = tmp_path / "run"
    sup_pid = int((run / "supervisor.pid").read_text())
    try:
        assert f"pid {sup_pid}" in r.stdout
        st = managed(run)
        client = redis.Redis(host=st["host"], port=st["port"], password=st["password"], decode_responses=True)
        first = wait_for(lambda: children(client).get("sandbox", {}).get("state") == "running"
                         and children(client)["sandbox"]["pid"], timeout=60, what="sandbox running")
        # status finds the managed Redis through the runtime dir (configured port has nothing).
        doc = json.loads(cli(tmp_path, "status", "--json", env=env).stdout)
        assert doc["supervisor"]["present"] and doc["supervisor"]["pid"] == sup_pid
        assert {p["name"]: p["state"] for p in doc["processes"]}["sandbox"] == "running"
        r = cli(tmp_path, "restart", "sandbox", env=env)
        assert r.returncode == 0 and f"pid {first} -> " in r.stdout, r.stderr
        assert cli(tmp_path, "restart", "nope", env=env).returncode == 1
        r = cli(tmp_path, "logs", "sandbox", env=env)
        assert r.returncode == 0 and "sandbox" in r.stdout
        assert "no log for" in cli(tmp_path, "logs", "nope", env=env).stderr
        r = cli(tmp_path, "down", env=env)
        assert r.returncode == 0 and f"pid {sup_pid}" in r.stdout
        assert not alive(sup_pid) and not alive(int(st["pid"]))
        assert "no detached" in cli(tmp_path, "down", env=env).stdout
    finally:
        if alive(sup_pid):
            os.kill(sup_pid, signal.SIGKILL)
