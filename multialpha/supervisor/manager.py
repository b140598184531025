"""The supervisor loop: one thread, one event queue, injected clock/spawn/kill.

Modelled on honcho's ``manager.py``: every child event (exited, heartbeat,
stop requested, restart requested) is posted to one queue and handled by one
loop, so there are no races between "it died" and "we are stopping". Time,
process creation and signalling are injected: the unit tests drive
:meth:`Supervisor.handle` and :meth:`Supervisor.tick` with a fake clock and
fake processes, and never sleep.

Child states: ``pending`` (waiting for its turn in the start order),
``starting`` (spawned, no heartbeat yet), ``running``, ``stopping`` (SIGTERM
sent; SIGKILL after ``stop_timeout_s``), ``backoff`` (waiting to be
restarted), ``failed`` (flapping; left down until ``restart``), ``stopped``.
"""

from __future__ import annotations

import logging
import queue
import signal
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from multialpha.supervisor.policy import PolicySettings, RestartPolicy

log = logging.getLogger("multialpha.supervisor")


# -- what is supervised -----------------------------------------------------------


@dataclass(frozen=True)
class ChildSpec:
    name: str  # "hub", "worker.ibs_a", "sandbox"
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()  # extra environment (secrets go here, never argv)
    heartbeat: str | None = None  # heartbeat component to watch; None = exit-only
    # The next child in the start order waits until this returns True (or the timeout).
    ready: Callable[[], bool] | None = field(default=None, compare=False)
    ready_timeout_s: float = 30.0
    # False: started at once, without waiting for the earlier children's ready() (the child waits
    # for what it needs itself, e.g. a worker for the sandbox's state file: `worker --await-sandbox`).
    gated: bool = True
    # Exit codes that restarting cannot fix (2 = the CLI's config error): failed at once.
    permanent_exit_codes: tuple[int, ...] = (2,)


class Proc(Protocol):
    pid: int


Spawn = Callable[[ChildSpec], Proc]
Kill = Callable[[int, int], None]
Clock = Callable[[], float]


# -- events -------------------------------------------------------------------------


@dataclass(frozen=True)
class Exited:
    name: str
    pid: int
    returncode: int | None


@dataclass(frozen=True)
class Beat:
    """A heartbeat hash was read for this child (pid and `updated` from the hash)."""

    name: str
    pid: int
    updated: str
    state: str = ""


@dataclass(frozen=True)
class HeartbeatsReadable:
    """Whether the watcher can read Redis. While it cannot, silence proves nothing:
    heartbeat timeouts are suspended, and restart from zero once Redis is back."""

    ok: bool


@dataclass(frozen=True)
class StopAll:
    reason: str = "stop requested"
    force: bool = False  # second Ctrl-C: SIGKILL at once


@dataclass(frozen=True)
class RestartRequest:
    name: str


@dataclass(frozen=True)
class Change:
    """A deployment change applied by the loop (``multialpha reload``/``stop``/``start``).

    ``apply(sup, now)`` runs on the loop thread (so it cannot race an exit or a restart)
    and returns what it did, per component; ``done`` hands that back to the requester's
    thread. See :mod:`multialpha.supervisor.changes`."""

    apply: Callable[["Supervisor", float], dict[str, str]] = field(compare=False)
    done: Callable[[dict[str, str]], None] = field(compare=False)


Event = Exited | Beat | HeartbeatsReadable | StopAll | RestartRequest | Change


@dataclass(frozen=True)
class Timing:
    heartbeat_timeout_s: float = 30.0
    stop_timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, s: Any) -> "Timing":
        return cls(heartbeat_timeout_s=s.heartbeat_timeout_s, stop_timeout_s=s.stop_timeout_s)


@dataclass
class Child:
    spec: ChildSpec
    policy: RestartPolicy
    state: str = "pending"
    proc: Proc | None = None
    pid: int | None = None
    started_at: float | None = None
    last_beat_at: float | None = None
    last_updated: str = ""
    hb_state: str = ""
    restart_at: float = 0.0
    kill_at: float | None = None  # SIGKILL deadline while stopping
    killed: bool = False
    after_stop: str = "restart"  # restart | restart_now | stopped | remove
    last_exit: int | None = None
    reason: str = ""
    ready_since: float | None = None  # when this child's ready() first held


# -- the loop ---------------------------------------------------------------------


