"""Deployment changes applied by the supervisor loop (reload, stop, start), with the fake
clock and fake processes of tests/supervisor/fakes.py: no real time, no real children."""

from __future__ import annotations

import signal

from multialpha.supervisor import changes
from multialpha.supervisor.manager import Beat, Change, ChildSpec, Exited, StopAll, Supervisor
from tests.supervisor.fakes import FakeClock, FakeOS
from tests.supervisor.test_manager import POLICY, TIMING, beat_all


def running():
    clock, fos = FakeClock(), FakeOS()
    specs = [ChildSpec("hub", ("hub",), heartbeat="hub"),
             ChildSpec("worker.a", ("w", "a"), heartbeat="worker.a"),
             ChildSpec("worker.b", ("w", "b"), heartbeat="worker.b")]
    sup = Supervisor(specs, fos.spawn, fos.kill, clock, POLICY, TIMING)
    sup.tick()
    beat_all(sup, "t0")
    return sup, clock, fos


def apply(sup: Supervisor, fn) -> dict[str, str]:
    got: list[dict[str, str]] = []
    sup.handle(Change(fn, got.append))
    assert len(got) == 1
    return got[0]


def pids(sup: Supervisor) -> dict[str, int | None]:
    return {n: c.pid for n, c in sup.children.items()}


def test_reload_plan_adds_removes_restarts_and_leaves_the_rest_alone() -> None:
    sup, clock, fos = running()
    before = pids(sup)
    out = apply(sup, changes.plan_change([ChildSpec("worker.c", ("w", "c"), heartbeat="worker.c")],
                                         ["worker.b"], ["worker.a"]))
    assert out["worker.c"] == "starting (added)"
    assert out["worker.b"].startswith(f"stopping pid {before['worker.b']}")
    assert out["worker.a"].startswith(f"restarting pid {before['worker.a']}")
    assert out["hub"] == f"unchanged, pid {before['hub']}"
    assert (before["worker.a"], signal.SIGTERM) in fos.signals and (before["worker.b"], signal.SIGTERM) in fos.signals
    assert not any(p == before["hub"] for p, _ in fos.signals)
    sup.tick()
    assert len(fos.spawns_of("worker.c")) == 1
    sup.handle(Exited("worker.a", before["worker.a"], 0))
    sup.handle(Exited("worker.b", before["worker.b"], 0))
    sup.tick()
    assert "worker.b" not in sup.children and "worker.b" not in sup.order  # removed from the table
    assert len(fos.spawns_of("worker.a")) == 2 and sup.children["hub"].pid == before["hub"]
    clock.advance(3600)  # however long: the removed one never comes back
    sup.tick()
    assert len(fos.spawns_of("worker.b")) == 1


def test_stopped_child_stays_down_until_start() -> None:
    sup, clock, fos = running()
    a = sup.children["worker.a"]
    pid = a.pid
    assert apply(sup, changes.stop_change("worker.a", "stopped on request")) == {
        "worker.a": f"stopping pid {pid}"}
    sup.handle(Exited("worker.a", pid, -15))
    for _ in range(10):  # backoff, heartbeat timeout, healthy reset: nothing restarts it
        clock.advance(TIMING.heartbeat_timeout_s + POLICY.backoff_max_s)
        sup.tick()
        beat_all(sup, f"t{clock.t}")
    assert a.state == "stopped" and len(fos.spawns_of("worker.a")) == 1
    assert apply(sup, changes.stop_change("worker.a", "again")) == {"worker.a": "already stopped"}
    assert apply(sup, changes.start_change("worker.a")) == {"worker.a": "starting"}
    sup.tick()
    assert len(fos.spawns_of("worker.a")) == 2 and a.state == "starting"
    assert apply(sup, changes.start_change("worker.a")) == {
        "worker.a": f"already running, pid {a.pid}"}


def test_settings_change_of_a_stopped_child_does_not_start_it() -> None:
    sup, clock, fos = running()
    pid = sup.children["worker.a"].pid
    apply(sup, changes.stop_change("worker.a", "stopped on request"))
    sup.handle(Exited("worker.a", pid, 0))
    out = apply(sup, changes.plan_change([], [], ["worker.a"]))
    assert "stays stopped" in out["worker.a"]
    sup.tick()
    assert len(fos.spawns_of("worker.a")) == 1


def test_stop_during_a_restart_wins_and_unknown_names_are_errors() -> None:
    sup, clock, fos = running()
    a = sup.children["worker.a"]
    pid = a.pid
    sup._restart_request("worker.a", clock())  # on its way down to restart
    apply(sup, changes.stop_change("worker.a", "stopped on request"))
    sup.handle(Exited("worker.a", pid, 0))
    sup.tick()
    assert a.state == "stopped" and len(fos.spawns_of("worker.a")) == 1
    assert apply(sup, changes.stop_change("worker.zz", "x"))["worker.zz"].startswith("error")


def test_a_change_while_stopping_all_does_nothing_and_says_so() -> None:
    sup, clock, fos = running()
    sup.handle(StopAll())
    assert apply(sup, changes.plan_change([ChildSpec("worker.c", ("w", "c"))], [], [])) == {}
    assert "worker.c" not in sup.children


def test_added_child_heartbeat_is_watched_like_the_others() -> None:
    sup, clock, fos = running()
    apply(sup, changes.plan_change([ChildSpec("worker.c", ("w", "c"), heartbeat="worker.c")], [], []))
    sup.tick()
    c = sup.children["worker.c"]
    sup.handle(Beat("worker.c", c.pid, "t1", "live"))
    assert c.state == "running"
    clock.advance(TIMING.heartbeat_timeout_s + 1)
    for name in ("hub", "worker.a", "worker.b"):  # the others beat; c went silent
        sup.handle(Beat(name, sup.children[name].pid, "t2", "live"))
    sup.tick()
    assert c.state == "stopping" and all(sup.children[n].state == "running" for n in ("hub", "worker.a", "worker.b"))
