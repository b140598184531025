"""The supervisor loop's policy, driven with a fake clock and fake processes (no sleeping)."""

from __future__ import annotations

import signal

from multialpha.supervisor.manager import (
    Beat,
    ChildSpec,
    Exited,
    HeartbeatsReadable,
    RestartRequest,
    StopAll,
    Supervisor,
    Timing,
)
from multialpha.supervisor.policy import PolicySettings

from tests.supervisor.fakes import FakeClock, FakeOS

POLICY = PolicySettings(backoff_initial_s=1, backoff_max_s=60, healthy_reset_s=300, flap_restarts=3, flap_window_s=300)
TIMING = Timing(heartbeat_timeout_s=30, stop_timeout_s=10)


def make(specs: list[ChildSpec] | None = None):
    clock, fos = FakeClock(), FakeOS()
    events: list[tuple[str, str, str]] = []
    specs = specs or [
        ChildSpec("hub", ("hub",), heartbeat="hub"),
        ChildSpec("worker.a", ("w", "a"), heartbeat="worker.a"),
        ChildSpec("worker.b", ("w", "b"), heartbeat="worker.b"),
    ]
    sup = Supervisor(specs, fos.spawn, fos.kill, clock, POLICY, TIMING, on_event=lambda *e: events.append(e))
    return sup, clock, fos, events


def beat_all(sup: Supervisor, tag: str) -> None:
    for name, c in sup.children.items():
        if c.proc is not None:
            sup.handle(Beat(name, c.pid, tag, "live"))


def test_starts_everything_in_order() -> None:
    sup, clock, fos, _ = make()
    sup.tick()
    assert [p.name for p in fos.spawned] == ["hub", "worker.a", "worker.b"]
    assert all(c.state == "starting" for c in sup.children.values())
    beat_all(sup, "t1")
    assert all(c.state == "running" for c in sup.children.values())


def test_crash_restarts_only_that_child_with_backoff() -> None:
    sup, clock, fos, events = make()
    sup.tick()
    a = sup.children["worker.a"]
    first_pid = a.pid
    sup.handle(Exited("worker.a", first_pid, -9))
    assert a.state == "backoff"
    sup.tick()
    assert len(fos.spawns_of("worker.a")) == 1  # not before the delay
    clock.advance(1.0)
    sup.tick()
    assert len(fos.spawns_of("worker.a")) == 2 and a.pid != first_pid
    # The others were never signalled nor respawned.
    assert fos.signals == []
    assert len(fos.spawns_of("hub")) == 1 and len(fos.spawns_of("worker.b")) == 1
    assert any("exited with code -9" in m for _, n, m in events if n == "worker.a")
    # Second crash: 2 s delay.
    sup.handle(Exited("worker.a", a.pid, 1))
    clock.advance(1.9)
    sup.tick()
    assert len(fos.spawns_of("worker.a")) == 2
    clock.advance(0.1)
    sup.tick()
    assert len(fos.spawns_of("worker.a")) == 3


def test_crash_at_start_flaps_to_failed_others_fine() -> None:
    sup, clock, fos, events = make()
    sup.tick()
    b = sup.children["worker.b"]
    for _ in range(3):
        sup.handle(Exited("worker.b", b.pid, 1))
        assert b.state == "backoff"
        clock.advance(b.restart_at - clock())
        sup.tick()
    sup.handle(Exited("worker.b", b.pid, 1))
    assert b.state == "failed" and "flapping" in b.reason
    clock.advance(3600)
    beat_all(sup, "x")
    sup.tick()
    assert len(fos.spawns_of("worker.b")) == 4  # never again
    assert sup.children["hub"].state == "running" and sup.children["worker.a"].state == "running"
    assert any(level == "error" and "FAILED" in m for level, n, m in events if n == "worker.b")
    assert sup.table()["worker.b"]["state"] == "failed"


def test_stale_heartbeat_terminates_then_kills_then_restarts() -> None:
    sup, clock, fos, _ = make()
    sup.tick()
    beat_all(sup, "t0")
    hub = sup.children["hub"]
    for i in range(1, 4):  # hub and worker.b keep beating; worker.a goes silent
        clock.advance(10)
        sup.handle(Beat("hub", hub.pid, f"t{i}"))
        sup.handle(Beat("worker.b", sup.children["worker.b"].pid, f"t{i}"))
        sup.tick()
    clock.advance(1)
    sup.tick()
    a = sup.children["worker.a"]
    assert a.state == "stopping" and (a.pid, signal.SIGTERM) in fos.signals
    assert "heartbeat stale" in a.reason
    clock.advance(10)
    sup.tick()
    assert (a.pid, signal.SIGKILL) in fos.signals
    sup.handle(Exited("worker.a", a.pid, -9))
    assert a.state == "backoff"
    assert [s for s in fos.signals if s[0] != a.pid] == []


