"""Finding Redis, or running a managed one, and letting every client find it.

``up`` first tries the configured address. If nothing answers there and the
address is loopback, it starts a managed ``redis-server`` (via
:class:`ManagedRedis`) with a generated password, and records
``{host, port, password}`` in ``<runtime>/managed_redis.json`` (mode 0600).
Children learn it from ``MULTIALPHA__REDIS__*`` environment overrides (never
the command line); ``status``/``restart`` read the file through
:func:`connect`. The password is set with ``CONFIG SET requirepass`` right
after start so it never appears in ``redis-server``'s argv either.

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
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from multialpha import logs, redis_conn, runtime
from multialpha.config import Settings
from multialpha.managed_redis import ManagedRedis, free_port, is_loopback

STATE_FILE = "managed_redis.json"


class RedisSetupError(RuntimeError):
    pass


@dataclass(frozen=True)
class RedisAddress:
    host: str
    port: int
    password: str
    managed: bool

    def child_env(self) -> dict[str, str]:
        if not self.managed:
            return {}
        return {
            "MULTIALPHA__REDIS__HOST": self.host,
            "MULTIALPHA__REDIS__PORT": str(self.port),
            "MULTIALPHA__REDIS__PASSWORD": self.password,
            "MULTIALPHA__REDIS__TLS": "false",
        }

    def client(self, db: int = 0, **kw: object) -> "redis.Redis":
        return redis.Redis(host=self.host, port=self.port, password=self.password or None, db=db, **kw)


def state_path(settings: Settings) -> Path:
    return runtime.runtime_dir(settings) / STATE_FILE


def _no_retry() -> Retry:
    # redis-py 8 retries a refused connection 3x with backoff (~3.7 s): far too slow for a probe.
    return Retry(NoBackoff(), 0)


def _configured_client(settings: Settings, timeout: float) -> "redis.Redis":
    return redis_conn.connect(settings, timeout=timeout, connect_timeout=timeout, retries=0, decode_responses=True)


def connect(settings: Settings, timeout: float = 2.0) -> "redis.Redis":
    """A decode_responses client to this deployment's Redis (configured, else the managed one)."""
    client = _configured_client(settings, timeout)  # (registers the password for redaction)
    try:
        client.ping()
        client.close()
        return redis_conn.connect(settings, timeout=timeout, connect_timeout=timeout, decode_responses=True)
    except redis.RedisError as first:
        client.close()
        st = runtime.read_json(state_path(settings))
        if not st:
            raise
        managed = redis.Redis(host=st["host"], port=int(st["port"]), password=st.get("password") or None,
                              db=settings.redis.db, socket_connect_timeout=timeout, socket_timeout=timeout,
                              decode_responses=True, retry=_no_retry())
        try:
            managed.ping()
        except redis.RedisError:
            managed.close()
            raise first from None
        logs.register_secret(st.get("password"))
        return managed


def probe(settings: Settings, timeout: float = 1.0) -> str:
    """'ok', 'refused' (nothing listening / unreachable) or 'auth' (wrong or missing password)."""
    client = _configured_client(settings, timeout)
    try:
        client.ping()
        return "ok"
    except redis.AuthenticationError:
        return "auth"
    except redis.ResponseError as e:  # NOAUTH comes back as a ResponseError on some servers
        return "auth" if "auth" in str(e).lower() else "refused"
    except redis.RedisError:
        return "refused"
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


def start_managed(settings: Settings) -> tuple[RedisAddress, ManagedRedis]:
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
    mr = ManagedRedis(host=host, port=port, password="", workdir=workdir, persist=True)
    mr.binary = _wrapper(rt, os.getpid())
    mr.start()
    mr.password = password
    c = redis.Redis(host=host, port=port)
    c.config_set("requirepass", password)
    c.close()
    address = RedisAddress(host, port, password, managed=True)
    record(settings, address, mr)
    return address, mr


def record(settings: Settings, address: RedisAddress, mr: ManagedRedis) -> None:
    """Write the state file (0600): where the managed server is, its password and pid (again after a restart)."""
    runtime.write_json_atomic(state_path(settings), {"host": address.host, "port": address.port,
                                                     "password": address.password,
                                                     "pid": mr.proc.pid if mr.proc else None})


def ensure(settings: Settings) -> tuple[RedisAddress, ManagedRedis | None]:
    """The Redis to use: the configured one if it answers, else a managed one."""
    r = settings.redis
    state = probe(settings)
    if state == "ok":
        return RedisAddress(r.host, r.port, r.password, managed=False), None
    if state == "auth":
        raise RedisSetupError(
            f"Redis at {r.host}:{r.port} refused our credentials: set REDIS_PASSWORD (redis.password) "
            "to its password"
        )
    return start_managed(settings)
