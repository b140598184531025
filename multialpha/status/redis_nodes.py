"""The status view's Redis line: which node is primary (and through which Sentinel service),
its replicas and how far behind each one is. One INFO replication on the primary (the status
ACL user may run INFO); a failure leaves the section out, it never breaks the view."""

from __future__ import annotations

import logging
from typing import Any

import redis
from rich.text import Text

from multialpha.config import Settings
from multialpha.status.fmt import clip

log = logging.getLogger(__name__)


def read(settings: Settings, client: "redis.Redis") -> dict[str, Any] | None:
    """{"primary": "host:port", "sentinel": service or None, "role": ..., "replicas": [{"addr", "state",
    "lag_s" (seconds since its last ACK), "behind_bytes"}]}; None when Redis will not say."""
    try:
        info = client.info("replication")
        kw = client.get_connection_kwargs()
    except redis.RedisError as e:
        log.debug("no replication info: %s", e)
        return None
    pool = client.connection_pool
    host, port = kw.get("host"), kw.get("port")
    if hasattr(pool, "get_master_address"):  # a Sentinel client: the node the sentinels name now
        try:
            host, port = pool.get_master_address()
        except redis.RedisError:
            pass
    top = int(info.get("master_repl_offset") or 0)
    replicas = []
    for i in range(int(info.get("connected_slaves") or 0)):
        r = info.get(f"slave{i}")
        if isinstance(r, dict):
            replicas.append({"addr": f"{r.get('ip')}:{r.get('port')}", "state": str(r.get("state", "")),
                             "lag_s": int(r.get("lag", 0)), "behind_bytes": max(0, top - int(r.get("offset", 0)))})
    return {"primary": f"{host}:{port}", "role": str(info.get("role", "")),
            "sentinel": settings.redis.sentinel.service if settings.redis.sentinel else None, "replicas": replicas,
            "wait_replicas": settings.redis.wait_replicas}


def line(doc: dict[str, Any], width: int) -> list[Text]:
    """``redis: primary H:P (sentinel S), 1 replica: H:P online lag 0s 0 B behind`` (dim when healthy)."""
    r = doc.get("redis")
    if not r:
        return []
    head = f"redis: primary {r['primary']}" + (f" (sentinel {r['sentinel']})" if r["sentinel"] else "")
    reps = r["replicas"]
    if not reps:
        text = head + (", NO replica" if r["sentinel"] or r["wait_replicas"] else "")
    else:
        text = head + f", {len(reps)} replica{'s' if len(reps) != 1 else ''}: " + "; ".join(
            f"{x['addr']} {x['state']} lag {x['lag_s']}s {x['behind_bytes']} B behind" for x in reps)
    bad = r["role"] != "master" or (bool(r["sentinel"] or r["wait_replicas"]) and not reps) \
        or any(x["state"] != "online" for x in reps)
    return [Text(clip(text, width), style="bold red" if bad else "dim", no_wrap=True)]
