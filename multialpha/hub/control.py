"""The hub's control channel (``Keys.hub_control()``, pub/sub).

Messages are JSON objects ``{"command": "shutdown" | "reload" | "ping",
"id": "<request id>"}``; ``id`` is required for ``ping`` only, whose answer is
published on ``Keys.hub_control_reply(id)``. Anything else - not JSON, not an
object, unknown command, oversized - is logged, counted and ignored.

The hub also publishes notable events (rolls) on the same channel as
``{"event": "roll", ...}``; the hub ignores messages without ``command``
silently, so it does not count its own events as garbage.

Polled from the hub thread (``get_message(timeout=0)``): no extra thread, and
a Redis outage only means no commands until it is back.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import redis

from multialpha.keys import Keys

log = logging.getLogger(__name__)

COMMANDS = frozenset({"shutdown", "reload", "ping"})
MAX_PAYLOAD = 4096
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class ControlError(ValueError):
    pass


@dataclass(frozen=True)
class Command:
    name: str
    request_id: str | None = None


def parse(payload: str | bytes) -> Command | None:
    """A command, None for a hub event echo, ControlError for garbage."""
    if len(payload) > MAX_PAYLOAD:
        raise ControlError(f"control message of {len(payload)} bytes")
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting fits in 4 KB
        raise ControlError("not JSON") from None
    if not isinstance(doc, dict):
        raise ControlError("not a JSON object")
    if "command" not in doc:
        if "event" in doc:
            return None
        raise ControlError("no 'command'")
    name = doc["command"]
    if not isinstance(name, str) or name not in COMMANDS:  # a list is unhashable
        raise ControlError(f"unknown command {name!r}"[:120])
    rid = doc.get("id")
    if rid is not None and (not isinstance(rid, str) or not _ID.match(rid)):
        raise ControlError("bad 'id'")
    if name == "ping" and rid is None:
        raise ControlError("ping needs an 'id' to reply to")
    return Command(name, rid)


class ControlChannel:
    def __init__(self, client: "redis.Redis", keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self.channel = keys.hub_control()
        self._pubsub: Any = None
        self.malformed = 0

    def poll(self, limit: int = 100) -> list[Command]:
        out: list[Command] = []
        try:
            if self._pubsub is None:
                self._pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                self._pubsub.subscribe(self.channel)
            for _ in range(limit):
                msg = self._pubsub.get_message(timeout=0)
                if msg is None:
                    break
                if msg.get("type") != "message":
                    continue
                try:
                    cmd = parse(msg["data"])
                except ControlError as e:
                    self.malformed += 1
                    log.warning("ignored malformed control message #%d: %s", self.malformed, e)
                    continue
                if cmd is not None:
                    out.append(cmd)
        except (redis.RedisError, OSError) as e:
            log.debug("control channel unavailable: %s", e)
            self.close()
        return out

    def reply(self, request_id: str, doc: dict[str, Any]) -> None:
        try:
            self.client.publish(self.keys.hub_control_reply(request_id), json.dumps(doc))
        except redis.RedisError as e:
            log.warning("cannot answer ping %s: %s", request_id, e)

    def announce(self, doc: dict[str, Any]) -> None:
        """Publish an event (roll) on the control channel and the events stream."""
        try:
            payload = json.dumps(doc)
            pipe = self.client.pipeline(transaction=False)
            pipe.publish(self.channel, payload)
            pipe.xadd(self.keys.events(), {k: str(v) for k, v in doc.items()}, maxlen=10_000, approximate=True)
            pipe.execute()
        except redis.RedisError as e:
            log.warning("cannot announce %s: %s", doc.get("event"), e)

    def close(self) -> None:
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            except Exception:
                pass
        self._pubsub = None
