"""Real processes: the supervisor machinery over stub children and the test's real redis-server.

Each test starts tests/supervisor/stub_up.py (run_supervisor, as `up` uses it) in its own process and
checks children by pid. Waiting is polling with a deadline, never a sleep standing in for time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import redis

from multialpha import heartbeat as hb
from multialpha.keys import Keys

HERE = Path(__file__).resolve().parent
KEYS = Keys("multialpha")


def wait_for(cond: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    try:
        st = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return st != "Z"


class Up:
    def __init__(self, proc: subprocess.Popen[str], client: redis.Redis) -> None:
        self.proc, self.client = proc, client

    def table(self) -> dict[str, dict[str, Any]]:
        doc = hb.read(self.client, KEYS, "supervisor") or {}
        return doc.get("children") or {}

    def child(self, name: str) -> dict[str, Any]:
        return self.table().get(name, {})

    def running_pid(self, name: str, not_pid: int | None = None) -> int:
        def ok() -> int | None:
            c = self.child(name)
            if c.get("state") == "running" and c.get("pid") and c["pid"] != not_pid:
                return int(c["pid"])
            return None

        return wait_for(ok, what=f"{name} running")


@pytest.fixture
def start_up(redis_server, redis_client, tmp_path) -> Iterator[Callable[..., Up]]:
    procs: list[subprocess.Popen[str]] = []

    def start(*children: str, **env: str) -> Up:
        e = {**os.environ, "MULTIALPHA__REDIS__HOST": redis_server.host,
             "MULTIALPHA__REDIS__PORT": str(redis_server.port), **env}
        p = subprocess.Popen([sys.executable, str(HERE / "stub_up.py"), str(tmp_path), *children], env=e,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(p)
        return Up(p, redis_client)

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def test_kill9_child_is_restarted_others_untouched(start_up, tmp_path) -> None:
    up = start_up("hub", "worker.a", "worker.b")
    pids = {n: up.running_pid(n) for n in ("hub", "worker.a", "worker.b")}
    os.kill(pids["worker.a"], signal.SIGKILL)
    new = up.running_pid("worker.a", not_pid=pids["worker.a"])
    assert new != pids["worker.a"] and not alive(pids["worker.a"])
    t = up.table()
    assert t["worker.a"]["restarts"] == 1
    for n in ("hub", "worker.b"):
        assert t[n]["pid"] == pids[n] and t[n]["restarts"] == 0 and alive(pids[n])
    # Per-process log files got the children's output.
    assert "stub worker.a" in (tmp_path / "worker.a.log").read_text()
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(15) == 0


def test_crash_at_start_backs_off_then_fails_others_fine(start_up, redis_client) -> None:
    up = start_up("hub", "worker.bad:crash")
    hub_pid = up.running_pid("hub")
    wait_for(lambda: up.child("worker.bad").get("state") == "failed", what="worker.bad failed")
    c = up.child("worker.bad")
    assert c["restarts"] == 3 and "flapping" in c["reason"] and c["pid"] is None
    assert up.child("hub")["pid"] == hub_pid and up.child("hub")["state"] == "running"
    # The child table and the event stream are separate writes of the supervisor's tick: wait for
    # the event instead of reading the stream the moment the table says failed.
    wait_for(lambda: any(e[1]["component"] == "worker.bad" and e[1]["level"] == "error"
                         for e in redis_client.xrange(KEYS.events())), what="worker.bad's error event")
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(15) == 0
    out = up.proc.stdout.read()
    assert "worker.bad" in out and "FAILED" in out


def test_sigterm_up_leaves_no_process_even_a_sigterm_ignorer(start_up) -> None:
    up = start_up("hub", "worker.a", "worker.stubborn:ignoreterm")
    pids = [up.running_pid(n) for n in ("hub", "worker.a", "worker.stubborn")]
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(15) == 0
    for pid in pids:
        assert not alive(pid), pid
    out = up.proc.stdout.read()
    assert "SIGKILL" in out  # the stubborn one had to be killed


def test_kill9_of_supervisor_takes_children_down(start_up) -> None:
    up = start_up("hub", "worker.a")
    pids = [up.running_pid(n) for n in ("hub", "worker.a")]
    up.proc.send_signal(signal.SIGKILL)
    up.proc.wait(5)
    wait_for(lambda: not any(alive(p) for p in pids), timeout=10, what="children gone after kill -9")


def test_silent_child_is_restarted(start_up) -> None:
    up = start_up("worker.hung:silent", STUB_HB_TIMEOUT="1.5")
    first = up.running_pid("worker.hung")
    second = up.running_pid("worker.hung", not_pid=first)
    assert second != first
    wait_for(lambda: not alive(first), timeout=5, what="hung child gone")
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(15) == 0


def test_restart_request_over_redis(start_up, redis_client) -> None:
    from multialpha.supervisor.watch import request_restart

    up = start_up("hub", "worker.a")
    a, h = up.running_pid("worker.a"), up.running_pid("hub")
    wait_for(lambda: request_restart(redis_client, KEYS, "worker.a") > 0, what="control listener subscribed")
    new = up.running_pid("worker.a", not_pid=a)
    assert new != a and up.child("hub")["pid"] == h
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(15) == 0
