"""Benchmark: `multialpha up` on the sandbox -> every worker LIVE (goal: <= 8 s on 2 cores).

Runs the real CLI against a fresh runtime dir and a managed Redis, polls
Redis (the supervisor and component heartbeats, the bar logs) and prints when
each milestone was reached. Baseline measured in the same run: the start of a
bare `multialpha --version` process (the import floor every child pays).

It also prints every child's RSS at the moment all workers are LIVE (goals: worker
<= 150 MB cold and warm, hub <= 120 MB, sandbox <= 150 MB) beside the RSS floor
measured in the same run: a bare python importing the worker's third-party
libraries (numpy, redis, backtrader, databento_dbn) and none of our code.

If the hub or the worker has not landed yet, or a component fails, it says
which and shows the tail of that component's log instead of a number.

It also prints every process's CPU seconds at that moment (the supervisor's too): their sum
over the wall time says whether the start was CPU-bound on the box's cores or waited.
``--timeline`` prints every process's start-up milestones from the logs on one clock (the
workers' ``startup phases`` line included); ``--store DIR`` starts every run with a sandbox
store that ``multialpha sandbox --precompute`` filled (what ``make demo`` sets up).

    .venv/bin/python bench/up_to_live.py [--timeout 60] [--runs 1] [--store DIR] [--timeline]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config.multi_alpha.yml"
sys.path.insert(0, str(REPO))

from multialpha import heartbeat as hb  # noqa: E402
from multialpha.keys import Keys  # noqa: E402
from multialpha.managed_redis import free_port  # noqa: E402

KEYS = Keys("multialpha")


def baseline() -> float:
    t = time.monotonic()
    subprocess.run([sys.executable, "-m", "multialpha", "--version"], check=True, capture_output=True)
    return time.monotonic() - t


FLOOR_IMPORTS = "import numpy, redis, backtrader, databento_dbn"


def floor_rss() -> float:
    """RSS (MB) of a bare python holding the worker's third-party imports, nothing of ours."""
    code = FLOOR_IMPORTS + "; import re; print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read())[1])"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return int(out) / 1024


def rss_line(rss: dict[str, float | None], floor: float) -> str:
    parts = [f"{k} {v:.0f}" if v is not None else f"{k} ?" for k, v in sorted(rss.items())]
    return "RSS MB at all LIVE: " + ", ".join(parts) + f" (floor: bare python + worker libs {floor:.0f} MB)"


def cpu_line(cpu: dict[str, float | None], wall: float) -> str:
    parts = [f"{k} {v:.2f}" if v is not None else f"{k} ?" for k, v in sorted(cpu.items())]
    total = sum(v for v in cpu.values() if v is not None)
    return (f"CPU s at all LIVE: " + ", ".join(parts) + f"; sum {total:.2f} s = {total / wall:.2f} cores busy "
            f"on average over {wall:.2f} s (this box: {os.cpu_count()} cores)")


