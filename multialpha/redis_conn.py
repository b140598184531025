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
from redis.sentinel import Sentinel, SentinelConnectionPool

from multialpha import logs, redis_acl
from multialpha.config import Settings


def connect(settings: Settings, *, timeout: float | None = None, connect_timeout: float | None = None,
            retries: int | None = None, role: str | None = None, **kw: Any) -> redis.Redis:
    """A client for ``settings.redis`` (host, port, db, password, TLS; or the primary named by
    ``redis.sentinel``); its password is redacted from logs from now on.

    ``timeout`` / ``connect_timeout``: socket timeouts in seconds; ``retries``:
    immediate retries of a failed call (no backoff). None keeps redis-py's
    default. ``role``: whose ACL user to connect as with ``redis.acl`` (default: this process's,
    :func:`multialpha.redis_acl.set_role`). Other keywords go to ``redis.Redis`` as they are.
    """
    r = settings.redis
    logs.register_secret(r.password)
    user, password = redis_acl.credentials(settings, role)  # an ACL password is registered as it is read
    kw.setdefault("username", user)
    kw.setdefault("password", password)
    kw.update(tls_kwargs(settings))
    if timeout is not None:
        kw["socket_timeout"] = timeout
    if connect_timeout is not None:
        kw["socket_connect_timeout"] = connect_timeout
    if retries is not None:
        kw["retry"] = Retry(NoBackoff(), retries)
    if r.sentinel is not None:
        return _sentinel_client(settings, kw)
    return redis.Redis(host=r.host, port=r.port, db=r.db, **kw)


def tls_kwargs(settings: Settings) -> dict[str, Any]:
    """redis-py's TLS options for ``redis.tls`` (``rediss://``): the server's certificate is always
    verified (against ``redis.tls_ca``, else the system's CAs); a client certificate when given."""
    r = settings.redis
    if not r.tls:
        return {"ssl": False}
    kw: dict[str, Any] = {"ssl": True, "ssl_cert_reqs": "required"}
    if r.tls_ca:
        kw["ssl_ca_certs"] = str(settings.path(r.tls_ca))
    if r.tls_cert:
        kw["ssl_certfile"] = str(settings.path(r.tls_cert))
        kw["ssl_keyfile"] = str(settings.path(r.tls_key))
    return kw


def _sentinel_client(settings: Settings, kw: dict[str, Any]) -> redis.Redis:
    """A client of the primary that the sentinels name now, and again after every reconnect.

    redis-py's ``SentinelConnectionPool`` asks the sentinels for the primary each time a
    connection (re)connects, so a failover costs the callers one ConnectionError (their own
    retry loops handle it) and pub/sub re-subscribes on the new primary. A former primary that
    comes back as a replica answers READONLY: the pool drops it and asks again.
    Lua scripts are not replicated into the new primary's script cache: every script runs
    through redis-py ``Script`` objects, which answer NOSCRIPT with SCRIPT LOAD + EVALSHA
    (pipelines load missing scripts before they run).
    """
    r = settings.redis
    s = r.sentinel
    assert s is not None
    logs.register_secret(s.password)
    # Each sentinel is asked once per discovery (redis-py moves to the next one on error): no
    # backoff, and a short timeout, so one dead sentinel host does not stall every reconnect.
    ask = min(float(kw.get("socket_connect_timeout") or 1.0), 1.0)
    sentinel_kwargs: dict[str, Any] = {"socket_timeout": ask, "socket_connect_timeout": ask,
                                       "retry": Retry(NoBackoff(), 0), **tls_kwargs(settings)}
    if s.password:
        sentinel_kwargs["password"] = s.password
    sentinel = Sentinel(s.addresses(), sentinel_kwargs=sentinel_kwargs)
    client: redis.Redis = sentinel.master_for(s.service, redis_class=redis.Redis, db=r.db, **kw)
    return client


def primary_address(settings: Settings) -> tuple[str, int]:
    """(host, port) of the Redis that clients use now: the sentinels' answer, or the configured one.
    Raises ``redis.ConnectionError`` (MasterNotFoundError) when no sentinel names a primary."""
    r = settings.redis
    if r.sentinel is None:
        return r.host, r.port
    client = connect(settings, timeout=1.0, connect_timeout=1.0, retries=0)
    try:
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        host, port = pool.get_master_address()
    finally:
        client.close()
    return str(host), int(port)


def close_quietly(*closers: Callable[[], object] | None) -> None:
    """Call each closer (None: skipped), each on its own: tearing down a connection that may be dead."""
    for close in closers:
        if close is not None:
            try:
                close()
            except Exception:
                pass
