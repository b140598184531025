"""`multialpha up` end to end on the sandbox: real Redis, sandbox, hub and workers.

One run covers the issue's scenarios in sequence (starting the whole system
is the expensive part): every worker reaches LIVE with bars flowing in
`status --json`; a worker that crashes at start backs off and is marked
failed while the rest keep running; kill -9 of a live worker restarts only
that worker; SIGTERM to `up` leaves no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import redis
import yaml

from multialpha import config
from multialpha.managed_redis import free_port
from multialpha.status.collect import Status
from multialpha.supervisor.redis_address import connect
from tests.conftest import REPO, SHIPPED_CONFIG

DEADLINE_S = 180.0  # generous: 2 shared cores; this is a bound, not a timing assertion


def _config(tmp: Path) -> Path:
    doc = yaml.safe_load(SHIPPED_CONFIG.read_text())
    # A strategy whose parameters are invalid: its worker crashes at start, every time.
    doc["strategies"]["ibs_bad"] = {
        "strategy_type": "ibs",
        "params": {"entry_ibs": 0.9, "exit_ibs": 0.1},
        "instruments": {"ES": {"size": 1}},
    }
    doc["contract_map_path"] = str(REPO / "Data" / "Databento_contract_map.yml")
    doc["models_path"] = str(REPO / "models")
    path = tmp / "config.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _env(tmp: Path, store: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MULTIALPHA")}
    env.update({
        "MULTIALPHA_RUNTIME_DIR": str(tmp / "run"),
        "MULTIALPHA_CACHE_DIR": str(tmp / "cache"),
        "MULTIALPHA__REDIS__PORT": str(free_port()),   # nothing answers there: `up` manages a Redis
        "MULTIALPHA__SANDBOX__SPEED": "120",
        "MULTIALPHA__SANDBOX__STORE_DIR": str(store),  # warm after the run's first `up` (conftest.py)
        "MULTIALPHA__SUPERVISOR__BACKOFF_INITIAL_S": "0.2",
        "MULTIALPHA__SUPERVISOR__BACKOFF_MAX_S": "0.5",
        "MULTIALPHA__SUPERVISOR__FLAP_RESTARTS": "3",
        "MULTIALPHA__SUPERVISOR__FLAP_WINDOW_S": "120",
        "MULTIALPHA__HUB__HEALTH_PORT": str(free_port()),
        "MULTIALPHA__WORKER__HEALTH_PORT_BASE": str(free_port()),
    })
    env.pop("DATABENTO_API_KEY", None)
    return env


def _status(cfg: Path, env: dict[str, str]) -> dict[str, Any] | None:
    """The real `status --json` subprocess (its own interpreter, config load and Redis lookup)."""
    out = subprocess.run([sys.executable, "-m", "multialpha", "--config", str(cfg), "status", "--json"],
                         env=env, capture_output=True, text=True, timeout=60)
    if not out.stdout.startswith("{"):
        return None
    doc = json.loads(out.stdout)
    return None if "error" in doc else doc  # e.g. Redis not up yet


class _Poller:
    """The document `status --json` prints, built in this process: the same config load (``env``),
    Redis lookup (:func:`connect`) and :class:`Status` the command runs. Polling through a subprocess
    cost ~0.3 s of CPU per poll (interpreter + imports) for nothing this test asserts; the CLI itself
    is still run once (:func:`_status`) and compared, and `status` is also run in tmux."""

    def __init__(self, cfg: Path, env: dict[str, str]) -> None:
        self.settings, self.env = config.load(cfg, environ=env), env
        self.status: Status | None = None

    def __call__(self) -> dict[str, Any] | None:
        try:
            if self.status is None:
                self.status = Status(self.settings, connect(self.settings, environ=self.env), environ=self.env)
            return json.loads(json.dumps(self.status()))  # exactly what the command would print
        except redis.RedisError:
            return None  # Redis not up yet

    def close(self) -> None:
        if self.status is not None:
            self.status.collector.client.close()


def _wait(what: str, cond: Callable[[dict[str, Any]], bool], poll: _Poller) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE_S
    doc: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        doc = poll()
        if doc is not None and cond(doc):
            return doc
        time.sleep(1.0)
    pytest.fail(f"timed out waiting for {what}; last status: {json.dumps(doc)[:3000]}")


def _procs(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in doc["processes"]}


def _get(port: int, path: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_up_end_to_end(tmp_path: Path, sandbox_store: Path) -> None:
    cfg, env = _config(tmp_path), _env(tmp_path, sandbox_store)
    up = subprocess.Popen([sys.executable, "-m", "multialpha", "--config", str(cfg), "up"], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    seen_pids: set[int] = set()
    poll = _Poller(cfg, env)
    try:
        good = ("worker.ibs_a", "worker.ibs_b", "worker.breakout")

        def all_live(doc: dict[str, Any]) -> bool:
            strat = {s["name"]: s["state"] for s in doc["strategies"]}
            bars = [s for s in doc["symbols"] if s["last_bar"]]
            return all(strat.get(n.split(".")[1]) == "LIVE" for n in good) and len(bars) >= 15

        _wait("every worker LIVE with bars flowing", all_live, poll)
        doc = _status(cfg, env)  # the command itself says so too
        assert doc is not None and all_live(doc), json.dumps(doc)[:3000]
        _status_in_tmux(cfg, env)
        procs = _procs(doc)
        assert procs["hub"]["state"] == "running" and procs["sandbox"]["state"] == "running"
        assert doc["order_mode"]["summary"] == "paper"

        # Each process serves /healthz and Prometheus /metrics on its configured loopback port.
        hub_port = int(env["MULTIALPHA__HUB__HEALTH_PORT"])
        ibs_a_port = int(env["MULTIALPHA__WORKER__HEALTH_PORT_BASE"])  # ibs_a is the first strategy
        for port, component, counter in ((hub_port, "hub", "multialpha_bars_total"),
                                         (ibs_a_port, "worker.ibs_a", "multialpha_bars_total")):
            assert _get(port, "/healthz")[0] == 200, component
            status, body = _get(port, "/metrics")
            line = next(x for x in body.splitlines() if x.startswith(f'{counter}{{component="{component}"}}'))
            assert status == 200 and float(line.split()[-1]) > 0, line

        # The crashing worker: restarted with backoff, then failed; nobody else was touched.
        doc = _wait("ibs_bad marked failed", lambda d: _procs(d)["worker.ibs_bad"]["state"] == "failed", poll)
        procs = _procs(doc)
        assert procs["worker.ibs_bad"]["restarts"] >= 2
        before = {n: procs[n]["pid"] for n in ("hub", *good)}
        assert all(procs[n]["restarts"] == 0 for n in before)
        seen_pids.update(p for p in before.values() if p)

        # kill -9 a live worker: only it restarts, and it comes back LIVE.
        os.kill(before["worker.ibs_b"], signal.SIGKILL)

        def ibs_b_back(d: dict[str, Any]) -> bool:
            p = _procs(d)["worker.ibs_b"]
            strat = {s["name"]: s["state"] for s in d["strategies"]}
            return p["pid"] not in (None, before["worker.ibs_b"]) and p["restarts"] == 1 and strat["ibs_b"] == "LIVE"

        doc = _wait("worker.ibs_b restarted and LIVE", ibs_b_back, poll)
        procs = _procs(doc)
        seen_pids.add(procs["worker.ibs_b"]["pid"])
        for n in ("hub", "worker.ibs_a", "worker.breakout"):
            assert procs[n]["pid"] == before[n] and procs[n]["restarts"] == 0, n
    finally:
        poll.close()
        up.send_signal(signal.SIGTERM)
        try:
            code = up.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            raise
    assert code == 0
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in seen_pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in seen_pids if _alive(p)], "processes left behind after SIGTERM"


def _status_in_tmux(cfg: Path, env: dict[str, str]) -> None:
    """`multialpha status` against this running `up`, in real 80x24 and 200x50 terminals: the state
    line comes first, every strategy's row (positions, P&L today) and the TOTAL are on the first
    screen, and nothing is wider or taller than the terminal."""
    import re
    import uuid

    exports = " ".join(f"{k}={v}" for k, v in env.items() if k.startswith("MULTIALPHA"))
    for w, h in ((80, 24), (200, 50)):
        session = f"ma-up-{uuid.uuid4().hex[:8]}"
        cmd = f"env {exports} TERM=xterm-256color {sys.executable} -m multialpha --config {cfg} status"
        subprocess.run(["tmux", "-L", session, "new-session", "-d", "-s", session, "-x", str(w), "-y", str(h), cmd],
                       check=True)

        def screen() -> str:
            return subprocess.run(["tmux", "-L", session, "capture-pane", "-p", "-t", session],
                                  capture_output=True, text=True).stdout

        try:
            deadline = time.monotonic() + 30
            while "TOTAL" not in (text := screen()) or (w >= 120 and "trading day" not in text):
                assert time.monotonic() < deadline, f"no status frame at {w}x{h}:\n{text}"
                time.sleep(0.2)
            rows = text.splitlines()
            assert len(rows) <= h and all(len(r) <= w for r in rows), text
            assert re.match(r"^ (OK|WARN|DEGRADED|HALTED)\b", rows[0]), text
            for name in ("ibs_a", "ibs_b", "breakout"):
                assert re.search(rf"^{name}\s+LIVE\s+\d+\s+[-+]?[\d,]+\.\d\d", text, re.M), (name, text)
            assert re.search(r"^TOTAL\s+\d+\s+[-+]?[\d,]+\.\d\d", text, re.M), text
        finally:
            subprocess.run(["tmux", "-L", session, "kill-server"], capture_output=True)
