"""The supervisor's Redis side, kept off the loop thread.

One thread (:class:`RedisWatch`) every ``poll_s``:
- reads each child's heartbeat hash and posts a :class:`Beat` to the loop;
- writes the supervisor's own heartbeat, carrying the children table that
  ``multialpha status`` shows (state, pid, uptime, restarts, heartbeat age);
- flushes queued events to the ``Keys.events()`` stream (what status lists
  as recent errors).

Another thread (:class:`ControlListener`) subscribes to ``Keys.control()``
and turns ``{"command": "restart", "component": NAME}`` into a
:class:`RestartRequest`; ``reload``/``stop``/``start`` requests go to ``deploy``
(:mod:`multialpha.supervisor.reload`), which answers on ``Keys.control_reply(id)``. If Redis is unreachable the loop keeps running: the
children just look silent until it comes back, which the heartbeat timeout
(longer than any reconnect) tolerates.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from typing import Any, Callable

import redis

from multialpha import cme_time
from multialpha import heartbeat as hb
from multialpha.keys import Keys
from multialpha.supervisor.manager import Beat, HeartbeatsReadable, RestartRequest

log = logging.getLogger("multialpha.supervisor")

EVENTS_MAXLEN = 2000
SUPERVISOR = "supervisor"


def supervisor_component(only: str | None) -> str:
    """``supervisor`` for a whole deployment; one per host when ``--only`` splits it across hosts."""
    import socket

    return SUPERVISOR if not only else f"{SUPERVISOR}.{socket.gethostname()}"


def is_supervisor_component(name: str) -> bool:
    return name == SUPERVISOR or name.startswith(SUPERVISOR + ".")


def event_fields(level: str, component: str, message: str, now: str | None = None) -> dict[str, str]:
    """One entry of the events stream (shared shape; status reads it)."""
    ts = now or cme_time.iso_z(cme_time.utcnow().replace(microsecond=0))
    return {"ts": ts, "level": level, "component": component, "message": message}


class RedisWatch(threading.Thread):
    def __init__(
        self,
        client: "redis.Redis",
        keys: Keys,
        components: dict[str, str],  # child name -> heartbeat component
        post: Callable[[Beat | HeartbeatsReadable], None],
        table: Callable[[], dict[str, Any]],
        extra: Callable[[], dict[str, Any]] | None = None,
        poll_s: float = 0.5,
        ttl_s: int = 10,
        component: str = SUPERVISOR,
    ) -> None:
        super().__init__(daemon=True, name="redis-watch")
        self.client, self.keys, self.components = client, keys, components
        self.post, self.table, self.extra = post, table, extra or (lambda: {})
        self.poll_s = poll_s
        self.outbox: queue.Queue[dict[str, str]] = queue.Queue()
        self.beat = hb.Heartbeat(client, keys, component, ttl_s=ttl_s)
        self._halt = threading.Event()
        self._warned = False
        self._log_failing: dict[str, bool] = {}

    def stop(self) -> None:
        self._halt.set()

    def emit(self, level: str, component: str, message: str) -> None:
        self.outbox.put(event_fields(level, component, message))

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.once()
                if self._warned:
                    self.post(HeartbeatsReadable(True))
                self._warned = False
            except redis.RedisError as e:
                if not self._warned:
                    log.warning("redis unreachable from supervisor: %s", e)
                    self.post(HeartbeatsReadable(False))
                    self._warned = True
            self._halt.wait(self.poll_s)
        try:
            self.once(final=True)
        except redis.RedisError:
            pass

    def _log_files(self) -> dict[str, dict[str, Any]]:
        """Log files this process cannot write (disk full...): in the heartbeat, and one event per outage."""
        from multialpha import logs

        failures = logs.write_failures()
        for path, doc in failures.items():
            was = self._log_failing.get(path, False)
            if doc["failing"] and not was:
                self.emit("error", SUPERVISOR, f"cannot write log file {path} ({doc['error']}); processes keep "
                                               "running, log lines are dropped and counted")
            elif was and not doc["failing"]:
                self.emit("info", SUPERVISOR, f"log file {path} writable again; {doc['lost']} line(s) lost")
            self._log_failing[path] = bool(doc["failing"])
        return {p: d for p, d in failures.items() if d["failing"]}

    def once(self, final: bool = False) -> None:
        if not final:
            pipe = self.client.pipeline(transaction=False)
            comps = self.components  # one snapshot: a reload swaps in a new dict from the loop thread
            names = list(comps)
            for name in names:
                pipe.hgetall(self.keys.heartbeat(comps[name]))
            for name, raw in zip(names, pipe.execute()):
                if raw:
                    doc = hb.decode(raw)
                    try:
                        pid = int(doc.get("pid", -1))
                    except (TypeError, ValueError):
                        continue
                    self.post(Beat(name, pid, str(doc.get("updated", "")), str(doc.get("state", ""))))
        state = "stopping" if final else "running"
        failing = self._log_files()
        # While a log file cannot be written, status shows it as this component's current error.
        current = {"last_error": "cannot write log files: " + "; ".join(f"{p} ({d['error']}, {d['lost']} lines lost)"
                                                                        for p, d in failing.items())} if failing else {}
        self.beat.beat(state, children=self.table(), log_write_failures=failing, **current, **self.extra())
        pipe = self.client.pipeline(transaction=False)
        n = 0
        while True:
            try:
                ev = self.outbox.get_nowait()
            except queue.Empty:
                break
            pipe.xadd(self.keys.events(), ev, maxlen=EVENTS_MAXLEN, approximate=True)
            n += 1
        if n:
            pipe.execute()


DEPLOY_COMMANDS = frozenset({"reload", "stop", "start"})


class ControlListener(threading.Thread):
    def __init__(self, client: "redis.Redis", keys: Keys, post: Callable[[RestartRequest], None],
                 deploy: Callable[[dict[str, Any]], None] | None = None) -> None:
        super().__init__(daemon=True, name="control")
        self.client, self.keys, self.post, self.deploy = client, keys, post, deploy
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                ps = self.client.pubsub(ignore_subscribe_messages=True)
                ps.subscribe(self.keys.control())
                while not self._halt.is_set():
                    msg = ps.get_message(timeout=0.5)
                    if msg and msg.get("type") == "message":
                        self._handle(msg["data"])
                ps.close()
            except redis.RedisError:
                self._halt.wait(1.0)

    def _handle(self, data: Any) -> None:
        try:
            doc = json.loads(data)
        except (ValueError, TypeError, RecursionError):  # RecursionError: deeply nested JSON
            log.warning("malformed control message dropped")
            return
        if isinstance(doc, dict) and doc.get("command") == "restart" and isinstance(doc.get("component"), str):
            self.post(RestartRequest(doc["component"]))
        elif isinstance(doc, dict) and isinstance(doc.get("command"), str) and doc["command"] in DEPLOY_COMMANDS \
                and self.deploy is not None:  # a non-string command (a dict, a list) is not hashable
            self.deploy(doc)


def request_restart(client: "redis.Redis", keys: Keys, component: str) -> int:
    """Ask the running supervisor to restart one child; returns listeners reached (0 = none)."""
    return int(client.publish(keys.control(), json.dumps({"command": "restart", "component": component})))
