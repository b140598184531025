"""Multi-host: the hub on one "host", a worker on another, one Redis with a password between them.

Two Linux network namespaces joined by a veth pair with addresses of a private /30 created here;
nothing is routed anywhere else. Host A runs redis-server (bound to A's veth address, requirepass),
the sandbox gateways (bound to the same address, so B can warm up from Historical over TLS) and
`multialpha up --only hub`; host B runs `multialpha up --only ibs_a`. Each `up` gets its own UTS
namespace (hostname), as two machines would. The test then reads `multialpha status --json` from B:
the worker on B is LIVE and receiving the bars that the hub on A publishes.

Needs root (CAP_NET_ADMIN) and iproute2; skips with the reason if namespaces cannot be created.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, SHIPPED_CONFIG

pytestmark = pytest.mark.slow
DEADLINE_S = 180.0  # polling bound, not a timing assertion
SUBNET = 213  # 10.213.<n>.0/30, private; n from the pid so parallel runs do not collide


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True)


@pytest.fixture
def two_hosts():
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (`ip`) is not installed")
    n = os.getpid() % 250 + 1
    a, b = f"ma-a-{os.getpid()}", f"ma-b-{os.getpid()}"
    probe = _ip("netns", "add", a)
    if probe.returncode:
        pytest.skip(f"cannot create network namespaces here: {probe.stderr.strip()}")
    try:
        _ip("netns", "add", b).check_returncode()
        va, vb = f"vma{n}a", f"vma{n}b"
        for cmd in (
            ["link", "add", va, "type", "veth", "peer", "name", vb],
            ["link", "set", va, "netns", a],
            ["link", "set", vb, "netns", b],
            ["-n", a, "addr", "add", f"10.{SUBNET}.{n}.1/30", "dev", va],
            ["-n", b, "addr", "add", f"10.{SUBNET}.{n}.2/30", "dev", vb],
            ["-n", a, "link", "set", va, "up"], ["-n", b, "link", "set", vb, "up"],
            ["-n", a, "link", "set", "lo", "up"], ["-n", b, "link", "set", "lo", "up"],
        ):
            _ip(*cmd).check_returncode()
        yield a, b, f"10.{SUBNET}.{n}.1"
    finally:
        _ip("netns", "del", a)
        _ip("netns", "del", b)


def _in(ns: str, hostname: str | None = None) -> list[str]:
    """Run in namespace ``ns`` (and, for a supervisor, its own UTS namespace = its own host name)."""
    pre = ["ip", "netns", "exec", ns]
    if hostname:
        pre += ["unshare", "--uts", "sh", "-c", f'hostname {hostname} && exec "$@"', "sh"]
    return pre


def _config(tmp: Path) -> Path:
    doc = yaml.safe_load(SHIPPED_CONFIG.read_text())
    doc["contract_map_path"] = str(REPO / "Data" / "Databento_contract_map.yml")
    doc["models_path"] = str(REPO / "models")
    doc["databento"]["historical_gateway"] = "auto"
    path = tmp / "config.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_hub_and_worker_on_two_hosts_share_one_redis(two_hosts, tmp_path: Path) -> None:
    ns_a, ns_b, addr = two_hosts
    password = secrets.token_hex(16)
    cfg = _config(tmp_path)
    run_a, run_b = tmp_path / "host-a", tmp_path / "host-b"
    run_a.mkdir()
    run_b.mkdir()
    state = run_a / "sandbox.json"
    (run_b / "sandbox.json").symlink_to(state)  # B finds the gateways that A serves (same address)
    procs: list[subprocess.Popen[bytes]] = []

    def env(run: Path) -> dict[str, str]:
        e = {k: v for k, v in os.environ.items() if not k.startswith("MULTIALPHA")}
        e.pop("DATABENTO_API_KEY", None)
        e.update({"MULTIALPHA_RUNTIME_DIR": str(run), "MULTIALPHA_CACHE_DIR": str(run / "cache"),
                  "MULTIALPHA__REDIS__HOST": addr, "MULTIALPHA__REDIS__PORT": "6379",
                  "MULTIALPHA__REDIS__PASSWORD": password, "PYTHONPATH": str(REPO)})
        return e

    def spawn(cmd: list[str], run: Path, log: str) -> subprocess.Popen[bytes]:
        out = (run / log).open("wb")
        p = subprocess.Popen(cmd, env=env(run), stdout=out, stderr=out, cwd=REPO, start_new_session=True)
        procs.append(p)
        return p

    py = sys.executable
    try:
        # The password in a 0600 config file, never on a command line.
        conf = run_a / "redis.conf"
        conf.touch(mode=0o600)
        conf.write_text(f"bind {addr}\nport 6379\nrequirepass {password}\nsave \"\"\nappendonly no\n"
                        f"protected-mode yes\ndir {run_a}\n")
        spawn(_in(ns_a) + ["redis-server", str(conf)], run_a, "redis.log")
        spawn(_in(ns_a) + [py, "-m", "tests.multihost.sandbox_host", str(cfg), addr, str(state),
                           "2025-12-02T14:55:00Z", "30"], run_a, "sandbox.log")
        _wait_for(lambda: state.exists(), "sandbox state file", run_a)
        spawn(_in(ns_a, "host-a") + [py, "-m", "multialpha", "--config", str(cfg), "up", "--only", "hub"],
              run_a, "up.log")
        spawn(_in(ns_b, "host-b") + [py, "-m", "multialpha", "--config", str(cfg), "up", "--only", "ibs_a"],
              run_b, "up.log")

        def status() -> dict | None:
            out = subprocess.run(_in(ns_b) + [py, "-m", "multialpha", "--config", str(cfg), "status", "--json"],
                                 env=env(run_b), capture_output=True, text=True, timeout=60)
            return json.loads(out.stdout) if out.stdout.startswith("{") and '"error"' not in out.stdout[:20] else None

        def flowing() -> bool:
            doc = status()
            if not doc:
                return False
            strat = {s["name"]: s for s in doc.get("strategies", [])}
            bars = [s for s in doc.get("symbols", []) if s.get("last_bar")]
            return strat.get("ibs_a", {}).get("state") == "LIVE" and len(bars) >= 3

        _wait_for(flowing, "worker on host B LIVE with bars from the hub on host A", run_a, run_b)
        doc = status()
        assert doc is not None
        names = {p["name"] for p in doc.get("processes", [])}
        assert {"hub", "worker.ibs_a"} <= names, names
        # And from host A's side: host B's worker heartbeat counts bars it received across the veth.
        beat = subprocess.run(_in(ns_a) + ["redis-cli", "-h", addr, "-p", "6379", "--no-auth-warning",
                                           "HGET", "multialpha:hb:worker.ibs_a", "bars"], capture_output=True, text=True,
                              env={**os.environ, "REDISCLI_AUTH": password})
        assert int(beat.stdout.strip() or 0) > 0, beat
        refused = subprocess.run(_in(ns_b) + ["redis-cli", "-h", addr, "-p", "6379", "PING"], capture_output=True,
                                 text=True)
        assert "NOAUTH" in refused.stdout + refused.stderr  # the shared Redis really requires the password
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)


def _wait_for(cond, what: str, *runs: Path) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(1.0)
    tails = []
    for run in runs:
        for f in sorted(run.rglob("*.log")):
            tails.append(f"--- {f}\n{f.read_text(errors='replace')[-1500:]}")
    pytest.fail(f"timed out waiting for {what}\n" + "\n".join(tails))
