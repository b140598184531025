"""Worker faults under a real `multialpha up` (sandbox, managed Redis, hub, 2 workers, LIVE orders
to a loopback receiver), each compared with the session's fault-free reference run
(tests/e2e/up_rig.py): same bars, same orders, none duplicated, none lost.

- kill -9 of a worker mid-replay: the supervisor restarts it; it catches up from the bar log (the
  3 sim-minutes it missed are replayed and traded: trade_replayed_bars is on in the rig) and the
  gate's order-id claims stop the orders it had already sent from going out again.
- SIGSTOP of a worker: its heartbeat goes stale, the supervisor's watchdog SIGTERMs it (pending on a
  stopped process), SIGKILLs it after stop_timeout_s and starts a new one, which catches up.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest

from tests.e2e import up_rig as R

pytestmark = pytest.mark.slow


def _event(run: R.UpRun, component: str, needle: str) -> list[dict[str, str]]:
    assert run.client is not None
    return [f for _, f in run.client.xrange(run.keys.events())
            if f.get("component") == component and needle in f.get("message", "")]


def test_kill_9_worker(up_base, up_cache, up_reference) -> None:
    run = R.new_run(up_base, "kill-worker", up_cache)
    try:
        run.begin()
        run.settle(R.FAULT_AT)
        old = run.children()["worker.sma_a"]["pid"]
        sent_before = sum(run.rx.delivered().values())
        assert sent_before > 0, "no order before the fault: the scenario would prove nothing"
        os.kill(old, signal.SIGKILL)
        t = time.monotonic()
        run.advance_to(R.FAULT_AT + timedelta(minutes=3))  # bars keep coming while it is down
        R.poll("worker.sma_a restarted", lambda: (run.children().get("worker.sma_a") or {}).get("pid") not in (None, old),
               context=run.tail)
        R.poll("restarted worker LIVE and caught up", run.drained, context=run.tail)
        rec = time.monotonic() - t
        kid = run.children()["worker.sma_a"]
        assert kid["restarts"] == 1 and run.children()["worker.sma_b"]["restarts"] == 0
        assert _event(run, "worker.sma_a", "exited with code -9")
        out = run.finish("kill -9 worker")
        out.recovery_s = rec
        full = run.journal()
        # The restarted worker replayed the 3 missed minutes from the bar log (counted as replayed).
        assert out.workers["sma_a"]["replayed"] > 0, out.workers["sma_a"]
    finally:
        run.stop()
        run.rx.down()
    R.check("kill -9 worker (down 3 sim-min)", up_reference, out, full)


def test_sigstop_worker(up_base, up_cache, up_reference) -> None:
    run = R.new_run(up_base, "sigstop-worker", up_cache)
    old = 0
    try:
        run.begin()
        run.settle(R.FAULT_AT)
        old = run.children()["worker.sma_b"]["pid"]
        os.kill(old, signal.SIGSTOP)
        t = time.monotonic()
        run.advance_to(R.FAULT_AT + timedelta(seconds=60))  # stopped for 60 sim-s, and ...
        # ... until the watchdog acts: supervisor.heartbeat_timeout_s (15 wall s in the rig), then
        # SIGTERM (stays pending on a stopped process) and SIGKILL after stop_timeout_s (3 s).
        R.poll("watchdog restarts the stopped worker",
               lambda: (run.children().get("worker.sma_b") or {}).get("pid") not in (None, old), context=run.tail)
        assert _event(run, "worker.sma_b", "heartbeat stale"), "the restart was not the heartbeat watchdog's"
        assert _event(run, "worker.sma_b", "SIGKILL"), "a stopped process only goes away with SIGKILL"
        R.poll("stopped worker gone", lambda: not R.alive(old))
        R.poll("new worker LIVE and caught up", run.drained, context=run.tail)
        rec = time.monotonic() - t
        assert run.children()["worker.sma_a"]["restarts"] == 0
        out = run.finish("sigstop worker")
        out.recovery_s = rec
        full = run.journal()
    finally:
        if old and R.alive(old):
            os.kill(old, signal.SIGCONT)
        run.stop()
        run.rx.down()
    R.check("SIGSTOP worker (watchdog, 60 sim-s)", up_reference, out, full)


