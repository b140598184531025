"""Clients for the deployment's Redis, built from ``settings.redis`` in one place.

redis-py 8's defaults retry a refused or dropped connection 3 times with
backoff (~3.5-4.5 s per call) and never time out a read. Most of our
processes have a retry loop of their own (the hub buffers bars, the worker's
pumps reconnect, the supervisor probes), so their clients ask for
``retries=0`` and short timeouts; each caller says why next to its call.
"""

from __future__ import annotations

from typing import Any, Callable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from multialpha import logs
from multialpha.config import Settings


def connect(settings: Settings, *, timeout: float | None = None, connect_timeout: float | None = None,
            retries: int | None = None, **kw: Any) -> redis.Redis:
    """A client for ``settings.redis`` (host, port, db, password, TLS); its password is redacted
    from logs from now on.

    ``timeout`` / ``connect_timeout``: socket timeouts in seconds; ``retries``:
    immediate retries of a failed call (no backoff). None keeps redis-py's
    default. Other keywords go to ``redis.Redis`` as they are.
    """
    r = settings.redis
    logs.register_secret(r.password)
    if timeout is not None:
        kw["socket_timeout"] = timeout
    if connect_timeout is not None:
        kw["socket_connect_timeout"] = connect_timeout
    if retries is not None:
        kw["retry"] = Retry(NoBackoff(), retries)
    return redis.Redis(host=r.host, port=r.port, db=r.db, password=r.password or None, ssl=r.tls, **kw)


def close_quietly(*closers: Callable[[], object] | None) -> None:
    """Call each closer (None: skipped), each on its own: tearing down a connection that may be dead."""
    for close in closers:
        if close is not None:
            try:
                close()
            except Exception:
                pass
