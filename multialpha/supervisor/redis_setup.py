"""Finding Redis, or running a managed one, and letting every client find it.

Which Redis ``up`` uses follows ``redis.managed`` (:func:`ensure`; it says
which and why in one log line):

- ``auto`` (default): the configured address when a Redis there requires
  our password and accepts it. A Redis that answers *without* a password
  (Debian's ``redis-server`` on 6379: no password, no persistence) was not
  started by us and is not used unless ``redis.allow_unauthenticated: true``;
  ``up`` starts a managed one instead (on a free port if the configured one is
  taken). Nothing answering on a loopback address: a managed one.
- ``always``: a managed one, whatever answers at the configured address.
- ``never``: the configured address as it is (your own Redis); nothing
  answering there is an error.

A managed ``redis-server`` (via :class:`ManagedRedis`) gets a generated
password, and ``{host, port, password}`` go to
``<runtime>/managed_redis.json`` (mode 0600).
Children learn it from ``MULTIALPHA__REDIS__*`` environment overrides (never
the command line); ``status``/``restart``/``halt``/``orders`` … read the file
through :func:`connect`, unless ``MULTIALPHA__REDIS__HOST``/``PORT`` name an
address explicitly (overrides win over the file). The password is set with
``CONFIG SET requirepass`` right after start so it never appears in
``redis-server``'s argv either.

The managed server persists (``appendonly yes``, ``appendfsync everysec``,
data in ``<runtime>/redis``): a kill -9 of Redis, of ``up``, or a plain
``down``/``up`` keeps the bar log, positions and the order journal.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from multialpha import logs, redis_acl, redis_conn, runtime
from multialpha.config import Settings
from multialpha.managed_redis import ManagedRedis, free_port, is_loopback

STATE_FILE = "managed_redis.json"


class RedisSetupError(RuntimeError):
    pass


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


def _persistence(settings: Settings) -> str:
    """', no persistence (appendonly no)' when the server says so; '' otherwise or if it will not say."""
    client = _configured_client(settings, 1.0)
    try:
        aof = client.config_get("appendonly").get("appendonly")
        return ", WITHOUT persistence (appendonly no): the order journal would not survive a Redis crash" \
            if aof == "no" else ""
    except redis.RedisError:
        return ""
    finally:
        client.close()


def _wrapper(rt: Path, supervisor_pid: int) -> str:
    """An executable that becomes redis-server with the parent-death signal set."""
    real = shutil.which("redis-server")
    if not real:
        raise RedisSetupError("redis-server not found on PATH (apt-get install redis-server)")
    path = rt / "redis-server-pdeathsig"
    path.write_text(
        "#!/bin/sh\n"
        f'exec "{sys.executable}" -m multialpha.supervisor.pdeathsig {supervisor_pid} "{real}" "$@"\n'
    )
    path.chmod(stat.S_IRWXU)
    return str(path)


def start_managed(settings: Settings, why: str = "") -> tuple[RedisAddress, ManagedRedis]:
    host = settings.redis.host
    if not is_loopback(host):
        raise RedisSetupError(
            f"no Redis answers at {host}:{settings.redis.port}, and a managed redis-server is only started "
            "on a loopback address; start Redis there or point redis.host at 127.0.0.1"
        )
    rt = runtime.runtime_dir(settings)
    previous = runtime.read_json(state_path(settings)) or {}
    password = settings.redis.password or previous.get("password") or secrets.token_urlsafe(24)
    logs.register_secret(password)
    port = settings.redis.port
    try:
        import socket

        with socket.socket() as s:
            s.bind((host, port))
    except OSError:
        port = free_port(host)
    workdir = rt / "redis"
    workdir.mkdir(exist_ok=True)
    # Durable: the AOF in <runtime>/redis survives a kill -9 of redis-server (and of `up`); the
    # order journal and the gate's order-id claims must, or a restart could send an order twice.
    extra: tuple[str, ...] = ()
    if settings.redis.acl:  # loaded at every (re)start of the server; passwords only as SHA-256
        users = workdir / "users.acl"
        users.touch(mode=0o600)
        # The default user stays open only until CONFIG SET requirepass below, as without ACLs.
        users.write_text(redis_acl.acl_file(settings, default="on nopass ~* &* +@all"))
        extra = ("--aclfile", str(users))
    mr = ManagedRedis(host=host, port=port, password="", workdir=workdir, persist=True, extra_args=extra)
    mr.binary = _wrapper(rt, os.getpid())
    mr.start()
    mr.password = password
    c = redis.Redis(host=host, port=port)
    c.config_set("requirepass", password)
    c.close()
    moved = f" (port {settings.redis.port} is taken)" if port != settings.redis.port else ""
    address = RedisAddress(host, port, password, managed=True,
                           why=f"{why}started a managed redis-server on {host}:{port}{moved} with a password and "
                               f"append-only persistence (state in {state_path(settings)})")
    record(settings, address, mr)
    return address, mr


def record(settings: Settings, address: RedisAddress, mr: ManagedRedis) -> None:
    """Write the state file (0600): where the managed server is, its password and pid (again after a restart)."""
    runtime.write_json_atomic(state_path(settings), {"host": address.host, "port": address.port,
                                                     "password": address.password,
                                                     "pid": mr.proc.pid if mr.proc else None})


def ensure(settings: Settings) -> tuple[RedisAddress, ManagedRedis | None]:
    """The Redis `up` uses, per ``redis.managed`` (module docstring); ``address.why`` says why.
    With ``redis.acl`` its clients connect as the supervisor role."""
    try:
        address, managed = _ensure(settings)
        user, password = redis_acl.credentials(settings)
    except redis_acl.AclError as e:
        raise RedisSetupError(str(e)) from None
    if user is not None:
        address = replace(address, acl=(user, password or ""))
    return address, managed


def _ensure(settings: Settings) -> tuple[RedisAddress, ManagedRedis | None]:
    r = settings.redis
    if r.sentinel is not None:
        return _sentinel_address(settings), None
    where = f"{r.host}:{r.port}"
    if r.managed == "always":
        return start_managed(settings, "redis.managed: always: ")
    state = probe(settings)
    if state == "ok":
        return RedisAddress(r.host, r.port, r.password, managed=False,
                            why=f"using the Redis at {where} (redis.managed: {r.managed}; it requires a password and "
                                f"accepted ours){_persistence(settings)}"), None
    if state == "auth":
        raise RedisSetupError(
            f"Redis at {where} refused our credentials: set REDIS_PASSWORD (redis.password) to its password"
            + ("" if r.managed == "never" else ", or use another redis.port for a managed one")
        )
    if state == "open":
        if r.managed == "never" or r.allow_unauthenticated:
            told = "redis.managed: never" if r.managed == "never" else "redis.allow_unauthenticated: true"
            return RedisAddress(r.host, r.port, r.password, managed=False,
                                why=f"using the Redis at {where} WITHOUT a password ({told})"
                                    f"{_persistence(settings)}"), None
        if not is_loopback(r.host):
            raise RedisSetupError(
                f"the Redis at {where} answers without a password and was not started by multialpha: not using it. "
                "Give it a password (REDIS_PASSWORD), or set redis.managed: never (or "
                "redis.allow_unauthenticated: true) to use it as it is")
        return start_managed(settings, f"not using the Redis at {where}: it answers without a password and was not "
                                       "started by multialpha (redis.managed: never or redis.allow_unauthenticated: "
                                       "true would use it); ")
    if r.managed == "never":
        raise RedisSetupError(f"no Redis answers at {where} and redis.managed is never: start your Redis there, "
                              "or set redis.managed: auto to let `up` run one")
    return start_managed(settings, f"no Redis answers at {where}; ")


def _sentinel_address(settings: Settings) -> RedisAddress:
    """With ``redis.sentinel`` `up` never starts a Redis: the sentinels' primary must answer.
    Children get no address override: each one asks the sentinels itself, after every failover."""
    r = settings.redis
    client = _configured_client(settings, 2.0)
    try:
        client.ping()
        host, port = redis_conn.primary_address(settings)
    except redis.RedisError as e:
        raise RedisSetupError(f"cannot reach Redis at {where(settings)}: {reason(e)}") from None
    finally:
        client.close()
    return RedisAddress(host, port, r.password, managed=False,
                        why=f"using {where(settings)}: primary now at {host}:{port}{_persistence(settings)}",
                        sentinel_of=settings)
