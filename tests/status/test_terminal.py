"""`multialpha status` drawn in real terminals: --once in a pty (colours on), the live view in tmux."""

from __future__ import annotations

import fcntl
import json
import os
import re
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
    assert re.search(r"^hub\s+RUNNING\s+4242\s+1m01s\s+2\s", text, re.M)
    assert re.search(r"^worker\.breakout\s+FAILED", text, re.M)
    assert re.search(r"ES 6012\.25 [\dm]+s", text)
    assert re.search(r"^ibs_a\s+LIVE\s+0\s+0\.00", text, re.M)
    assert text.lstrip().startswith("DEGRADED") and "worker.breakout FAILED (flapping)" in text
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


def test_live_view_refreshes_in_tmux(redis_server, redis_client, tmp_path) -> None:
    seed(redis_client)
    session = f"ma-{uuid.uuid4().hex[:8]}"
    env = env_for(redis_server, tmp_path)
    exports = " ".join(f"{k}={v}" for k, v in env.items() if k.startswith("MULTIALPHA"))
    cmd = f"env {exports} {sys.executable} -m multialpha --config {SHIPPED_CONFIG} status"
    subprocess.run(["tmux", "-L", session, "new-session", "-d", "-s", session, "-x", "160", "-y", "60", cmd], check=True)
    try:
        def pane() -> str:
            return subprocess.run(["tmux", "-L", session, "capture-pane", "-p", "-t", session], capture_output=True,
                                  text=True).stdout

        wait_for(lambda: "RUNNING" in pane() and "4242" in pane(), timeout=20, what="first frame")
        # Change Redis; the live view must show it within a refresh or two.
        Heartbeat(redis_client, KEYS, "supervisor", ttl_s=120).beat("running", children={
            "hub": {"state": "backoff", "pid": None, "restarts": 3, "reason": "exited with code 1"},
        })
        wait_for(lambda: "BACKOFF" in pane(), timeout=20, what="refreshed frame")
        assert "4242" not in pane()
    finally:
        subprocess.run(["tmux", "-L", session, "kill-server"], capture_output=True)


def _tmux(session: str, size: tuple[int, int], env: dict[str, str]) -> None:
    exports = " ".join(f"{k}={v}" for k, v in env.items() if k.startswith("MULTIALPHA"))
    cmd = f"env {exports} TERM=xterm-256color {sys.executable} -m multialpha --config {SHIPPED_CONFIG} status"
    # A server of its own (-L): a server left exiting by the previous test's kill-session cannot take it along.
    subprocess.run(["tmux", "-L", session, "new-session", "-d", "-s", session, "-x", str(size[0]), "-y", str(size[1]),
                    cmd], check=True)


def _capture(session: str) -> str:
    return subprocess.run(["tmux", "-L", session, "capture-pane", "-p", "-t", session], capture_output=True,
                          text=True).stdout


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
@pytest.mark.parametrize("trouble", [False, True])
def test_at_a_glance_in_tmux(redis_server, redis_client, tmp_path, size, trouble) -> None:
    """A deployment's Redis state (seeded through the real writers): the view at 80x24 and 200x50."""
    from multialpha import config as cfg
    from tests.status.realistic import seed

    env = env_for(redis_server, tmp_path)
    s = cfg.load(SHIPPED_CONFIG, environ=env)
    seed(s, redis_client, trouble=trouble)
    session = f"ma-{uuid.uuid4().hex[:8]}"
    _tmux(session, size, env)
    try:
        w, h = size
        # The wide layout once tmux has given the pane its size (the view follows a resize within 1 s).
        try:
            wait_for(lambda: "TOTAL" in (c := _capture(session)) and (w < 120 or "trading day" in c), timeout=20,
                     what="a frame of this size")
        except AssertionError:
            raise AssertionError(_capture(session)) from None
        screen = _capture(session)
        rows = screen.splitlines()
        assert len(rows) <= h and all(len(r) <= w for r in rows)
        # First line: the state WITH its reasons.
        if trouble:
            assert rows[0].startswith(" HALTED  worker.breakout restarting (exited with code 1; retry in 8s)")
            assert "hub lag 4m20s" in screen
            assert re.search(r"^HALTED: desk call", screen, re.M) and "EXIT FAILED breakout:ES" in screen
            assert "REDUCE-ONLY ibs_a: flatten: risk check" in screen
        else:
            assert rows[0].startswith(" DEGRADED  ibs_a/6C no veto model: BLOCKING entries")
            assert "6M quiet" in screen
        # Positions and P&L per strategy and in total, visible on the first screen.
        assert re.search(r"^ibs_a\s+LIVE\s+1\s+-707\.50", screen, re.M)
        assert re.search(r"^ibs_b\s+LIVE\s+0\s+0\.00", screen, re.M)
        assert re.search(r"^breakout\s+(LIVE|DOWN)\s+1\s+\+497\.50", screen, re.M)
        assert re.search(r"^TOTAL\s+2\s+-210\.00", screen, re.M) and "day P&L -210.00" in screen
        assert re.search(r"^ibs_a\s+LONG\s+1\s+6A\s", screen, re.M)
        assert re.search(r"^breakout\s+LONG\s+1\s+ES\s", screen, re.M)
        # ibs_a's kill -9 is history: it is LIVE again.
        assert "-9" not in screen
        # No cell wraps: every process name and money figure is whole (or ends in an ellipsis).
        for token in re.split(r"[\s,;()]+", screen):
            if token.startswith("worker."):
                assert token in ("worker.breakout", "worker.ibs_a", "worker.ibs_b") or token.endswith("…"), token
        assert not re.search(r"^(t|akout|s_a)\b", screen, re.M)  # no continuation of a wrapped cell
        if w == 200:
            assert re.search(r"^worker\.ibs_a\s+RUNNING\s+4242\s+4m\d\ds\s+1\s+\d+s\s+live$", screen, re.M)
    finally:
        subprocess.run(["tmux", "-L", session, "kill-server"], capture_output=True)
