"""Finding Redis, or running a managed one, and letting every client find it.

This module is the ``up`` side (which Redis, starting a managed one); how a
command finds and reaches that Redis (:func:`connect`, :func:`probe`,
:class:`RedisAddress`) is :mod:`multialpha.supervisor.redis_address`,
re-exported here.

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
from dataclasses import replace
from pathlib import Path

import redis

from multialpha import logs, redis_acl, redis_conn, runtime
from multialpha.config import Settings
from multialpha.managed_redis import ManagedRedis, free_port, is_loopback

# Finding and reaching the Redis (address, probe, connect) lives in its own module; re-exported
# here because the commands, the tests and `up` import them from redis_setup.
from multialpha.supervisor.redis_address import (
    STATE_FILE,
    RedisAddress,
    RedisUnreachable,
    _configured_client,
    connect,
    explicit_address,
    probe,
    reason,
    require,
    state_path,
    unreachable_line,
    where,
)


class RedisSetupError(RuntimeError):
    pass


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
