"""Supervisor-level faults under a real `multialpha up`, compared with the session's reference run
(tests/e2e/up_rig.py):

- kill -9 of the supervisor while bars and orders are in flight: every child (sandbox, hub,
  workers, the managed redis-server) dies with it through PR_SET_PDEATHSIG, no process is left;
  `up` again resumes from the persisted Redis (AOF in <runtime>/redis): no bar missing, no order
  sent twice (order ids are deterministic and the gate's claims survived), an order whose outcome
  was never written is flagged for review, never re-sent (the test then resolves it as the
  operator would, tests/e2e/review.py, so the later orders can equal the reference's);
- kill -9 of the managed Redis: the supervisor restarts it on the same port and data dir, the
  journal and the bar log written before the kill are still there, trading resumes;
- disk full for the log dir (a small tmpfs; root only): the processes keep trading, the
  supervisor says so once on stderr, in its heartbeat and in `status --json` errors, and again
  when the disk has room.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from multialpha import runtime
from multialpha.supervisor import redis_setup
from tests.e2e import review
from tests.e2e import up_rig as R

pytestmark = pytest.mark.slow


def _leftovers(marker: str) -> list[str]:
    """Live processes whose command line or environment names this run's directory."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            blob = (d / "cmdline").read_bytes() + (d / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in blob and R.alive(int(d.name)):
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ")[:200]
            out.append(f"{d.name}: {cmd!r}")
    return out


def test_kill_9_supervisor_then_up_again(up_base, up_cache, up_reference) -> None:
    run = R.new_run(up_base, "kill-supervisor", up_cache)
    try:
        run.begin()
        run.settle(R.FAULT_AT - timedelta(minutes=1))
        run.advance_to(R.FAULT_AT)  # and kill at once: bars and orders of the last minute in flight
        kids = {n: k["pid"] for n, k in run.children().items() if k.get("pid")}
        redis_pid = json.loads(redis_setup.state_path(run.settings).read_text())["pid"]
        pids = [*kids.values(), redis_pid]
        assert len(kids) == 4 and all(R.alive(p) for p in pids), kids
        old_state = json.loads(run.state_file.read_text())
        before = run.journal()  # acknowledged by Redis: must survive its SIGKILL (AOF)
        assert run.up is not None
        os.kill(run.up.pid, signal.SIGKILL)
        run.up.wait(10)
        R.poll("every child gone with the supervisor", lambda: not any(R.alive(p) for p in pids), timeout=30)
        assert _leftovers(str(run.tmp)) == [], "orphans after kill -9 of the supervisor"
        # `up` again, same runtime dir: a fresh sandbox starts at the first session open; put its
        # clock back where the killed one was.
        t = time.monotonic()
        run.start_up()
        def new_sandbox() -> bool:
            try:  # the new `up` deletes the old state file, then the new sandbox writes its own
                return json.loads(run.state_file.read_text()) != old_state
            except (OSError, ValueError):
                return False

        R.poll("a new sandbox", new_sandbox, context=run.tail)
        run.set_clock(run.clock)
        run.connect()
        after = {e["id"]: e for e in run.journal()}
        assert all(after.get(e["id"]) == e for e in before), "journal entries lost with the supervisor"
        run.wait_live()
        R.poll("resumed and caught up", lambda: run.hub_settled(R.FAULT_AT - timedelta(seconds=31)) and run.drained(),
               context=run.tail)
        rec = time.monotonic() - t
        # An order the kill caught in flight is `unresolved`; an exit's position stays and its
        # strategy is reduce-only until an operator resolves it (fail closed). Play that operator
        # (tests/e2e/review.py) before the clock moves on, or every later entry of that strategy
        # is refused and the orders cannot equal the reference's.
        R.poll("restarted workers' orders settled", run.orders_settled, context=run.tail)
        resolved = review.resolve_reviews(run)
        out = run.finish("kill -9 supervisor")
        out.recovery_s = rec
        out.notes.append(f"resolved by the operator: {resolved}")
        full = run.journal()
    finally:
        run.stop()
        run.rx.down()
    assert _leftovers(str(run.tmp)) == []
    # In-flight orders whose outcome the kill prevented are flagged (unresolved), never re-sent.
    R.check("kill -9 supervisor, `up` again", up_reference, out, full, allow_flagged=4)


