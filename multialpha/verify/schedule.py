"""The supervisor's daily verify: after each CME session close, `multialpha verify` for the day.

A thread of `multialpha up` (never its loop): every ``every_s`` it reads the market clock
(the sandbox's replay clock on the sandbox, else UTC; injected, so tests move it), and when
a trading day's close (16:00 America/Chicago) is ``verify.delay_s`` behind it, runs
``multialpha verify --day D --json`` as a subprocess and waits for it (bounded by
``verify.timeout_s``). The command stores its summary in Redis (``Keys.verify_results``)
for `status`; this thread alerts on a difference or on a day that could not be verified.

Which days: only those the deployment traded from their open — the supervisor was up when the
day's first minute closed. A day `up` joined halfway has a journal that starts halfway; it is
verified by hand if wanted (``multialpha verify --day D``). A day that already has a stored
result (a restarted supervisor) is not run again.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from multialpha import cme_time
from multialpha.keys import Keys

log = logging.getLogger("multialpha.verify")

FIRST_MINUTE = timedelta(minutes=1)  # up by the time the day's first bar closed: it saw the whole day


def first_day(started: datetime) -> date:
    """The first trading day a deployment started at ``started`` (market time) traded from its open."""
    day = cme_time.trading_day(started)
    if started > cme_time.session_bounds(day)[0] + FIRST_MINUTE:
        day = cme_time.next_trading_day(day)
    return day


def due(now: datetime, delay: timedelta, from_day: date, done: set[date]) -> date | None:
    """The day to verify now, or None: the latest day closed ``delay`` ago, if not done and traded whole."""
    day = cme_time.last_closed_day(now - delay)
    if day < from_day or day in done:
        return None
    return day


def verify_argv(python: str, config_path: Path, day: date) -> list[str]:
    return [python, "-m", "multialpha", "--config", str(config_path), "verify", "--day", day.isoformat(), "--json"]


class VerifyAfterClose(threading.Thread):
    """Runs verify for each day that closes while `up` runs (see the module doc)."""

    def __init__(self, settings: Any, client: Any, alerter: Any, clock: Callable[[], datetime | None],
                 argv: Callable[[date], list[str]], env: dict[str, str], every_s: float = 5.0,
                 log_path: Path | None = None) -> None:
        super().__init__(daemon=True, name="verify")
        self.settings, self.client, self.alerter, self.clock = settings, client, alerter, clock
        self.argv, self.env, self.every_s, self.log_path = argv, env, every_s, log_path
        self.keys = Keys(settings.redis.namespace)
        self.halt = threading.Event()
        self.started: datetime | None = None
        self.done: set[date] = set()
        self.proc: subprocess.Popen[str] | None = None
        self.runs: list[tuple[date, int, dict[str, Any]]] = []  # (day, exit code, document): what ran

    def run(self) -> None:
        while not self.halt.wait(self.every_s):
            try:
                self.step()
            except Exception as e:  # noqa: BLE001 - never takes the supervisor down; retried next round
                log.warning("daily verify skipped this round: %s", e)

    def stop(self) -> None:
        self.halt.set()
        p = self.proc
        if p is not None and p.poll() is None:
            p.terminate()  # our own child, by its handle

    def step(self) -> date | None:
        """One look at the clock; runs (and waits for) verify when a day is due. Returns that day."""
        now = self.clock()
        if now is None:
            return None  # no market clock yet (the sandbox has not written its state)
        if self.started is None:
            self.started = now
            log.info("daily verify: from trading day %s on, %ss after each close", first_day(now),
                     self.settings.verify.delay_s)
        day = due(now, timedelta(seconds=self.settings.verify.delay_s), first_day(self.started), self.done)
        if day is None:
            return None
        self.done.add(day)
        if self.client.hexists(self.keys.verify_results(), day.isoformat()):
            return None  # verified before this supervisor started
        self._run(day)
        return day

    def _run(self, day: date) -> None:
        log.info("daily verify of trading day %s", day)
        err = self.log_path.open("a") if self.log_path is not None else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(self.argv(day), env=self.env, stdout=subprocess.PIPE, stderr=err,
                                         text=True, start_new_session=True)
            try:
                out, _ = self.proc.communicate(timeout=self.settings.verify.timeout_s)
                code = self.proc.returncode
            except subprocess.TimeoutExpired:
                self.proc.kill()
                out, _ = self.proc.communicate()
                code = -1
        finally:
            if err is not subprocess.DEVNULL:
                err.close()
            self.proc = None
        try:
            doc = json.loads(out) if out.strip() else {}
        except ValueError:
            doc = {}
        self.runs.append((day, code, doc))
        self._report(day, code, doc)

    def _report(self, day: date, code: int, doc: dict[str, Any]) -> None:
        if self.halt.is_set():
            return  # stopped on purpose mid-run: nothing to report
        if code == 0:
            log.info("verify %s: ok (no difference)", day)
            return
        if code == 1:
            n = len(doc.get("differences") or [])
            msg = (f"verify {day}: {n} difference{'s' if n != 1 else ''} between the journal and the replay, "
                   f"first bar {doc.get('first_bar') or '?'}; see `multialpha verify --day {day}` (docs/RUNBOOK.md)")
            self.alerter.alert(f"verify:{day}", "critical", msg, "verify")
            return
        why = doc.get("error") or ("timed out" if code == -1 else f"exit code {code}")
        if not doc:  # the command never reached Redis (or died): say so in status as well
            from multialpha.verify import store

            store.save_error(self.client, self.keys, day, str(why), cme_time.utcnow())
        self.alerter.alert(f"verify:{day}", "warning", f"verify {day} could not run: {why}", "verify")


def market_clock(settings: Any) -> Callable[[], datetime | None]:
    """The market's "now": the sandbox's replay clock (re-read: tests and demos move it), else UTC."""
    if not settings.databento.uses_sandbox:
        return cme_time.utcnow
    from multialpha import runtime
    from multialpha.sandbox.state import SandboxState

    def now() -> datetime | None:
        state = SandboxState.read(runtime.sandbox_state_path(settings))
        return state.now() if state is not None else None

    return now


def start_for_up(settings: Any, config_path: Path, child_env: dict[str, str], client: Any, alerter: Any,
                 log_dir: Path) -> VerifyAfterClose | None:
    """The thread `multialpha up` starts (None with ``verify.after_close: false``)."""
    import os
    import sys

    if not settings.verify.after_close:
        return None
    t = VerifyAfterClose(settings, client, alerter, market_clock(settings),
                         lambda day: verify_argv(sys.executable, config_path, day), {**os.environ, **child_env},
                         log_path=log_dir / "verify.log")
    t.start()
    return t