def test_repeated_beat_with_same_updated_is_not_fresh() -> None:
    sup, clock, fos, _ = make([ChildSpec("hub", ("hub",), heartbeat="hub")])
    sup.tick()
    hub = sup.children["hub"]
    sup.handle(Beat("hub", hub.pid, "same"))
    clock.advance(20)
    sup.handle(Beat("hub", hub.pid, "same"))  # hash still there, process hung
    clock.advance(11)
    sup.tick()
    assert hub.state == "stopping"


def test_beat_from_other_pid_ignored() -> None:
    sup, clock, fos, _ = make([ChildSpec("hub", ("hub",), heartbeat="hub")])
    sup.tick()
    sup.handle(Beat("hub", 999999, "t1"))
    assert sup.children["hub"].state == "starting"


def test_no_first_heartbeat_counts_from_start() -> None:
    sup, clock, fos, _ = make([ChildSpec("hub", ("hub",), heartbeat="hub"), ChildSpec("redisish", ("r",))])
    sup.tick()
    clock.advance(31)
    sup.tick()
    assert sup.children["hub"].state == "stopping" and "no heartbeat" in sup.children["hub"].reason
    assert sup.children["redisish"].state == "running"  # exit-only child: never heartbeat-checked


def test_stop_all_terms_then_kills_stragglers() -> None:
    sup, clock, fos, _ = make()
    sup.tick()
    sup.handle(StopAll("SIGTERM"))
    pids = {c.pid for c in sup.children.values()}
    assert {(p, signal.SIGTERM) for p in pids} == set(fos.signals)
    hub = sup.children["hub"]
    sup.handle(Exited("hub", hub.pid, 0))
    sup.handle(Exited("worker.a", sup.children["worker.a"].pid, 0))
    assert not sup.done
    clock.advance(10)
    sup.tick()
    b = sup.children["worker.b"]
    assert (b.pid, signal.SIGKILL) in fos.signals
    assert (hub.pid, signal.SIGKILL) not in fos.signals
    sup.handle(Exited("worker.b", b.pid, -9))
    sup.tick()
    assert sup.done and all(c.state == "stopped" for c in sup.children.values())
    assert len(fos.spawned) == 3  # nothing restarted while stopping


def test_stop_all_cancels_pending_backoff() -> None:
    sup, clock, fos, _ = make()
    sup.tick()
    sup.handle(Exited("worker.a", sup.children["worker.a"].pid, 1))
    sup.handle(StopAll())
    for n in ("hub", "worker.b"):
        sup.handle(Exited(n, sup.children[n].pid, 0))
    clock.advance(100)
    sup.tick()
    assert sup.done and len(fos.spawned) == 3


def test_restart_request_restarts_one_child_immediately_and_revives_failed() -> None:
    sup, clock, fos, _ = make()
    sup.tick()
    a = sup.children["worker.a"]
    old = a.pid
    sup.handle(RestartRequest("worker.a"))
    assert (old, signal.SIGTERM) in fos.signals
    sup.handle(Exited("worker.a", old, 0))
    sup.tick()
    assert a.state == "starting" and a.pid != old
    # A failed child is revived by a restart request.
    a.state, a.proc = "failed", None
    sup.handle(RestartRequest("worker.a"))
    sup.tick()
    assert a.state == "starting" and len(fos.spawns_of("worker.a")) == 3
    sup.handle(RestartRequest("nope"))  # unknown: ignored, nothing breaks


def test_start_order_waits_for_ready() -> None:
    ready = {"sandbox": False}
    specs = [
        ChildSpec("sandbox", ("s",), ready=lambda: ready["sandbox"], ready_timeout_s=20),
        ChildSpec("hub", ("hub",), heartbeat="hub"),
    ]
    sup, clock, fos, _ = make(specs)
    sup.tick()
    assert [p.name for p in fos.spawned] == ["sandbox"]
    clock.advance(5)
    sup.tick()
    assert [p.name for p in fos.spawned] == ["sandbox"]
    assert sup.children["sandbox"].state == "starting"
    ready["sandbox"] = True
    sup.tick()
    assert [p.name for p in fos.spawned] == ["sandbox", "hub"]
    sup.tick()
    assert sup.children["sandbox"].state == "running"


