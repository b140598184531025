"""CPU of the `multialpha status` live view at idle, beside a floor measured in the same run.

A real redis-server is seeded with the state a running deployment writes
(tests/status/realistic.py: heartbeats, bar logs, orders through the real paper
OrderRouter and gate, a veto decision, supervisor events; the market clock pinned
through the sandbox state file). While measuring, a beater refreshes every
heartbeat once a second, as the hub, the workers and the supervisor do (the
supervisor's uptimes grow), so the view sees what an idle deployment looks like.

Measured: `multialpha status` in a tmux pane of each size, CPU time (utime+stime
from /proc) over N seconds after a warm-up. Floor: a process that does nothing but
the view's Redis reads once a second (the same Status object, no layout, no drawing).
``--before DIR`` also measures the code in DIR (e.g. `git archive HEAD multialpha |
tar -x -C DIR`) for a before/after figure.

    .venv/bin/python bench/status_cpu.py [--seconds 30] [--before /tmp/before]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CONFIG = REPO / "config.multi_alpha.yml"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def floor_main() -> None:
    """The floor: the live view's Redis reads, once a second, nothing drawn."""
    from multialpha import cme_time
    from multialpha import config as cfg
    from multialpha.status.collect import Status, market_clock
    from multialpha.supervisor.redis_setup import connect

    s = cfg.load(CONFIG)
    status = Status(s, connect(s))
    while True:
        _, mclock = market_clock(s)
        status.collector.read(cme_time.trading_day(mclock()))
        time.sleep(1.0)


def beater(settings, client, stop: threading.Event) -> None:
    """Refresh every heartbeat once a second, like a running deployment."""
    from multialpha.heartbeat import Heartbeat, read_all
    from multialpha.keys import Keys

    keys = Keys(settings.redis.namespace)
    beats = read_all(client, keys)
    hbs = {n: Heartbeat(client, keys, n, ttl_s=3600) for n in beats}
    t0 = time.monotonic()
    while not stop.wait(1.0):
        for name, doc in beats.items():
            doc = dict(doc)
            for k in ("component", "pid", "host", "started", "updated"):
                doc.pop(k, None)
            state = doc.pop("state", "live")
            if name == "supervisor":
                children = {}
                for c, row in doc["children"].items():
                    row = dict(row)
                    if row.get("uptime_s") is not None:
                        row["uptime_s"] = round(row["uptime_s"] + time.monotonic() - t0, 1)
                    children[c] = row
                doc["children"] = children
            hbs[name].beat(state, **doc)


def measure(cmd: list[str], env: dict[str, str], seconds: float, size: tuple[int, int] | None,
            cwd: Path = REPO, warmup: float = 3.0) -> float:
    """CPU % of one core used by ``cmd`` (in a tmux pane of ``size``, or a plain subprocess)."""
    if size is None:
        p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pid, stop = p.pid, p.terminate
    else:
        session = f"bench-{uuid.uuid4().hex[:8]}"
        exports = " ".join(f"{k}={v}" for k, v in env.items() if k.startswith("MULTIALPHA") or k == "PYTHONPATH")
        line = f"cd {cwd} && exec env {exports} TERM=xterm-256color " + " ".join(cmd)
        out = subprocess.run(["tmux", "new-session", "-d", "-P", "-F", "#{pane_pid}", "-s", session,
                              "-x", str(size[0]), "-y", str(size[1]), line], check=True, capture_output=True,
                             text=True)
        pid = int(out.stdout.strip())
        stop = lambda: subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)  # noqa: E731
    try:
        time.sleep(warmup)  # interpreter start and the first frame are not "idle"
        c0, t0 = cpu_s(pid), time.monotonic()
        time.sleep(seconds)
        c1, t1 = cpu_s(pid), time.monotonic()
        return 100.0 * (c1 - c0) / (t1 - t0)
    finally:
        stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--before", type=Path, help="a directory holding an older multialpha/ package to compare")
    ap.add_argument("--floor-process", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.floor_process:
        floor_main()
        return 0
    if shutil.which("tmux") is None:
        print("tmux is needed", file=sys.stderr)
        return 1
    from multialpha import config as cfg
    from multialpha.managed_redis import ManagedRedis
    from tests.status.realistic import seed

    with tempfile.TemporaryDirectory() as tmp, ManagedRedis() as server:
        env = {**os.environ, "MULTIALPHA__REDIS__HOST": server.host, "MULTIALPHA__REDIS__PORT": str(server.port),
               "MULTIALPHA_RUNTIME_DIR": f"{tmp}/run", "MULTIALPHA_CACHE_DIR": f"{tmp}/cache"}
        settings = cfg.load(CONFIG, environ=env)
        client = server.client(decode_responses=True)
        seed(settings, client)
        stop = threading.Event()
        threading.Thread(target=beater, args=(settings, client, stop), daemon=True).start()
        py = sys.executable
        view = [py, "-m", "multialpha", "--config", str(CONFIG), "status"]
        rows = []
        floor = measure([py, str(Path(__file__).resolve()), "--floor-process"], env, a.seconds, None)
        for size in ((80, 24), (200, 50)):
            rows.append((f"live view {size[0]}x{size[1]}", measure(view, env, a.seconds, size)))
            if a.before:
                benv = {**env, "PYTHONPATH": str(a.before)}
                rows.append((f"  before ({a.before}) {size[0]}x{size[1]}",
                             measure(view, benv, a.seconds, size, cwd=a.before)))
        stop.set()
        print(f"status live view CPU at idle, {a.seconds:g} s each, % of one core")
        print(f"{'floor: the Redis reads alone, 1/s':40s} {floor:6.2f} %")
        for name, v in rows:
            print(f"{name:40s} {v:6.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
