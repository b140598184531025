"""`multialpha systemd --output DIR`: unit files for a production host.

Under systemd, systemd is the supervisor: one service per process (hub, one
per worker, optionally the sandbox) restarted on failure with a start-limit
(the same flapping rule as `up`), grouped by ``multialpha.target``. Workers
are ordered *after* the hub but do not require it, so restarting the hub
never bounces the workers. Each service is hardened (no new privileges,
read-only system, private /tmp and devices) and may write only the runtime
and cache directories. Secrets come from the ``.env`` beside the config via
``EnvironmentFile`` — never from the unit file. The hub unit's ``ExecReload`` runs
`multialpha reload` (limits and instruments; see docs/supervisor.md).

Redis Sentinel (``redis.sentinel``): the services are ordered after the host's
``redis-sentinel.service`` too (Debian's package), and name no Redis address:
each process asks the sentinels. ACL users (``redis.acl``): each service also
reads ``redis-<role>.env`` beside the config, which should hold only that
role's ``MULTIALPHA_REDIS_PASSWORD_<ROLE>`` (mode 0600): a worker's service
never sees the hub's password (docs/RUNBOOK.md, "Multi-host with Sentinel and ACLs").
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from multialpha import runtime
from multialpha.config import Settings

TARGET = "multialpha.target"
_UNIT_SAFE = re.compile(r"^[A-Za-z0-9_.\-]+$")


def unit_name(component: str) -> str:
    name = component.replace("worker.", "worker-")
    if not _UNIT_SAFE.match(name):
        raise ValueError(f"component {component!r} cannot be a systemd unit name")
    return f"multialpha-{name}.service"


def _redis_units(settings: Settings) -> tuple[str, ...]:
    return ("redis-server.service", *(("redis-sentinel.service",) if settings.redis.sentinel else ()))


def _service(description: str, exec_start: str, workdir: Path, env_file: Path, writable: list[Path],
             stop_timeout_s: float, after: list[str], user: str | None,
             redis_units: tuple[str, ...] = ("redis-server.service",), role_env: Path | None = None,
             exec_reload: str | None = None) -> str:
    rw = " ".join(sorted({f"-{p}" for p in writable}))  # "-": a missing dir is not an error
    lines = [
        "[Unit]",
        f"Description={description}",
        f"PartOf={TARGET}",
        "Wants=network-online.target",
        f"After={' '.join(['network-online.target', *redis_units, *after])}",
        # Flapping: more than 5 starts in 5 minutes -> give up (like `up`'s failed state).
        "StartLimitIntervalSec=300",
        "StartLimitBurst=5",
        "",
        "[Service]",
        "Type=simple",
        *([f"User={user}"] if user else []),
        f"WorkingDirectory={workdir}",
        f"EnvironmentFile=-{env_file}",
        *([f"EnvironmentFile=-{role_env}"] if role_env else []),
        "Environment=PYTHONUNBUFFERED=1",
        f"ExecStart={exec_start}",
        *([f"ExecReload={exec_reload}"] if exec_reload else []),
        "Restart=on-failure",
        "RestartSec=5",
        "KillSignal=SIGTERM",
        f"TimeoutStopSec={int(stop_timeout_s) + 5}",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        f"ReadWritePaths={rw}",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectControlGroups=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "RestrictRealtime=yes",
        "LockPersonality=yes",
        "",
        "[Install]",
        f"WantedBy={TARGET}",
        "",
    ]
    return "\n".join(lines)


def render(settings: Settings, config_path: Path, python: str = sys.executable, include_sandbox: bool | None = None,
           user: str | None = None) -> dict[str, str]:
    """File name -> unit text for the hub, each enabled worker, (the sandbox) and the target."""
    config_path = config_path.resolve()
    workdir = config_path.parent
    env_file = workdir / ".env"
    writable = [runtime.runtime_dir(settings).resolve(), settings.path(settings.worker.cache_dir).resolve()]
    base = f"{python} -m multialpha --config {config_path}"
    stop = settings.supervisor.stop_timeout_s
    sandbox = settings.databento.uses_sandbox if include_sandbox is None else include_sandbox
    units: dict[str, str] = {}
    hub_after: list[str] = []
    ru = _redis_units(settings)

    def role_env(role: str) -> Path | None:
        return workdir / f"redis-{role.replace('worker.', 'worker-')}.env" if settings.redis.acl else None

    if sandbox:
        state = runtime.sandbox_state_path(settings).resolve()
        units[unit_name("sandbox")] = _service(
            "multialpha sandbox (local Databento gateways)", f"{base} sandbox --state-file {state}",
            workdir, env_file, writable, stop, [], user, ru)
        hub_after.append(unit_name("sandbox"))
    # `systemctl reload multialpha-hub.service`: `multialpha reload` without a supervisor -
    # validates the config (a bad one fails the reload, exit 2), applies the portfolio limits
    # and has the hub resubscribe. Workers are units of their own: restart the changed ones.
    units[unit_name("hub")] = _service("multialpha data hub", f"{base} hub", workdir, env_file, writable, stop,
                                       hub_after, user, ru, role_env("hub"), exec_reload=f"{base} reload")
    for name in settings.enabled_strategies:
        units[unit_name(f"worker.{name}")] = _service(
            f"multialpha worker {name}", f"{base} worker --strategy {name}", workdir, env_file, writable, stop,
            [unit_name("hub")], user, ru, role_env(f"worker.{name}"))
    services = list(units)
    units[TARGET] = "\n".join([
        "[Unit]",
        "Description=multialpha trading runtime (hub and strategy workers)",
        f"Wants={' '.join(services)}",
        f"After={' '.join(['network-online.target', *ru])}",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])
    return units


def write(units: dict[str, str], output: Path) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in units.items():
        p = output / name
        p.write_text(text)
        paths.append(p)
    return paths