def test_an_ungated_child_starts_with_the_sandbox_and_the_loop_polls_ready_fast() -> None:
    """Workers that wait for the sandbox themselves (gated=False) start at once; the hub still waits.
    While the sandbox's ready() is awaited the loop polls it often (awaiting_ready)."""
    ready = {"sandbox": False}
    specs = [
        ChildSpec("sandbox", ("s",), ready=lambda: ready["sandbox"], ready_timeout_s=20),
        ChildSpec("hub", ("hub",), heartbeat="hub"),
        ChildSpec("worker.a", ("w", "a"), heartbeat="worker.a", gated=False),
    ]
    sup, clock, fos, _ = make(specs)
    assert not sup.awaiting_ready()  # nothing started yet
    sup.tick()
    assert [p.name for p in fos.spawned] == ["sandbox", "worker.a"]
    assert sup.awaiting_ready()
    clock.advance(1)
    ready["sandbox"] = True
    sup.tick()
    assert [p.name for p in fos.spawned] == ["sandbox", "worker.a", "hub"]
    assert not sup.awaiting_ready()


def test_start_order_ready_timeout_does_not_block_forever() -> None:
    specs = [ChildSpec("sandbox", ("s",), ready=lambda: False, ready_timeout_s=20), ChildSpec("hub", ("hub",))]
    sup, clock, fos, _ = make(specs)
    sup.tick()
    assert sup.awaiting_ready()  # the loop polls ready() fast ...
    clock.advance(20)
    assert not sup.awaiting_ready()  # ... only within the ready timeout, not forever
    sup.tick()
    assert [p.name for p in fos.spawned] == ["sandbox", "hub"]


def test_spawn_failure_follows_the_policy() -> None:
    sup, clock, fos, events = make([ChildSpec("hub", ("nope",))])
    fos.fail_spawn.add("hub")
    sup.tick()
    c = sup.children["hub"]
    assert c.state == "backoff" and "spawn failed" in c.reason
    for _ in range(3):
        clock.advance(c.restart_at - clock())
        sup.tick()
    assert c.state == "failed"


def test_healthy_run_resets_backoff() -> None:
    sup, clock, fos, _ = make([ChildSpec("hub", ("hub",), heartbeat="hub")])
    sup.tick()
    hub = sup.children["hub"]
    sup.handle(Exited("hub", hub.pid, 1))
    clock.advance(1)
    sup.tick()
    sup.handle(Exited("hub", hub.pid, 1))
    assert hub.restart_at - clock() == 2
    clock.advance(2)
    sup.tick()
    for i in range(31):  # 310 s healthy
        clock.advance(10)
        sup.handle(Beat("hub", hub.pid, str(i)))
        sup.tick()
    sup.handle(Exited("hub", hub.pid, 1))
    assert hub.restart_at - clock() == 1


def test_config_error_exit_fails_at_once_without_restarts() -> None:
    sup, clock, fos, events = make()
    sup.tick()
    a = sup.children["worker.a"]
    sup.handle(Exited("worker.a", a.pid, 2))
    assert a.state == "failed" and "configuration error" in a.reason
    clock.advance(100)
    sup.tick()
    assert len(fos.spawns_of("worker.a")) == 1
    sup.handle(RestartRequest("worker.a"))  # after fixing the config
    sup.tick()
    assert a.state == "starting" and len(fos.spawns_of("worker.a")) == 2


def test_redis_outage_does_not_restart_silent_children() -> None:
    sup, clock, fos, events = make()
    sup.tick()
    beat_all(sup, "t0")
    sup.handle(HeartbeatsReadable(False))
    clock.advance(120)  # two minutes without readable heartbeats
    sup.tick()
    assert fos.signals == [] and all(c.state == "running" for c in sup.children.values())
    sup.handle(HeartbeatsReadable(True))
    clock.advance(29)
    sup.tick()
    assert fos.signals == []  # a full timeout after Redis is back
    beat_all(sup, "t1")
    clock.advance(2)
    sup.tick()
    a = sup.children["worker.a"]
    assert fos.signals == []
    clock.advance(29)
    sup.handle(Beat("hub", sup.children["hub"].pid, "t2"))
    sup.handle(Beat("worker.b", sup.children["worker.b"].pid, "t2"))
    sup.tick()
    assert [s for s in fos.signals] == [(a.pid, signal.SIGTERM)]  # silent for real now
    assert any("suspended" in m for _, _, m in events)


def test_second_ctrl_c_kills_at_once() -> None:
    sup, clock, fos, _ = make()
    sup.tick()
    sup.handle(StopAll("SIGINT"))
    sup.handle(StopAll("SIGINT", force=True))
    pids = {c.pid for c in sup.children.values()}
    assert {p for p, sig in fos.signals if sig == signal.SIGKILL} == pids
