"""Heartbeat hashes: how every process tells the others (and `status`) it lives.

One hash per component at ``Keys.heartbeat(component)`` with a TTL, so a dead
process's entry disappears by itself. Components are ``hub``,
``worker.<strategy>``, ``sandbox`` and ``supervisor``. Common fields:
``component, pid, host, state, started, updated`` (ISO UTC); every other
field is component-specific. Values are strings in Redis; non-string values
are stored as JSON and decoded by :func:`read_all`.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime
from typing import Any, Callable

import redis

from multialpha import cme_time
from multialpha.keys import Keys


class Heartbeat:
    def __init__(
        self,
        client: "redis.Redis",
        keys: Keys,
        component: str,
        ttl_s: int = 10,
        clock: Callable[[], datetime] = cme_time.utcnow,
    ) -> None:
        self.client = client
        self.key = keys.heartbeat(component)
        self.component = component
        self.ttl_s = ttl_s
        self.clock = clock
        self.started = cme_time.iso_z(clock())

    def beat(self, state: str, **fields: Any) -> None:
        """Write the hash and refresh its TTL in one round trip."""
        doc = {
            "component": self.component,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "state": state,
            "started": self.started,
            "updated": cme_time.iso_z(self.clock()),
            **fields,
        }
        mapping = {k: v if isinstance(v, str) else json.dumps(v) for k, v in doc.items()}
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.key)
        pipe.hset(self.key, mapping=mapping)
        pipe.expire(self.key, self.ttl_s)
        pipe.execute()

    def clear(self) -> None:
        self.client.delete(self.key)


def decode(raw: dict[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in raw.items():
        k = k.decode(errors="replace") if isinstance(k, bytes) else k
        v = v.decode(errors="replace") if isinstance(v, bytes) else v  # garbage must not kill the reader
        try:
            out[k] = json.loads(v)
        except (ValueError, TypeError, RecursionError):
            out[k] = v
    return out


def read(client: "redis.Redis", keys: Keys, component: str) -> dict[str, Any] | None:
    raw = client.hgetall(keys.heartbeat(component))
    return decode(raw) if raw else None


def read_all(client: "redis.Redis", keys: Keys) -> dict[str, dict[str, Any]]:
    """Every live component's heartbeat, by component name."""
    out: dict[str, dict[str, Any]] = {}
    for key in client.scan_iter(match=keys.heartbeat_pattern(), count=100):
        raw = client.hgetall(key)
        if raw:
            doc = decode(raw)
            out[str(doc.get("component", key))] = doc
    return out
