"""The running supervisor's side of `multialpha reload`, `stop` and `start`.

Requests arrive on the control channel (``{"command": "reload"|"stop"|"start", "id": ...}``,
see :class:`~multialpha.supervisor.watch.ControlListener`) or, for reload, as SIGHUP. They
run on a thread of their own, one at a time (a lock): reading and validating the config,
computing the diff and checking positions take time the loop must not spend. What
changes the children is handed to the loop as one :class:`~multialpha.supervisor.manager.Change`
and its outcome comes back here; the answer goes to ``Keys.control_reply(id)``.

Money first: a strategy that holds positions is never stopped or removed silently. Without
``leave_positions`` naming it the whole request is refused (nothing changes); the CLI's
``--flatten`` exits the positions through the normal order path *before* asking. Leaving
positions is recorded (``portfolio:unmanaged``, the events stream), shown by status and
alerted, until `start` brings a worker back to manage them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable

import redis

from multialpha import cme_time
from multialpha import config as cfg
from multialpha.alerts import Alerter
from multialpha.config import Settings
from multialpha.keys import Keys
from multialpha.portfolio.gate import Gate
from multialpha.supervisor import changes
from multialpha.supervisor.diff import Diff, diff
from multialpha.supervisor.manager import Change, ChildSpec

log = logging.getLogger("multialpha.supervisor")

EXIT_CONFIG = 2  # the CLI's exit code for a bad config
APPLY_TIMEOUT_S = 30.0


class Deployer:
    def __init__(self, settings: Settings, config_path: Path, client: "redis.Redis", post: Callable[[Change], None],
                 make_specs: Callable[[Settings, list[str]], list[ChildSpec]], alerter: Alerter | None = None,
                 whole: bool = True) -> None:
        self.settings, self.config_path, self.client, self.post = settings, config_path, client, post
        self.make_specs, self.alerter, self.whole = make_specs, alerter, whole
        self.keys = Keys(settings.redis.namespace)
        self.environ = dict(os.environ)
        self._lock = threading.Lock()

    # -- entry points (any thread) ------------------------------------------------------
    def handle(self, doc: dict[str, Any]) -> dict[str, Any]:
        """One control request -> its answer (``ok``, ``code``, ``error``, ``components``, ``notes``)."""
        command = doc.get("command")
        leave = doc.get("leave_positions") or []
        leave = {x for x in leave if isinstance(x, str)} if isinstance(leave, list) else set()
        with self._lock:
            try:
                if command == "reload":
                    return self.reload(leave)
                name = doc.get("component")
                if not isinstance(name, str):
                    return _refused("no component named")
                if command == "stop":
                    return self.stop(name, leave)
                if command == "start":
                    return self.start(name)
                return _refused(f"unknown command {command!r}")
            except redis.RedisError as e:
                return _refused(f"Redis error, nothing changed: {e}")

    def answer(self, doc: dict[str, Any]) -> None:
        """Handle and publish the answer on the request's reply channel (control-listener thread)."""
        out = self.handle(doc)
        if out.get("not_here") and not self.whole:
            return  # `up --only` on several hosts: the supervisor that runs it answers
        rid = doc.get("id")
        if isinstance(rid, str) and rid:
            try:
                self.client.publish(self.keys.control_reply(rid), json.dumps(out))
            except redis.RedisError as e:
                log.warning("cannot answer %s request %s: %s", doc.get("command"), rid, e)

    # -- reload ---------------------------------------------------------------------------
    def reload(self, leave: set[str]) -> dict[str, Any]:
        if not self.whole:
            return _refused("this supervisor runs part of the deployment (--only); restart it with the new config")
        try:
            from multialpha import plugins

            new = cfg.load(self.config_path)
            plugins.reset()  # see plugins installed since `up` started
            plugins.check_strategy_types(new)
        except cfg.ConfigError as e:
            log.error("reload refused, nothing changed: %s", e)
            return _refused(f"config error, nothing changed: {e}", EXIT_CONFIG)
        d = diff(self.settings, new, self.environ, dict(os.environ))
        gate = Gate(new, self.client)
        held = [n for n in d.removed if n not in leave and gate.positions(n)]
        if held:
            return _refused(
                f"strategies removed from the config still hold positions: {', '.join(held)}; nothing changed. "
                "`multialpha reload --flatten` exits them first, `--leave-positions` leaves them unmanaged")
        for name in d.removed:
            if name in leave and gate.positions(name):
                self._leave(gate, name, "removed from the config by reload")
        out = self._apply(changes.plan_change(
            self.make_specs(new, [f"worker.{n}" for n in d.added]), [f"worker.{n}" for n in d.removed],
            [f"worker.{n}" for n in d.changed] + (["hub"] if d.hub_restart else [])))
        if out is None:
            return _refused("the supervisor is stopping; nothing changed")
        for name in d.added:
            self._managed_again(gate, name)
        for name in d.removed:  # flattened and gone: its `stop --flatten` hold has nothing left to hold
            if not gate.positions(name):
                self._managed_again(gate, name)
        for name, parts in d.changed.items():
            out[f"worker.{name}"] += f" [{', '.join(parts)}]"
        if d.limits:
            gate.write_limits(new)
            out["portfolio"] = "limits applied: " + ", ".join(f"{k} {a or '-'} -> {b}" for k, (a, b) in d.limits.items())
        if d.hub_symbols and not d.hub_restart:
            self.client.publish(self.keys.hub_control(), json.dumps({"command": "reload"}))
            old, new_roots = d.hub_symbols
            out["hub"] = f"resubscribing: {','.join(old)} -> {','.join(new_roots)}"
        self.settings, self.environ = new, dict(os.environ)
        log.info("reload applied: %s", "; ".join(f"{k}: {v}" for k, v in out.items()))
        return {"ok": True, "code": 0, "components": out, "notes": _notes(d)}

    # -- stop / start ---------------------------------------------------------------------
    def stop(self, component: str, leave: set[str]) -> dict[str, Any]:
        name = _child(component)
        strategy = name.split(".", 1)[1] if name.startswith("worker.") else None
        if strategy is not None:
            gate = Gate(self.settings, self.client)
            if gate.positions(strategy):
                if strategy not in leave:
                    return _refused(f"{strategy} holds positions; `multialpha stop {strategy} --flatten` exits them "
                                    "first, `--leave-positions` leaves them unmanaged")
                self._leave(gate, strategy, "stopped with its positions by `multialpha stop --leave-positions`")
        out = self._apply(changes.stop_change(name, "stopped on request (`multialpha start` runs it again)"))
        return _result(out)

    def start(self, component: str) -> dict[str, Any]:
        name = _child(component)
        out = self._apply(changes.start_change(name))
        if name.startswith("worker.") and out and not out[name].startswith("error"):
            self._managed_again(Gate(self.settings, self.client), name.split(".", 1)[1])
        return _result(out)

    # -- helpers ---------------------------------------------------------------------------
    def _apply(self, apply: changes.Apply) -> dict[str, str] | None:
        """Hand ``apply`` to the loop as a Change and wait for what it did (None: the loop did not answer)."""
        got: dict[str, str] = {}
        ready = threading.Event()

        def done(r: dict[str, str]) -> None:
            got.update(r)
            ready.set()

        self.post(Change(apply, done))
        return got if ready.wait(APPLY_TIMEOUT_S) and got else None

    def _leave(self, gate: Gate, strategy: str, why: str) -> None:
        now = cme_time.iso_z(cme_time.utcnow())
        positions = [f"{p.get('symbol', '?')} {'long' if p.get('dir') == '1' else 'short'} x{p.get('quantity', '?')}"
                     for p in gate.positions(strategy)]
        text = f"{why} at {now}: {', '.join(positions)}"
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(gate.unmanaged_key(), strategy, text)
        pipe.xadd(self.keys.events(), {"type": "unmanaged", "strategy": strategy, "reason": text, "ts": now,
                                       "level": "error", "component": f"worker.{strategy}",
                                       "message": f"positions left unmanaged: {text}"},
                  maxlen=10_000, approximate=True)
        pipe.execute()
        log.error("UNMANAGED positions of %s: %s", strategy, text)
        if self.alerter:
            self.alerter.alert(f"unmanaged:{strategy}", "critical",
                               f"{strategy}: positions left without a running worker ({text})", f"worker.{strategy}")

    def _managed_again(self, gate: Gate, strategy: str) -> None:
        """A worker runs the strategy again: its positions are managed, a stop's flatten hold is over."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(gate.unmanaged_key(), strategy)
        pipe.execute()
        for key in (gate.flatten_key(), gate.reduce_only_key()):
            why = self.client.hget(key, strategy)
            if why and STOP_FLATTEN in str(why):  # only the hold `stop --flatten` set; other holds stay
                self.client.hdel(key, strategy)


NOT_HERE = changes.NOT_HERE
STOP_FLATTEN = "stop --flatten"  # the reason the CLI's flatten carries; `start` lifts that hold only


def _child(component: str) -> str:
    return component if component in ("hub", "sandbox") or "." in component else f"worker.{component}"


def _refused(error: str, code: int = 1) -> dict[str, Any]:
    return {"ok": False, "code": code, "error": error, "components": {}, "notes": []}


def _result(out: dict[str, str] | None) -> dict[str, Any]:
    if out is None:
        return _refused("the supervisor is stopping or did not answer")
    errors = [f"{k}: {v}" for k, v in out.items() if v.startswith("error")]
    if errors:
        return {**_refused("; ".join(errors)), "components": out,
                "not_here": all(v == NOT_HERE for v in out.values())}
    return {"ok": True, "code": 0, "components": out, "notes": []}


def _notes(d: Diff) -> list[str]:
    notes = [f"{s}: changed, but only a full restart (`multialpha down` / `up`) applies it" for s in d.not_applied]
    if d.empty:
        notes.append("no change")
    return notes