class Supervisor:
    def __init__(
        self,
        specs: list[ChildSpec],
        spawn: Spawn,
        kill: Kill,
        clock: Clock,
        policy: PolicySettings = PolicySettings(),
        timing: Timing = Timing(),
        on_event: Callable[[str, str, str], None] | None = None,
    ) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate child names: {names}")
        self.children = {s.name: Child(s, RestartPolicy(policy)) for s in specs}
        self.order = names
        self.policy_settings = policy  # for children added by a reload
        self.spawn, self.kill, self.clock = spawn, kill, clock
        self.timing = timing
        self.events: queue.Queue[Event] = queue.Queue()
        self.stopping = False
        self.force = False
        self.blind = False  # Redis unreadable: heartbeat checks suspended
        self.resumed_at = float("-inf")
        # (level, component, message) for logs, the events stream and alerts.
        self.on_event = on_event or (lambda level, name, msg: None)

    # -- feeding the loop ------------------------------------------------------------
    def post(self, event: Event) -> None:
        """Thread-safe: waiter threads, the heartbeat poller and signal handlers call this."""
        self.events.put(event)

    @property
    def done(self) -> bool:
        return self.stopping and all(c.proc is None for c in self.children.values())

    def run(self, max_wait_s: float = 0.5, on_tick: Callable[[], None] | None = None, ready_poll_s: float = 0.05) -> None:
        """Block until everything stopped (after a StopAll). While a child's ready() is awaited,
        the loop checks it every ``ready_poll_s``: the next children start as soon as it holds."""
        self.tick()
        while not self.done:
            try:
                wait = ready_poll_s if self.awaiting_ready() else max_wait_s
                event: Event | None = self.events.get(timeout=wait)
            except queue.Empty:
                event = None
            while event is not None:
                self.handle(event)
                try:
                    event = self.events.get_nowait()
                except queue.Empty:
                    event = None
            self.tick()
            if on_tick:
                on_tick()

    # -- event handling --------------------------------------------------------------
    def handle(self, event: Event) -> None:
        now = self.clock()
        if isinstance(event, Exited):
            self._exited(event, now)
        elif isinstance(event, Beat):
            c = self.children.get(event.name)
            if c and c.pid == event.pid and c.proc is not None and event.updated != c.last_updated:
                c.last_updated = event.updated
                c.last_beat_at = now
                c.hb_state = event.state
                if c.state == "starting":
                    c.state = "running"
        elif isinstance(event, HeartbeatsReadable):
            if event.ok and self.blind:
                self.resumed_at = now  # everyone gets a fresh timeout after the outage
                self.on_event("info", "supervisor", "Redis readable again; heartbeat checks resumed")
            elif not event.ok and not self.blind:
                self.on_event("warning", "supervisor", "Redis unreadable; heartbeat checks suspended")
            self.blind = not event.ok
        elif isinstance(event, StopAll):
            self._stop_all(event, now)
        elif isinstance(event, RestartRequest):
            self._restart_request(event.name, now)
        elif isinstance(event, Change):
            event.done({} if self.stopping else event.apply(self, now))

    def _exited(self, ev: Exited, now: float) -> None:
        c = self.children.get(ev.name)
        if c is None or c.pid != ev.pid or c.proc is None:
            return
        c.proc, c.last_exit, c.kill_at, c.killed = None, ev.returncode, None, False
        if c.after_stop == "remove":  # taken out of the config: gone from the table too
            del self.children[ev.name]
            self.order.remove(ev.name)
            self.on_event("info", ev.name, "stopped and removed")
            return
        if self.stopping or c.after_stop == "stopped":
            c.state = "stopped"
            return
        if c.after_stop == "restart_now":
            c.after_stop = "restart"
            c.policy.reset()
            c.state, c.restart_at = "backoff", now
            self.on_event("info", c.spec.name, "restarting on request")
            return
        why = c.reason if c.state == "stopping" and c.reason else f"exited with code {ev.returncode}"
        if c.state != "stopping" and ev.returncode in c.spec.permanent_exit_codes:
            fix = f"configuration error: fix it, then `multialpha restart {c.spec.name}`"
            c.state, c.reason = "failed", f"{why} ({fix})"
            self.on_event("error", c.spec.name, f"FAILED: {c.reason}")
            return
        self._went_down(c, now, why)

    def _went_down(self, c: Child, now: float, why: str) -> None:
        decision = c.policy.went_down(now)
        if decision.restart:
            c.state, c.restart_at = "backoff", decision.at
            c.reason = why
            self.on_event("warning", c.spec.name, f"{why}; restart in {decision.delay:g}s")
        else:
            c.state, c.reason = "failed", f"{why}; {decision.reason}"
            self.on_event("error", c.spec.name, f"FAILED: {c.reason} (others keep running)")

    def _stop_all(self, ev: StopAll, now: float) -> None:
        first = not self.stopping
        self.stopping = True
        self.force = self.force or ev.force
        if first:
            self.on_event("info", "supervisor", f"stopping all: {ev.reason}")
        for c in self.children.values():
            if c.proc is None:
                c.state = "stopped"
            elif self.force:
                self._signal(c, signal.SIGKILL)
                c.killed = True
            elif first:
                self._terminate(c, now, "stopped", ev.reason)

    def _restart_request(self, name: str, now: float, reason: str = "restart requested") -> None:
        c = self.children.get(name)
        if c is None or self.stopping:
            # Not ours: with --only, several supervisors share the control channel.
            log.info("restart of %r ignored (not supervised here, or stopping)", name)
            return
        if c.proc is not None:
            if c.state != "stopping":
                self._terminate(c, now, "restart_now", reason)
            else:
                c.after_stop = "restart_now"
        else:
            c.policy.reset()
            c.state, c.restart_at, c.reason = "backoff", now, reason
            self.on_event("info", name, f"restarting: {reason}")

    # -- time-driven work -----------------------------------------------------------------
    def tick(self) -> None:
        now = self.clock()
        gate_open = True  # start order: a child waits for the previous ones' ready()
        for name in self.order:
            c = self.children[name]
            if c.state == "pending":
                if (gate_open or not c.spec.gated) and not self.stopping:
                    self._start(c, now)
            elif c.state == "backoff":
                if now >= c.restart_at and not self.stopping:
                    self._start(c, now)
            elif c.state in ("starting", "running"):
                self._check_heartbeat(c, now)
            if c.state == "stopping" and c.kill_at is not None and now >= c.kill_at and not c.killed:
                self.on_event("warning", name, f"did not stop within {self.timing.stop_timeout_s:g}s; SIGKILL")
                self._signal(c, signal.SIGKILL)
                c.killed = True
            gate_open = gate_open and self._ready(c, now)

    def awaiting_ready(self) -> bool:
        """A started child's ready() has not held yet, within its ready timeout (the loop then
        polls fast; past the timeout ``_ready`` opens the gate anyway)."""
        now = self.clock()
        return not self.stopping and any(
            c.spec.ready is not None and c.ready_since is None and c.state in ("starting", "running")
            and (c.started_at is None or now - c.started_at < c.spec.ready_timeout_s)
            for c in self.children.values())

    def _ready(self, c: Child, now: float) -> bool:
        if c.spec.ready is None or c.state in ("failed", "stopped"):
            return c.state != "pending"
        if c.ready_since is not None:
            return True
        if c.state in ("starting", "running") and c.spec.ready():
            c.ready_since = now
            return True
        # Never block the rest forever behind a slow dependency.
        return c.started_at is not None and now - c.started_at >= c.spec.ready_timeout_s

    def _check_heartbeat(self, c: Child, now: float) -> None:
        if c.spec.heartbeat is None or self.blind:
            # Exit-only child: running once its ready() held (or at once without one).
            if c.state == "starting" and (c.spec.ready is None or c.ready_since is not None):
                c.state = "running"
            c.policy.healthy_check(now)
            return
        last = c.last_beat_at if c.last_beat_at is not None else c.started_at
        assert last is not None
        age = now - max(last, self.resumed_at)
        if age > self.timing.heartbeat_timeout_s:
            what = "no heartbeat" if c.last_beat_at is None else "heartbeat stale"
            self._terminate(c, now, "restart", f"{what} for {age:.0f}s")
        elif c.last_beat_at is not None:
            c.policy.healthy_check(now)

    def _start(self, c: Child, now: float) -> None:
        try:
            proc = self.spawn(c.spec)
        except OSError as e:
            # Cannot even exec: same policy as a crash at start.
            c.proc, c.pid, c.last_exit = None, None, None
            self._went_down(c, now, f"spawn failed: {e}")
            return
        c.proc, c.pid = proc, proc.pid
        c.state, c.started_at, c.last_beat_at, c.last_updated = "starting", now, None, ""
        c.kill_at, c.killed, c.after_stop, c.ready_since = None, False, "restart", None
        c.policy.started(now)
        self.on_event("info", c.spec.name, f"started pid {proc.pid}")

    def _terminate(self, c: Child, now: float, after: str, reason: str) -> None:
        c.state, c.after_stop, c.reason = "stopping", after, reason
        c.kill_at = now + self.timing.stop_timeout_s
        if after != "stopped":
            self.on_event("warning", c.spec.name, f"stopping pid {c.pid}: {reason}")
        self._signal(c, signal.SIGTERM)

    def _signal(self, c: Child, sig: int) -> None:
        if c.pid is None or c.pid <= 0:
            return
        try:
            self.kill(c.pid, sig)
        except ProcessLookupError:
            pass  # already gone; its Exited event is on the way

    # -- reporting -------------------------------------------------------------------
    def table(self) -> dict[str, dict[str, Any]]:
        """Per-child facts for the supervisor heartbeat (what `status` shows)."""
        now = self.clock()
        out: dict[str, dict[str, Any]] = {}
        for name, c in self.children.items():
            out[name] = {
                "state": c.state,
                "pid": c.pid if c.proc is not None else None,
                "uptime_s": round(now - c.started_at, 1) if c.proc is not None and c.started_at is not None else None,
                "restarts": c.policy.total_restarts,
                "heartbeat_age_s": round(now - c.last_beat_at, 1) if c.last_beat_at is not None and c.proc else None,
                "last_exit": c.last_exit,
                "reason": c.reason,
                "retry_in_s": round(max(0.0, c.restart_at - now), 1) if c.state == "backoff" else None,
            }
        return out
