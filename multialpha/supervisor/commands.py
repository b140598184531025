"""Bodies of the `up`, `down`, `restart`, `logs` and `systemd` commands (cli.py stays thin)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import redis

from multialpha import config as cfg
from multialpha import logs, runtime
from multialpha.config import Settings


def _fail(msg: str, code: int = 1) -> None:
    click.echo(f"error: {msg}", err=True)
    sys.exit(code)


def up(settings: Settings, config_path: str | None, only: str | None, detach: bool, log_json: bool) -> None:
    from multialpha.supervisor import detached, redis_setup
    from multialpha.supervisor import up as sup

    path = cfg.resolve_path(config_path)
    try:
        if detach:
            pid = detached.detach(settings, path, only, log_json=log_json)
            log_dir = runtime.log_dir(settings)
            click.echo(f"multialpha up: running in the background, pid {pid}")
            click.echo(f"  logs:   multialpha logs -f   ({log_dir})")
            click.echo("  status: multialpha status")
            click.echo("  stop:   multialpha down")
            return
        logs.setup("supervisor", log_json)
        sys.exit(sup.up(settings, path, only, health_port=settings.supervisor.health_port, log_json=log_json))
    except (sup.UpError, redis_setup.RedisSetupError) as e:
        _fail(str(e))


def down(settings: Settings) -> None:
    from multialpha.supervisor import detached

    try:
        pid = detached.down(settings)
    except detached.UpError as e:
        _fail(str(e))
    if pid is None:
        click.echo("no detached `multialpha up` is running")
    else:
        click.echo(f"stopped supervisor pid {pid} and its children")


def restart(settings: Settings, component: str) -> None:
    from multialpha.keys import Keys
    from multialpha.supervisor.redis_setup import connect
    from multialpha.supervisor.request import children
    from multialpha.supervisor.watch import request_restart

    try:
        client = connect(settings)
    except redis.RedisError as e:
        from multialpha.supervisor.redis_setup import unreachable_line

        _fail(unreachable_line(settings, e))
    keys = Keys(settings.redis.namespace)
    running = children(client, keys)
    if not running:
        _fail("no running supervisor found (no supervisor heartbeat); under systemd use "
              "`systemctl restart multialpha-<component>.service`")
    name = component if component in running else f"worker.{component}"
    if name not in running:
        _fail(f"unknown component {component!r}; the supervisor runs: {', '.join(running)}")
    old = (running.get(name) or {}).get("pid")
    if request_restart(client, keys, name) == 0:
        _fail("nobody is listening on the control channel; is the supervisor healthy?")
    deadline = time.monotonic() + settings.supervisor.stop_timeout_s + 15
    while time.monotonic() < deadline:
        c = children(client, keys).get(name) or {}
        if c.get("pid") and c.get("pid") != old:
            click.echo(f"restarted {name}: pid {old} -> {c['pid']}")
            return
        time.sleep(0.2)
    _fail(f"asked the supervisor to restart {name}, but no new pid appeared yet; see `multialpha logs {name}`")


def show_logs(settings: Settings, component: str | None, follow: bool, lines: int = 50) -> None:
    from multialpha.supervisor import logview

    log_dir = runtime.log_dir(settings)
    try:
        paths = logview.resolve(log_dir, component)
    except FileNotFoundError as e:
        _fail(str(e))
    if not paths:
        _fail(f"no log files in {log_dir} yet (has `multialpha up` run with this config?)")
    many = len(paths) > 1
    width = max(len(p.stem) for p in paths)
    for p in paths:
        for line in logview.tail(p, lines if not many else min(lines, 10)):
            click.echo(f"{p.stem:<{width}} | {line}" if many else line)
    if follow:
        try:
            for p, line in logview.follow(paths):
                click.echo(f"{p.stem:<{width}} | {line}" if many else line)
        except KeyboardInterrupt:
            pass


def systemd(settings: Settings, config_path: str | None, output: str) -> None:
    from multialpha.supervisor import systemd as sd

    units = sd.render(settings, cfg.resolve_path(config_path))
    for p in sd.write(units, Path(output)):
        click.echo(f"wrote {p}")
    click.echo("install: sudo cp " + f"{output}/multialpha* /etc/systemd/system/ && sudo systemctl daemon-reload "
               "&& sudo systemctl enable --now multialpha.target   (see docs/RUNBOOK.md)")
