"""The ``redis:`` config section: where the bus is, how to reach it (TLS, ACL, Sentinel), who starts it.

Separate from :mod:`multialpha.settings_model` because it is the one section about the
transport rather than trading, and the Redis tooling (supervisor, status, bench) needs only it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from multialpha.settings_base import _KeyedError, _Model


class SentinelSettings(_Model):
    """Redis Sentinel: every client asks these sentinels for the current primary of ``service``
    and follows a failover (docs/resilience.md, "Redis Sentinel")."""

    hosts: list[str] = Field(min_length=1)  # "host:port" of each sentinel (three on three hosts)
    service: str = Field("multialpha", pattern=r"^[A-Za-z0-9_.-]+$")  # `sentinel monitor <service> ...`
    password: str = ""  # the sentinels' own requirepass, if any (the data nodes use redis.password)

    @field_validator("hosts")
    @classmethod
    def _host_port(cls, v: list[str]) -> list[str]:
        for i, hp in enumerate(v):
            host, sep, port = hp.rpartition(":")
            if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(f"hosts.{i}: {hp!r} is not host:port")
        return v

    def addresses(self) -> list[tuple[str, int]]:
        return [(h, int(p)) for h, _, p in (hp.rpartition(":") for hp in self.hosts)]


class RedisSettings(_Model):
    host: str = "127.0.0.1"
    port: int = Field(6379, ge=1, le=65535)
    db: int = Field(0, ge=0)
    password: str = ""
    tls: bool = False
    # With tls: the CA bundle that signed the server's certificate (empty: the system's), and a
    # client certificate + key when the server asks for one (tls-auth-clients yes). Paths are
    # relative to the config file. The server's certificate is always verified.
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    namespace: str = Field("multialpha", pattern=r"^[A-Za-z0-9_.-]+$")
    # Which Redis `up` uses (docs/supervisor.md, "Which Redis"):
    # auto   - the configured address if a Redis there needs our password (or is one `up`
    #          started); else a managed redis-server (password, persistence) on loopback.
    #          An unauthenticated Redis that `up` did not start is never used silently.
    # always - always a managed redis-server (the configured port, or a free one if taken).
    # never  - never start one: the configured address, as it is (your own Redis).
    managed: Literal["auto", "always", "never"] = "auto"
    # With managed: auto, use a Redis at the configured address that answers without a
    # password (e.g. Debian's redis-server on 6379) instead of starting a managed one.
    allow_unauthenticated: bool = False
    # Set: host/port are ignored, every client follows the primary that these sentinels name.
    sentinel: SentinelSettings | None = None
    # An order's claim (the gate's journaled intent) must reach this many replicas (WAIT) before
    # the webhook is called; 0 = do not wait (one Redis). docs/orders.md, "Replicated claims".
    wait_replicas: int = Field(0, ge=0)
    wait_timeout_ms: int = Field(500, ge=1, le=60_000)
    # On: each process connects as its role's ACL user (<namespace>.hub, .worker.<strategy>, .status,
    # .supervisor) with the password in MULTIALPHA_REDIS_PASSWORD_<ROLE>; `multialpha redis acl`
    # writes the users, a managed Redis loads them (multialpha/redis_acl.py, docs/RUNBOOK.md).
    acl: bool = False

    @model_validator(mode="after")
    def _tls_pair(self) -> "RedisSettings":
        if bool(self.tls_cert) != bool(self.tls_key):
            raise _KeyedError("redis.tls_key" if self.tls_cert else "redis.tls_cert",
                              "a client certificate needs both redis.tls_cert and redis.tls_key")
        if (self.tls_ca or self.tls_cert) and not self.tls:
            raise _KeyedError("redis.tls", "redis.tls_ca / tls_cert are set but redis.tls is false")
        return self
