"""Deployment changes the supervisor loop applies while it runs: add, remove, restart,
stop (held down) and start a child.

Each is a :class:`~multialpha.supervisor.manager.Change` whose ``apply`` runs on the
loop thread, between events, so a change never races an exit, a heartbeat restart or
a shutdown. A child stopped on request stays ``stopped``: the watchdog only restarts
``backoff`` children, and an exit after a requested stop never schedules one. Only
``start`` (or ``restart``) brings it back. A removed child is stopped and then dropped
from the table once its process exited.

Every function returns component -> what was done, in words (what `reload`, `stop`
and `start` print); ``plan_change``/``stop_change``/``start_change`` bind one to its
arguments, as the ``apply`` of a Change.
"""

from __future__ import annotations

from typing import Callable

from multialpha.supervisor.manager import Child, ChildSpec, Supervisor
from multialpha.supervisor.policy import RestartPolicy

Apply = Callable[[Supervisor, float], dict[str, str]]  # a Change's apply: runs on the loop thread
NOT_HERE = "error: not supervised here"


def _stop(sup: Supervisor, c: Child, now: float, after: str, reason: str) -> str:
    if c.proc is None:
        if after == "remove":
            del sup.children[c.spec.name]
            sup.order.remove(c.spec.name)
            return "removed (was not running)"
        c.state, c.reason = "stopped", reason
        return "stopped (was not running)"
    pid = c.pid
    if c.state == "stopping":
        c.after_stop, c.reason = after, reason  # already on its way down: just do not restart it
    else:
        sup._terminate(c, now, after, reason)
    return f"stopping pid {pid}" + (" and removing" if after == "remove" else "")


def apply_plan(sup: Supervisor, now: float, add: list[ChildSpec], remove: list[str],
               restart: list[str]) -> dict[str, str]:
    """Reload: start ``add``, stop and drop ``remove``, restart ``restart``; the rest keeps its pid."""
    out: dict[str, str] = {}
    for name in remove:
        c = sup.children.get(name)
        out[name] = _stop(sup, c, now, "remove", "removed from the config") if c else "not running here"
    for name in restart:
        c = sup.children.get(name)
        if c is None:
            out[name] = "not running here"
        elif c.state == "stopped":
            out[name] = "settings changed; stays stopped (stopped on request), `multialpha start` runs the new ones"
        else:  # running: stopped and started again; backoff or failed: started now. Either way
            # the next start reads the new settings.
            out[name] = f"restarting pid {c.pid} (settings changed)" if c.proc is not None \
                else "restarting (was not running)"
            sup._restart_request(name, now, "settings changed")
    for spec in add:
        if spec.name in sup.children:
            out[spec.name] = "already running"
            continue
        sup.children[spec.name] = Child(spec, RestartPolicy(sup.policy_settings))
        sup.order.append(spec.name)
        out[spec.name] = "starting (added)"  # the next tick spawns it
    for name, c in sup.children.items():
        if name not in out:
            out[name] = f"unchanged, pid {c.pid}" if c.proc is not None else f"unchanged ({c.state})"
    return out


def stop_child(sup: Supervisor, now: float, name: str, reason: str) -> dict[str, str]:
    c = sup.children.get(name)
    if c is None:
        return {name: NOT_HERE}
    if c.state == "stopped":
        return {name: "already stopped"}
    return {name: _stop(sup, c, now, "stopped", reason)}


def start_child(sup: Supervisor, now: float, name: str) -> dict[str, str]:
    c = sup.children.get(name)
    if c is None:
        return {name: NOT_HERE}
    if c.proc is not None and c.state != "stopping":
        return {name: f"already running, pid {c.pid}"}
    sup._restart_request(name, now)
    return {name: "starting"}


def plan_change(add: list[ChildSpec], remove: list[str], restart: list[str]) -> Apply:
    return lambda sup, now: apply_plan(sup, now, add, remove, restart)


def stop_change(name: str, reason: str) -> Apply:
    return lambda sup, now: stop_child(sup, now, name, reason)


def start_change(name: str) -> Apply:
    return lambda sup, now: start_child(sup, now, name)