def rss_mb(pid: int) -> float | None:
    try:
        m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
        return int(m.group(1)) / 1024 if m else None
    except OSError:
        return None


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` so far (/proc/PID/stat fields 14 and 15), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def one_run(timeout: float, config: Path = CONFIG, cache: Path | None = None,
            rss: dict[str, float | None] | None = None, store: Path | None = None,
            keep_logs: Path | None = None, cpu: dict[str, float | None] | None = None) -> float | None:
    """Seconds from `up` to every worker LIVE, or None (with the reason printed).

    ``cache``: a warmup cache dir kept across runs (a restart's case); None = cold.
    ``store``: the sandbox's store of generated hourly bars (sandbox.store_dir); None = an empty one.
    ``rss``: filled with each child's RSS (MB) at the moment all workers are LIVE.
    ``keep_logs``: the run's log directory is copied there (``--timeline`` reads it).
    ``cpu``: filled with each process's CPU seconds at that moment (the supervisor's too): with
    the wall time it says whether the start was CPU-bound on the box's cores or waited."""
    tmp = Path(tempfile.mkdtemp(prefix="ma-bench-"))
    env = {**os.environ, "MULTIALPHA_RUNTIME_DIR": str(tmp / "run"), "MULTIALPHA_CACHE_DIR": str(cache or tmp / "cache"),
           "MULTIALPHA__REDIS__PORT": str(free_port()), "DATABENTO_API_KEY": "",
           "MULTIALPHA_SANDBOX_STORE": str(store or tmp / "store")}
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "multialpha", "--config", str(config), "up"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    marks: dict[str, float] = {}
    state_file = tmp / "run" / "managed_redis.json"
    client = None
    verdict = "timeout"
    try:
        while time.monotonic() - t0 < timeout:
            if proc.poll() is not None:
                verdict = f"`up` exited with {proc.returncode}"
                break
            if client is None and state_file.exists():
                st = json.loads(state_file.read_text())
                client = redis.Redis(host=st["host"], port=st["port"], password=st["password"], decode_responses=True)
                marks.setdefault("redis up", time.monotonic() - t0)
            if client is not None:
                beats = hb.read_all(client, KEYS)
                children = (beats.get("supervisor") or {}).get("children") or {}
                failed = [n for n, c in children.items() if c.get("state") == "failed"]
                if failed:
                    verdict = f"failed: {', '.join(failed)}"
                    break
                for name, c in children.items():
                    if c.get("state") == "running":
                        marks.setdefault(f"{name} running", time.monotonic() - t0)
                for name, b in beats.items():
                    if name.startswith("worker.") and str(b.get("state")).lower() == "live":
                        marks.setdefault(f"{name} LIVE", time.monotonic() - t0)
                workers = [n for n in children if n.startswith("worker.")]
                if workers and all(f"{w} LIVE" in marks for w in workers):
                    marks["ALL LIVE"] = time.monotonic() - t0
                    verdict = "ok"
                    if rss is not None:
                        rss.update({n: rss_mb(int(c.get("pid") or 0)) for n, c in children.items()})
                    if cpu is not None:
                        cpu.update({n: cpu_s(int(c.get("pid") or 0)) for n, c in children.items()})
                        cpu["supervisor"] = cpu_s(proc.pid)
                    break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    for k, v in sorted(marks.items(), key=lambda kv: kv[1]):
        print(f"  {v:7.2f} s  {k}")
    if verdict != "ok":
        print(f"  NOT LIVE: {verdict}")
        logs = tmp / "run" / "logs"
        for f in sorted(logs.glob("*.log")):
            text = f.read_text(errors="replace")
            last = text.strip().splitlines()[-1] if text.strip() else ""
            if "not implemented yet" in last:
                print(f"  {f.stem}: not landed yet ({last})")
            elif f.stem != "supervisor" and any(w in text for w in ("Error", "error", "Traceback")):
                print(f"  --- {f.stem} (last lines) ---")
                for line in text.strip().splitlines()[-6:]:
                    print(f"    {line}")
    if keep_logs is not None:
        shutil.copytree(tmp / "run" / "logs", keep_logs, dirs_exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return marks["ALL LIVE"] if verdict == "ok" else None


# Log lines that mark a start-up milestone (the rest of a log is left out of the timeline).
MILESTONES = re.compile(r"started pid|starting:|redis:|sandbox up|session \d+ connected|first bar|startup phases|"
                        r"LIVE after|warmup:|waiting for the sandbox")
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z\s+\w+\s+(\S+?)\[\d+\]\s+(.*)$")


def timeline(log_dir: Path) -> None:
    """Every process's milestones (log timestamps, UTC) on one clock: seconds after the first line."""
    from datetime import datetime

    rows: list[tuple[datetime, str, str]] = []
    for f in sorted(log_dir.glob("*.log")):
        for line in f.read_text(errors="replace").splitlines():
            m = STAMP.match(line)
            if m and MILESTONES.search(m.group(3)):
                rows.append((datetime.fromisoformat(m.group(1)), m.group(2), m.group(3)[:260]))
    rows.sort()
    for t, who, what in rows:
        print(f"    +{(t - rows[0][0]).total_seconds():6.2f} s  {who:<18} {what}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--runs", type=int, default=3,
                    help="run 1: empty sandbox store and warmup caches; run 2: the store run 1 filled, empty caches "
                         "(a first `up` after `make demo`'s precompute); later runs: both kept")
    ap.add_argument("--config", type=Path, default=CONFIG, help="config to start (default: the shipped one)")
    ap.add_argument("--store", type=Path, default=None,
                    help="a sandbox store to use as it is (e.g. one `multialpha sandbox --precompute` filled): every "
                         "run then starts with it filled (runs 1-2: warmup caches empty; later runs: kept)")
    ap.add_argument("--timeline", action="store_true",
                    help="after each run, every process's milestones from its log, on one clock")
    a = ap.parse_args()
    base = baseline()
    floor = floor_rss()
    print(f"baseline: bare `multialpha --version` process {base:.2f} s; RSS floor ({FLOOR_IMPORTS}) {floor:.0f} MB")
    rc = 0
    keep = Path(tempfile.mkdtemp(prefix="ma-bench-cache-"))
    store = a.store or keep / "sandbox-store"
    for i in range(a.runs):
        cache = keep / f"cache-{min(i, 1)}"  # run 3 on reuses the cache run 2 filled
        first = "sandbox store empty" if a.store is None else "the given sandbox store"
        second = "sandbox store filled by run 1" if a.store is None else "the given sandbox store"
        what = [f"{first}, warmup caches empty", f"{second}, warmup caches empty",
                "sandbox store and warmup caches kept"][min(i, 2)]
        print(f"run {i + 1}: `multialpha up` (sandbox, managed Redis; {what})")
        rss: dict[str, float | None] = {}
        cpu: dict[str, float | None] = {}
        logs = Path(tempfile.mkdtemp(prefix="ma-bench-logs-")) if a.timeline else None
        live = one_run(a.timeout, a.config, cache, rss, store, logs, cpu)
        if logs is not None:
            timeline(logs)
            shutil.rmtree(logs, ignore_errors=True)
        if live is None:
            rc = 1
        else:
            print(f"  -> up to all LIVE {live:.2f} s; ratio to baseline {live / base:.1f}x (goal <= 8 s)")
            print(f"  {rss_line(rss, floor)}")
            print(f"  {cpu_line(cpu, live)}")
    shutil.rmtree(keep, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