def test_kill_9_managed_redis(up_base, up_cache, up_reference) -> None:
    run = R.new_run(up_base, "kill-redis", up_cache)
    try:
        run.begin()
        run.settle(R.FAULT_AT)
        assert run.client is not None
        before = run.journal()
        bars_before = {r: len(b) for r, b in run.bars().items()}
        assert len(R.intents(before)) > 0
        # The managed Redis of `up` persists (append-only file under the runtime dir).
        assert run.client.config_get("appendonly") == {"appendonly": "yes"}
        assert run.client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert Path(run.client.config_get("dir")["dir"]) == runtime.runtime_dir(run.settings) / "redis"
        pid = json.loads(redis_setup.state_path(run.settings).read_text())["pid"]
        os.kill(pid, signal.SIGKILL)
        t = time.monotonic()
        run.advance_to(R.FAULT_AT + timedelta(minutes=2))  # the hub keeps building bars meanwhile
        R.poll("managed Redis restarted", lambda: run.client.ping(), context=run.tail)
        # Everything journaled before the kill survived the restart (AOF, appendfsync everysec).
        after = {e["id"]: e for e in run.journal()}
        assert all(after.get(e["id"]) == e for e in before), "journal entries lost with the kill"
        assert all(len(run.bars()[r]) >= n for r, n in bars_before.items())
        R.poll("trading resumed and caught up", lambda: run.hub_settled(R.FAULT_AT + timedelta(seconds=89))
               and run.drained(), context=run.tail)
        rec = time.monotonic() - t
        assert "managed redis-server exited" in run.err_path.read_text(errors="replace")
        out = run.finish("kill -9 managed Redis")
        out.recovery_s = rec
        full = run.journal()
    finally:
        run.stop()
        run.rx.down()
    R.check("kill -9 managed Redis (AOF)", up_reference, out, full)


def _fill(filler: Path, logs_dir: Path) -> None:
    """Fill the file system: a big file, then the slack in the last page of every log file (tmpfs
    allocates pages: a file with room left in its page would go on taking short lines)."""
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    for log in logs_dir.glob("*.log"):
        fd = os.open(log, os.O_WRONLY | os.O_APPEND)
        try:
            while os.write(fd, b"\n" * 64):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)


def _status(run: R.UpRun) -> dict:
    p = subprocess.run([sys.executable, "-m", "multialpha", "--config", str(run.cfg), "status", "--json"],
                       env=run.env, capture_output=True, text=True, timeout=60)
    return json.loads(p.stdout) if p.stdout.startswith("{") else {}


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs as a full disk needs root (CI runs as root)")
def test_disk_full_log_dir(up_base, up_cache, up_reference) -> None:
    run = R.new_run(up_base, "disk-full", up_cache)
    logs_dir = runtime.runtime_dir(run.settings) / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(logs_dir)], check=True)
    filler = logs_dir / "filler"
    try:
        run.begin()
        run.settle(R.FAULT_AT)
        intents_before = len(R.intents(run.journal()))
        _fill(filler, logs_dir)
        t = time.monotonic()
        run.advance_to(R.FAULT_AT + timedelta(minutes=5))  # keeps trading, logs cannot be written
        R.poll("supervisor reports the full disk", lambda: "cannot write log file" in json.dumps(
            (run.hb("supervisor") or {}).get("last_error", "")), context=run.tail)
        rec = time.monotonic() - t
        doc = _status(run)
        assert any("cannot write log file" in e["message"] for e in doc.get("errors", [])), doc.get("errors")
        R.poll("orders kept flowing", lambda: len(R.intents(run.journal())) > intents_before and run.orders_settled())
        err = run.err_path.read_text(errors="replace")
        # Said once per file, not a traceback per line.
        reports = Counter(ln.split("cannot write log file ")[1].split(" (")[0]
                          for ln in err.splitlines() if "cannot write log file" in ln)
        assert reports and all(n == 1 for n in reports.values()), reports
        lost = sum(d["lost"] for d in (run.hb("supervisor") or {}).get("log_write_failures", {}).values())
        assert lost > len(reports), "more lines were lost than reported: reported once, counted after"
        filler.unlink()  # room again: the next lines are written, and that is said too
        run.advance_to(R.T0 + R.RANGE)  # log lines come with orders: every worker trades again by then
        R.poll("log files writable again", lambda: not (run.hb("supervisor") or {}).get("log_write_failures"),
               context=run.tail)
        assert "writable again" in run.err_path.read_text(errors="replace")
        out = run.finish("disk full")
        out.recovery_s = rec
        out.notes.append(f"'--- Logging error ---' tracebacks on stderr: {err.count('--- Logging error ---')}")
        full = run.journal()
    finally:
        run.stop()
        run.rx.down()
        subprocess.run(["umount", "-l", str(logs_dir)], check=False)
    R.check("disk full on the log dir (5 sim-min)", up_reference, out, full)
    assert err.count("--- Logging error ---") == 0, out.notes
