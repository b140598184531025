"""Where this deployment's Redis is and how a command reaches it: the address, the probe, ``connect``.

What every command needs (``status``, ``halt``, ``orders``, the hub and workers' start-up check):
find the Redis that ``up`` uses (``<runtime>/managed_redis.json``, the configured address, or
the Sentinel primary), probe it, and report a failure in one plain line. Separate from
:mod:`multialpha.supervisor.redis_setup`, which decides which Redis ``up`` uses and starts a
managed ``redis-server``; that module re-exports these names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from multialpha import logs, redis_acl, redis_conn, runtime
from multialpha.config import Settings

STATE_FILE = "managed_redis.json"


class RedisUnreachable(redis.ConnectionError):
    """No usable Redis for a command; ``line`` is one line naming the address and the reason."""

    def __init__(self, host: str, port: int, reason: str, where: str = "") -> None:
        self.host, self.port, self.reason = host, port, reason
        self.where = where or f"{host}:{port}"
        super().__init__(reason)  # callers say where: `status` prints "cannot reach Redis at H:P: <this>"

    @property
    def line(self) -> str:
        return f"cannot reach Redis at {self.where}: {self.reason}"


def where(settings: Settings) -> str:
    """The configured Redis in words: host:port, or the Sentinel service and its sentinels."""
    r = settings.redis
    if r.sentinel is not None:
        return f"the primary of Sentinel service {r.sentinel.service!r} (sentinels {', '.join(r.sentinel.hosts)})"
    return f"{r.host}:{r.port}"


def unreachable_line(settings: Settings, e: BaseException) -> str:
    """One line for any Redis failure of a command: where, and why, in plain words."""
    if isinstance(e, RedisUnreachable):
        return e.line
    return f"cannot reach Redis at {where(settings)}: {reason(e)}"


def require(settings: Settings, timeout: float = 2.0) -> str | None:
    """Fail-fast start-up probe of the configured address (what the hub and workers use): one PING,
    no retries. None when it answers, else the one line to print."""
    client = _configured_client(settings, timeout)
    try:
        client.ping()
        return None
    except redis.RedisError as e:
        return unreachable_line(settings, e)
    finally:
        client.close()


def reason(e: BaseException) -> str:
    """A redis-py error in a few plain words (no traceback, no secret)."""
    if isinstance(e, redis_acl.AclError):
        return str(e)
    text = " ".join(logs.redact(str(e)).split())
    low = text.lower()
    if isinstance(e, redis.AuthenticationError) or "invalid username-password" in low or "wrongpass" in low:
        if "hello must be called" in low or "noauth" in low or "authentication required" in low:
            return "it requires a password (set REDIS_PASSWORD / redis.password)"
        return "it refused our password (check REDIS_PASSWORD / redis.password)"
    if "noauth" in low or "authentication required" in low:
        return "it requires a password (set REDIS_PASSWORD / redis.password)"
    if isinstance(e, redis.TimeoutError) or "timed out" in low:
        return "timed out"
    if "connection refused" in low:
        return "connection refused (nothing listening there)"
    if "no master found" in low:
        return "no sentinel names a primary (sentinels down, or a failover in progress)"
    if "name or service not known" in low or "temporary failure in name resolution" in low:
        return "unknown host"
    return text[:200] or type(e).__name__


def explicit_address(environ: "dict[str, str] | None" = None) -> bool:
    """MULTIALPHA__REDIS__HOST/PORT in the environment: an address chosen on purpose, which wins
    over ``managed_redis.json``."""
    env = os.environ if environ is None else environ
    return any(k.upper() in ("MULTIALPHA__REDIS__HOST", "MULTIALPHA__REDIS__PORT") for k in env)


@dataclass(frozen=True)
class RedisAddress:
    host: str
    port: int
    password: str
    managed: bool
    why: str = ""  # one line: which Redis and why (logged by `up`)
    # With redis.sentinel: the settings whose sentinels name the primary; clients follow failovers.
    sentinel_of: Settings | None = field(default=None, compare=False, repr=False)
    # With redis.acl: (user, password) of this process's role; the managed password (the default
    # user's, an administrator) is then never handed to a child.
    acl: tuple[str, str] | None = field(default=None, compare=False, repr=False)

    def child_env(self) -> dict[str, str]:
        if not self.managed:
            return {}
        env = {
            "MULTIALPHA__REDIS__HOST": self.host,
            "MULTIALPHA__REDIS__PORT": str(self.port),
            "MULTIALPHA__REDIS__TLS": "false",
        }
        if self.acl is None:
            env["MULTIALPHA__REDIS__PASSWORD"] = self.password
        return env

    def client(self, db: int = 0, **kw: Any) -> "redis.Redis":
        if self.sentinel_of is not None:  # host/port are only where the primary was at start
            return redis_conn.connect(self.sentinel_of, **kw)
        if self.acl is not None:
            return redis.Redis(host=self.host, port=self.port, username=self.acl[0], password=self.acl[1], db=db, **kw)
        return redis.Redis(host=self.host, port=self.port, password=self.password or None, db=db, **kw)


def state_path(settings: Settings) -> Path:
    return runtime.runtime_dir(settings) / STATE_FILE


def _no_retry() -> Retry:
    # redis-py 8 retries a refused connection 3x with backoff (~3.7 s): far too slow for a probe.
    return Retry(NoBackoff(), 0)


def _configured_client(settings: Settings, timeout: float) -> "redis.Redis":
    return redis_conn.connect(settings, timeout=timeout, connect_timeout=timeout, retries=0, decode_responses=True)


def connect(settings: Settings, timeout: float = 2.0, environ: "dict[str, str] | None" = None) -> "redis.Redis":
    """A decode_responses client to this deployment's Redis, checked with one PING (no retries:
    a wrong address fails in milliseconds, not after redis-py's ~4 s of backoff).

    Which one: with ``MULTIALPHA__REDIS__HOST``/``PORT`` set (or ``redis.managed: never``), the
    configured address — its password from ``managed_redis.json`` when that file names the same
    address and none is configured. Otherwise the managed Redis of ``managed_redis.json`` when it
    answers (it is what ``up`` runs), else the configured address. Raises
    :class:`RedisUnreachable` (a ``redis.ConnectionError``) with one plain line.
    """
    r = settings.redis
    if r.sentinel is not None:  # the sentinels name the primary; there is no managed Redis
        client = _configured_client(settings, timeout)
        try:
            client.ping()
        except redis.RedisError as e:
            client.close()
            raise RedisUnreachable(r.host, r.port, reason(e), where=where(settings)) from None
        return client
    st = runtime.read_json(state_path(settings)) if r.managed != "never" else None
    explicit = explicit_address(environ) or r.managed == "never"
    if st and not explicit:
        managed = _client(st["host"], int(st["port"]), st.get("password") or "", settings, timeout)
        try:
            managed.ping()
            logs.register_secret(st.get("password"))
            return managed
        except redis.RedisError:
            managed.close()  # stale file (that `up` is gone): the configured address
    password = r.password
    if not password and st and st.get("host") == r.host and int(st.get("port", 0)) == r.port:
        password = st.get("password") or ""
    logs.register_secret(password)
    client = _client(r.host, r.port, password, settings, timeout, tls=r.tls)
    try:
        client.ping()
    except redis.RedisError as e:
        client.close()
        raise RedisUnreachable(r.host, r.port, reason(e)) from None
    return client


def _client(host: str, port: int, password: str, settings: Settings, timeout: float, tls: bool = False) -> "redis.Redis":
    user, acl_password = redis_acl.credentials(settings)
    if user is not None:  # redis.acl: this process's role, never the managed (admin) password
        password = acl_password or ""
    tls_kw = redis_conn.tls_kwargs(settings) if tls else {}
    return redis.Redis(host=host, port=port, username=user, password=password or None, db=settings.redis.db,
                       **tls_kw,
                       socket_connect_timeout=timeout, socket_timeout=timeout, decode_responses=True,
                       retry=_no_retry())


def probe(settings: Settings, timeout: float = 1.0) -> str:
    """'ok' (it requires a password and accepts ours), 'open' (it answers without any password),
    'refused' (nothing listening / unreachable) or 'auth' (wrong or missing password)."""
    r = settings.redis
    bare = redis.Redis(host=r.host, port=r.port, db=r.db, **redis_conn.tls_kwargs(settings),
                       socket_connect_timeout=timeout,
                       socket_timeout=timeout, retry=_no_retry())
    try:
        bare.ping()
        return "open"
    except (redis.AuthenticationError, redis.ResponseError) as e:
        if not isinstance(e, redis.AuthenticationError) and "auth" not in str(e).lower():
            return "refused"
    except redis.RedisError:
        return "refused"
    finally:
        bare.close()
    if not r.password:
        return "auth"
    client = _configured_client(settings, timeout)
    try:
        client.ping()
        return "ok"
    except (redis.AuthenticationError, redis.ResponseError):
        return "auth"
    except redis.RedisError:
        return "refused"
    finally:
        client.close()
