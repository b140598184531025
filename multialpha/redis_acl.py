"""Least privilege in Redis: one ACL user per role, each process connecting as its own.

Roles: ``hub``, ``worker.<strategy>`` (one per enabled strategy), ``status`` (read-only) and
``supervisor`` (``up`` and the operator commands: halt/resume/restart/orders/flatten). The user
of a role is ``<namespace>.<role>`` (two deployments sharing a Redis never share a user); its
password comes from ``MULTIALPHA_REDIS_PASSWORD_<ROLE>`` (``HUB``, ``WORKER_IBS_A``, ``STATUS``,
``SUPERVISOR``) and is never written in clear: the ACL file holds its SHA-256 (``#<hex>``).

Redis ACLs cannot tell PUBLISH from SUBSCRIBE by channel pattern, so a worker's root rules
allow subscribing to the market channels but not ``PUBLISH`` at all, and a selector allows
``PUBLISH`` on the deployment's control channel only (the gate script announces a daily-stop
flatten there). Key patterns come from :class:`~multialpha.keys.Keys`.

Shared by design (the gate arbitrates between strategies, in one Lua script): every worker may
touch ``portfolio:*`` and the order journal; Redis checks the keys a script touches against the
caller's user, so a worker that holds these rights could also write them directly. What is a
strategy's own (its cursor, its heartbeat) is closed to the others.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Mapping

import redis

from multialpha import logs
from multialpha.keys import Keys
from multialpha.settings_model import Settings

_ROLE = ["supervisor"]  # this process's role (set_role at each process's entry); CLI commands: supervisor


def set_role(role: str) -> None:
    """Declare which role this process connects as (hub.run, worker.run, status)."""
    _ROLE[0] = role


def current_role() -> str:
    return _ROLE[0]


def roles(settings: Settings) -> list[str]:
    return ["hub", *(f"worker.{n}" for n in settings.enabled_strategies), "status", "supervisor"]


def username(settings: Settings, role: str) -> str:
    return f"{settings.redis.namespace}.{role}"


def password_env(role: str) -> str:
    return "MULTIALPHA_REDIS_PASSWORD_" + re.sub(r"[^A-Za-z0-9]", "_", role).upper()


class AclError(redis.AuthenticationError):
    """A role's password variable is missing: ``env`` names it. A Redis authentication error, so
    every command's Redis-failure path says it in one line (never a traceback)."""

    def __init__(self, env: str) -> None:
        self.env = env
        super().__init__(f"{env} is not set (the Redis password of that role; redis.acl, `multialpha redis acl`)")


def password(role: str, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    value = env.get(password_env(role), "")
    if not value:
        raise AclError(password_env(role))
    # Every path to a role's password comes through here (redis_conn.connect, the supervisor's
    # own clients, the ACL file), so this is where it becomes a secret the logs redact.
    logs.register_secret(value)
    return value


_BASE = "-@all +@connection +@transaction +ping +info"


def rules(settings: Settings, role: str) -> str:
    """The ACL rules of ``role`` (without user name and password)."""
    k = Keys(settings.redis.namespace)
    ns = settings.redis.namespace
    market = k.market_pattern()
    if role == "hub":
        return (f"{_BASE} +@read +@write +@stream +@hash +@scripting +publish +subscribe +unsubscribe "
                f"-@dangerous +info ~{market} ~{k.heartbeat('hub')} ~{k.events()} "
                f"&{market} &{k.hub_control()} &{k.hub_control_reply('*')}")
    if role.startswith("worker."):
        strategy = role.split(".", 1)[1]
        own = k.worker_cursor(strategy)
        return (f"{_BASE} +@read +@write +@stream +@hash +@set +@scripting +subscribe +unsubscribe "
                f"+psubscribe +punsubscribe -publish -@dangerous +info "
                f"%R~{market} ~{k.portfolio('*')} ~{k.orders()} ~{k.order_state('*')} ~{k.orders_pending()} "
                f"~{k.rate_limit('*')} ~{own} ~{k.worker_turns()} ~{k.heartbeat(role)} ~{k.events()} "
                f"%R~{k.heartbeat_pattern()} "  # the others' state: whose turn it is (turns.py)
                f"~{k.veto_log()} &{market} &{k.control()} (+publish &{k.control()})")
    if role == "status":
        return f"{_BASE} +@read -@dangerous +info %R~{ns}:* %R~{market}"
    if role == "supervisor":
        return (f"+@all -@dangerous +info +scan ~{ns}:* %R~{market} "
                f"&{k.control()} &{k.control_reply('*')} &{k.hub_control()} &{k.hub_control_reply('*')}")
    raise ValueError(f"unknown role {role!r}; known: hub, worker.<strategy>, status, supervisor")


def acl_file(settings: Settings, environ: Mapping[str, str] | None = None, default: str | None = None) -> str:
    """The ACL file (``aclfile`` / ``ACL LOAD``): one user per role, passwords as SHA-256.
    Raises :class:`AclError` naming the first missing password variable.

    The file also decides the ``default`` user: a server with an ``aclfile`` ignores
    ``requirepass`` in its config, so without this line it would answer anyone. ``default``
    overrides its rules (the managed Redis sets its password by CONFIG SET right after start);
    otherwise: ``redis.password`` (an administrator, no multialpha process uses it), or off."""
    if default is None:
        admin = settings.redis.password
        default = f"on #{hashlib.sha256(admin.encode()).hexdigest()} ~* &* +@all" if admin else "off"
    lines = [f"user default resetpass {default}"]
    for role in roles(settings):
        digest = hashlib.sha256(password(role, environ).encode()).hexdigest()
        lines.append(f"user {username(settings, role)} on #{digest} resetchannels {rules(settings, role)}")
    return "\n".join(lines) + "\n"


def credentials(settings: Settings, role: str | None = None,
                environ: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """(username, password) a process of ``role`` (default: this process's) connects with."""
    if not settings.redis.acl:
        return None, settings.redis.password or None
    role = role or current_role()
    return username(settings, role), password(role, environ)


def own_password_only(child: str, env: dict[str, str]) -> dict[str, str]:
    """A child's environment without the other roles' Redis passwords: a worker started by `up`
    must not be able to read the hub's (``child`` is the supervisor's child name, which is the role:
    ``hub``, ``worker.<strategy>``; the sandbox gets none)."""
    own = password_env(child)
    return {k: v for k, v in env.items() if not k.startswith("MULTIALPHA_REDIS_PASSWORD_") or k == own}
