"""Kill switch and the read-only portfolio view for `status`.

`halt` sets a flag that the gate script reads inside the same atomic step
as every entry check, so it takes effect for the very next entry of every
worker, with or without a subscriber. The control-channel message only lets
workers log/show it at once. Exits are never blocked.
"""

from __future__ import annotations

import getpass
import json
import os
from datetime import datetime
from typing import Any, Callable

import redis

from multialpha import cme_time, redis_conn
from multialpha.config import Settings
from multialpha.portfolio.gate import Gate, _s


def connect(settings: Settings, **kwargs: Any) -> redis.Redis:
    """A decode_responses client for the deployment's Redis (redis-py's retries)."""
    return redis_conn.connect(settings, decode_responses=True, **kwargs)


def halt(
    settings: Settings,
    client: redis.Redis,
    reason: str = "",
    clock: Callable[[], datetime] = cme_time.utcnow,
) -> str:
    gate = Gate(settings, client)
    now = cme_time.iso_z(clock())
    who = _who()
    text = f"{reason or 'manual halt'} (by {who} at {now})"
    pipe = client.pipeline(transaction=True)
    pipe.set(gate.halt_key(), text)
    pipe.publish(gate.keys.control(), json.dumps({"command": "halt", "reason": text, "at": now}))
    pipe.xadd(gate.keys.events(), {"type": "halt", "reason": text, "ts": now}, maxlen=10_000, approximate=True)
    pipe.execute()
    return text


def resume(
    settings: Settings, client: redis.Redis, clock: Callable[[], datetime] = cme_time.utcnow
) -> bool:
    """Lift the kill switch; True if it was set."""
    gate = Gate(settings, client)
    now = cme_time.iso_z(clock())
    pipe = client.pipeline(transaction=True)
    pipe.delete(gate.halt_key())
    # A flatten's reduce-only hold ends here too. A failed exit's does not: only resolving
    # the exit (`multialpha orders retry|ack`) lifts it, since the broker may hold the position.
    pipe.delete(gate.reduce_only_key())
    pipe.delete(gate.flatten_key())
    pipe.publish(gate.keys.control(), json.dumps({"command": "resume", "by": _who(), "at": now}))
    pipe.xadd(gate.keys.events(), {"type": "resume", "by": _who(), "ts": now}, maxlen=10_000, approximate=True)
    was_halted, was_reduce_only, was_flatten, *_ = pipe.execute()
    return bool(was_halted or was_reduce_only or was_flatten)


def flatten(
    settings: Settings,
    client: redis.Redis,
    strategy: str | None = None,
    reason: str = "",
    clock: Callable[[], datetime] = cme_time.utcnow,
) -> str:
    """Exit every open position in scope (one strategy, or all), then hold it reduce-only.

    The request is state in Redis, read by the gate with every mark, so a worker that
    misses the control message (or restarts) still flattens on its next bar; the message
    makes a running worker act at once. The exits go through each strategy's normal order
    path. Lifted by `multialpha resume`."""
    gate = Gate(settings, client)
    # A strategy just removed from the config still runs until `reload` stops it: its
    # positions can (must) be flattened though the file no longer names it.
    if strategy is not None and strategy not in settings.strategies and not gate.positions(strategy):
        raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(sorted(settings.strategies))}")
    scope = strategy or "*"
    now = cme_time.iso_z(clock())
    text = f"{reason or 'manual flatten'} (by {_who()} at {now})"
    pipe = client.pipeline(transaction=True)
    pipe.hset(gate.flatten_key(), scope, text)
    pipe.hset(gate.reduce_only_key(), scope, f"flatten: {text}")
    pipe.publish(gate.keys.control(), json.dumps({"command": "flatten", "scope": scope, "reason": text, "at": now}))
    pipe.xadd(gate.keys.events(), {"type": "flatten", "scope": scope, "reason": text, "ts": now},
              maxlen=10_000, approximate=True)
    pipe.execute()
    return text


def snapshot(
    settings: Settings, client: redis.Redis, clock: Callable[[], datetime] = cme_time.utcnow
) -> dict[str, Any]:
    """Everything `status` shows about the portfolio, plain data, no secrets."""
    from multialpha.orders.journal import pending_orders

    gate = Gate(settings, client)
    now = clock()
    day = gate.day_pnl(now)
    day_hash = {_s(k): _s(v) for k, v in client.hgetall(gate.day_key(day.trading_day)).items()}
    halt_reason = gate.halted()
    positions = gate.positions()
    reduce_only = gate.reduce_only()
    flatten_scopes = {_s(k) for k in client.hkeys(gate.flatten_key())}
    if day_hash.get("flatten") == "1":
        flatten_scopes.add("*")
    return {
        "trading_day": day.trading_day.isoformat(),
        "day_pnl": round(day.pnl, 2),
        "realized": round(float(day_hash.get("realized", 0) or 0), 2),
        "daily_stop_loss": settings.portfolio.daily_stop_loss,
        "stopped": day.stopped,
        "stopped_at": day_hash.get("stopped_at"),
        "halted": halt_reason is not None,
        "halt_reason": halt_reason,
        "max_positions": settings.portfolio.max_positions,
        "open_positions": len(positions),
        "positions": positions,
        "pending_orders": pending_orders(client, gate.keys),
        # scope ('*' or a strategy) -> why it may only reduce risk (flatten, failed exit)
        "reduce_only": reduce_only,
        "flatten_pending": sorted({p["strategy"] for p in positions if p.get("state", "open") == "open"
                                   and ("*" in flatten_scopes or p["strategy"] in flatten_scopes)}),
        "exit_failed": [p for p in positions if p.get("state") == "exit_failed"],
        "entries": "blocked" if (halt_reason is not None or day.stopped or "*" in reduce_only) else "allowed",
    }


def _who() -> str:
    try:
        return f"{getpass.getuser()}@pid{os.getpid()}"
    except Exception:  # noqa: BLE001 - no user name in some containers
        return f"pid{os.getpid()}"
