"""The CLI's side of `multialpha reload`, `stop <strategy>` and `start <strategy>`.

A request is one JSON message on ``Keys.control()`` with an id; the running supervisor
answers on ``Keys.control_reply(id)`` (subscribed *before* publishing, so the answer
cannot be missed). ``--flatten`` happens here, before the request: the strategy's
positions are exited through the normal order path (``multialpha flatten``'s
mechanism: the gate's flatten request, each exit journaled and sent by the worker)
and we wait for the outcome. An exit whose fate is unknown (``exit_failed``) stops
everything: nothing is stopped, the operator resolves the exit first.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Callable

import redis

from multialpha import heartbeat as hb
from multialpha.config import Settings
from multialpha.keys import Keys
from multialpha.portfolio.gate import Gate
from multialpha.supervisor.reload import STOP_FLATTEN
from multialpha.supervisor.watch import is_supervisor_component

REPLY_TIMEOUT_S = 90.0  # a reload validates the config and waits for the loop: seconds, not minutes


class RequestError(RuntimeError):
    """Refused or failed; ``code`` is the exit code (2: bad config)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class NoSupervisor(RequestError):
    pass


def send(client: "redis.Redis", keys: Keys, doc: dict[str, Any], timeout_s: float = REPLY_TIMEOUT_S,
         clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Publish one request and wait for the supervisor's answer."""
    rid = uuid.uuid4().hex[:16]
    ps = client.pubsub(ignore_subscribe_messages=True)
    ps.subscribe(keys.control_reply(rid))
    try:
        if int(client.publish(keys.control(), json.dumps({**doc, "id": rid}))) == 0:
            raise NoSupervisor("no running `multialpha up` is listening on the control channel")
        deadline = clock() + timeout_s
        while clock() < deadline:
            msg = ps.get_message(timeout=0.5)
            if msg and msg.get("type") == "message":
                return dict(json.loads(msg["data"]))
        raise RequestError(f"the supervisor did not answer within {timeout_s:g}s; see `multialpha logs supervisor`")
    finally:
        ps.close()


def children(client: "redis.Redis", keys: Keys) -> dict[str, dict[str, Any]]:
    """The supervised processes, from the supervisor heartbeat(s)."""
    out: dict[str, dict[str, Any]] = {}
    for comp, doc in hb.read_all(client, keys).items():
        if is_supervisor_component(comp) and isinstance(doc.get("children"), dict):
            out.update(doc["children"])
    return out


def flatten_and_wait(settings: Settings, client: "redis.Redis", strategy: str, timeout_s: float,
                     say: Callable[[str], None], clock: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], None] = time.sleep) -> None:
    """Exit ``strategy``'s positions through its worker and wait until the gate holds none.

    The scope stays reduce-only afterwards (no new entry before the stop); `multialpha start`
    lifts that hold. Fails closed: an exit that may not have reached the broker, or positions
    still open at the deadline, raise - and nothing is stopped."""
    from multialpha.portfolio import control

    gate = Gate(settings, client)
    held = gate.positions(strategy)
    if not held:
        return
    control.flatten(settings, client, strategy, reason=STOP_FLATTEN)
    say(f"flattening {strategy}: {len(held)} position(s), exits through the normal order path")
    deadline = clock() + timeout_s
    while True:
        held = gate.positions(strategy)
        failed = [p for p in held if p.get("state") == "exit_failed"]
        if failed:
            raise RequestError(
                f"{strategy}: exit failed for {', '.join(p.get('symbol', '?') for p in failed)}; the broker may still "
                "hold it. Nothing stopped. Check the broker, then `multialpha orders retry|ack` (see the runbook)")
        if not held:
            say(f"{strategy}: flat")
            return
        if clock() >= deadline:
            raise RequestError(f"{strategy}: {len(held)} position(s) still open after {timeout_s:g}s; nothing stopped "
                               "(the flatten stays requested and the strategy reduce-only)")
        sleep(0.5)


def wait_settled(client: "redis.Redis", keys: Keys, before: dict[str, dict[str, Any]], components: dict[str, str],
                 timeout_s: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, str]:
    """After the answer: wait (bounded) until started/restarted children have a new pid and
    removed/stopped ones are down; component -> outcome line."""
    deadline = clock() + timeout_s
    out: dict[str, str] = {}
    while True:
        now = children(client, keys)
        for name, action in components.items():
            old = (before.get(name) or {}).get("pid")
            row = now.get(name) or {}
            if action.startswith(("starting", "restarting")):
                if row.get("pid") and row.get("pid") != old:
                    out[name] = f"pid {old or '-'} -> {row['pid']}"
            elif action.startswith("stopping"):
                if not row.get("pid"):
                    out[name] = "stopped" if row else "stopped and removed"
        pending = [n for n, a in components.items() if a.startswith(("starting", "restarting", "stopping"))
                   and n not in out]
        if not pending or clock() >= deadline:
            for n in pending:
                out[n] = "not settled yet; see `multialpha status`"
            return out
        sleep(0.3)


def reload_without_supervisor(settings: Settings, client: "redis.Redis") -> dict[str, str]:
    """Under systemd (no `up`): the parts a reload can apply by itself - the gate's limits and
    the hub's subscription. Workers are units of their own: `systemctl restart` them."""
    keys = Keys(settings.redis.namespace)
    limits = Gate(settings, client).write_limits(settings)
    hubs = int(client.publish(keys.hub_control(), json.dumps({"command": "reload"})))
    return {"portfolio": "limits applied: " + ", ".join(f"{k} {v}" for k, v in limits.items()),
            "hub": "asked to reload its instruments" if hubs else "no hub listening"}
