"""`multialpha status` drawn in real terminals: --once in a pty (colours on), the live view in tmux."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import termios
import uuid

import pytest

from multialpha import cme_time
from multialpha.heartbeat import Heartbeat
from multialpha.keys import Keys
from tests.conftest import SHIPPED_CONFIG
from tests.status.test_collect import put_bar
from tests.supervisor.test_processes import wait_for

KEYS = Keys("multialpha")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def env_for(redis_server, tmp_path) -> dict[str, str]:
    return {**os.environ, "MULTIALPHA__REDIS__PORT": str(redis_server.port),
            "MULTIALPHA__REDIS__HOST": redis_server.host,
            "MULTIALPHA_RUNTIME_DIR": str(tmp_path / "run"), "TERM": "xterm-256color", "COLUMNS": "160",
            "LINES": "100"}


def seed(client) -> None:
    now = cme_time.utcnow()
    Heartbeat(client, KEYS, "hub", ttl_s=120).beat("connected")
    Heartbeat(client, KEYS, "worker.ibs_a", ttl_s=120).beat("live", pnl_today=-42.0)
    Heartbeat(client, KEYS, "supervisor", ttl_s=120).beat("running", children={
        "hub": {"state": "running", "pid": 4242, "uptime_s": 61, "restarts": 2},
        "worker.breakout": {"state": "failed", "pid": None, "restarts": 5, "reason": "flapping"},
    })
    start = cme_time.iso_z(cme_time.from_ns(cme_time.floor_minute_ns(cme_time.to_ns(now)) - 120 * 10**9))
    put_bar(client, "ES", start, 6012.25, "ESH6")


def test_status_once_in_a_pty(redis_server, redis_client, tmp_path) -> None:
    seed(redis_client)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 100, 160, 0, 0))
    p = subprocess.Popen([sys.executable, "-m", "multialpha", "--config", str(SHIPPED_CONFIG), "status", "--once"],
                         stdin=slave, stdout=slave, stderr=slave, env=env_for(redis_server, tmp_path), close_fds=True)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the pty
            break
        if not chunk:
            break
        out += chunk
    assert p.wait(30) == 0
    os.close(master)
    raw = out.decode(errors="replace")
    text = ANSI.sub("", raw)
    assert "\x1b[" in raw  # a real terminal: colours on
    assert re.search(r"hub\s+│\s+RUNNING\s+│\s+4242\s+│\s+61s\s+│\s+2\s+│", text)
    assert re.search(r"worker\.breakout\s+│\s+FAILED", text)
    assert re.search(r"ES\s+│\s+ESH6\s+│.*│\s+6012\.25", text)
    assert re.search(r"ibs_a\s+│\s+LIVE\s+│\s+PAPER\s+│.*-42\.00", text)
    assert "PAPER — orders are journaled only" in text and "DEGRADED" in text
    # The failed worker is drawn in bold red.
    line = next(l for l in raw.splitlines() if "FAILED" in l and "breakout" in ANSI.sub("", l))
    assert "\x1b[1;31m" in line


def test_status_json_cli(redis_server, redis_client, tmp_path) -> None:
    import jsonschema

    from multialpha.status.schema import STATUS_SCHEMA

    seed(redis_client)
    r = subprocess.run([sys.executable, "-m", "multialpha", "--config", str(SHIPPED_CONFIG), "status", "--json"],
                       env=env_for(redis_server, tmp_path), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, STATUS_SCHEMA)
    assert {p["name"]: p["pid"] for p in doc["processes"]}["hub"] == 4242


def test_status_without_redis_says_so(tmp_path) -> None:
    from multialpha.managed_redis import free_port

    env = {**os.environ, "MULTIALPHA__REDIS__PORT": str(free_port()), "MULTIALPHA_RUNTIME_DIR": str(tmp_path / "r")}
    r = subprocess.run([sys.executable, "-m", "multialpha", "--config", str(SHIPPED_CONFIG), "status", "--once"],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "cannot reach Redis" in r.stderr


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_live_view_refreshes_in_tmux(redis_server, redis_client, tmp_path) -> None:
    seed(redis_client)
    session = f"ma-{uuid.uuid4().hex[:8]}"
    env = env_for(redis_server, tmp_path)
    exports = " ".join(f"{k}={v}" for k, v in env.items() if k.startswith("MULTIALPHA"))
    cmd = f"env {exports} {sys.executable} -m multialpha --config {SHIPPED_CONFIG} status"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "60", cmd], check=True)
    try:
        def pane() -> str:
            return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                  text=True).stdout

        wait_for(lambda: "RUNNING" in pane() and "4242" in pane(), timeout=20, what="first frame")
        # Change Redis; the live view must show it within a refresh or two.
        Heartbeat(redis_client, KEYS, "supervisor", ttl_s=120).beat("running", children={
            "hub": {"state": "backoff", "pid": None, "restarts": 3, "reason": "exited with code 1"},
        })
        wait_for(lambda: "BACKOFF" in pane(), timeout=20, what="refreshed frame")
        assert "4242" not in pane()
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
