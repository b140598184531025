"""Changing a running deployment: `multialpha reload`, `stop <strategy>`, `start <strategy>`.

The click wiring; the logic is :mod:`multialpha.supervisor.request` (this side) and
:mod:`multialpha.supervisor.reload` (the supervisor's side). Registered by :mod:`multialpha.cli`.
Exit codes: 0 done, 1 refused or failed (nothing changed), 2 bad config (nothing changed).
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from multialpha import config as cfg
from multialpha import logs
from multialpha.cli_common import EXIT_CONFIG, _ctx, config_option, redis_failed

_FLATTEN_HELP = "Exit the strategy's positions first (normal order path), wait until flat, then stop it."
_LEAVE_HELP = "Stop it with its positions open: recorded, shown in status as unmanaged, alerted."


def _client(settings: cfg.Settings, prefix: str) -> Any:
    import redis

    from multialpha.supervisor.redis_setup import connect

    try:
        return connect(settings, timeout=5)
    except redis.RedisError as e:
        redis_failed(settings, prefix, e)


def _fail(prefix: str, message: str, code: int = 1) -> NoReturn:
    click.echo(f"{prefix}: {logs.redact(message)}", err=True)
    sys.exit(code)


def _show(answer: dict[str, Any], settled: dict[str, str]) -> None:
    for name, action in sorted(answer.get("components", {}).items()):
        tail = f" ({settled[name]})" if name in settled else ""
        click.echo(f"  {name:<22} {action}{tail}")
    for note in answer.get("notes", []):
        click.echo(f"  note: {note}")


def _run(settings: cfg.Settings, prefix: str, doc: dict[str, Any]) -> None:
    import redis

    from multialpha.keys import Keys
    from multialpha.supervisor import request as rq

    client = _client(settings, prefix)
    keys = Keys(settings.redis.namespace)
    try:
        before = rq.children(client, keys)
        answer = rq.send(client, keys, doc)
        if not answer.get("ok"):
            _fail(prefix, str(answer.get("error", "refused")), int(answer.get("code", 1)))
        settled = rq.wait_settled(client, keys, before, answer.get("components", {}),
                                  settings.supervisor.stop_timeout_s + 60)
    except rq.RequestError as e:
        _fail(prefix, str(e), e.code)
    except redis.RedisError as e:
        redis_failed(settings, prefix, e)
    click.echo(f"{prefix}: done")
    _show(answer, settled)


def _flatten_first(settings: cfg.Settings, prefix: str, strategies: list[str], timeout_s: float) -> None:
    from multialpha.supervisor import request as rq

    client = _client(settings, prefix)
    try:
        for name in strategies:
            rq.flatten_and_wait(settings, client, name, timeout_s, click.echo)
    except rq.RequestError as e:
        _fail(prefix, str(e), e.code)


def _exclusive(flatten: bool, leave: bool) -> None:
    if flatten and leave:
        raise click.UsageError("give at most one of --flatten or --leave-positions")


@click.command()
@config_option
@click.option("--flatten", is_flag=True, help="Strategies removed from the config: exit their positions first.")
@click.option("--leave-positions", is_flag=True, help="Strategies removed from the config: " + _LEAVE_HELP)
@click.option("--flatten-timeout", type=float, default=600.0, show_default=True, help="Seconds to wait for flat.")
@click.pass_context
def reload(ctx: click.Context, config_path: str | None, flatten: bool, leave_positions: bool,
           flatten_timeout: float) -> None:
    """Apply the edited config to the running `multialpha up` (SIGHUP to `up` does the same).

    Starts added strategies, stops removed ones, restarts only those whose own settings changed;
    the hub resubscribes when the instruments changed; new portfolio limits apply at once.
    A bad config changes nothing (exit 2)."""
    _exclusive(flatten, leave_positions)
    obj = _ctx(ctx, config_path)
    try:  # validate here too: the error is the user's to read at once, and nothing is sent
        from multialpha import plugins

        new = cfg.load(obj.config_path)
        plugins.check_strategy_types(new)
    except cfg.ConfigError as e:
        _fail("reload", f"config error, nothing changed: {e}", EXIT_CONFIG)
    from multialpha.keys import Keys
    from multialpha.supervisor import request as rq

    client = _client(new, "reload")
    supervised = rq.children(client, Keys(new.redis.namespace))  # empty: no `up` heartbeat
    running = [n.split(".", 1)[1] for n in supervised if n.startswith("worker.")]
    removed = [n for n in running if n not in new.enabled_strategies]
    if not supervised:
        try:  # no `up`: under systemd each process is a unit (ExecReload runs this)
            for name, line in rq.reload_without_supervisor(new, client).items():
                click.echo(f"  {name:<22} {line}")
        except Exception as e:  # noqa: BLE001 - one line, never a traceback
            _fail("reload", str(e))
        click.echo("reload: no supervisor running; workers: `systemctl restart multialpha-worker-<name>`")
        return
    if flatten:
        _flatten_first(new, "reload", removed, flatten_timeout)
    _run(new, "reload", {"command": "reload", "leave_positions": removed if leave_positions else []})


@click.command()
@config_option
@click.argument("strategy")
@click.option("--flatten", is_flag=True, help=_FLATTEN_HELP)
@click.option("--leave-positions", is_flag=True, help=_LEAVE_HELP)
@click.option("--flatten-timeout", type=float, default=600.0, show_default=True, help="Seconds to wait for flat.")
@click.pass_context
def stop(ctx: click.Context, config_path: str | None, strategy: str, flatten: bool, leave_positions: bool,
         flatten_timeout: float) -> None:
    """Stop one strategy's worker while `up` runs; it stays stopped until `multialpha start`.

    Refused while the strategy holds positions, unless --flatten or --leave-positions."""
    _exclusive(flatten, leave_positions)
    settings = _ctx(ctx, config_path).settings()
    name = strategy.removeprefix("worker.")
    if flatten:
        _flatten_first(settings, "stop", [name], flatten_timeout)
    _run(settings, "stop", {"command": "stop", "component": f"worker.{name}",
                            "leave_positions": [name] if leave_positions else []})


@click.command()
@config_option
@click.argument("strategy")
@click.pass_context
def start(ctx: click.Context, config_path: str | None, strategy: str) -> None:
    """Start a strategy stopped with `multialpha stop` (or failed) while `up` runs."""
    settings = _ctx(ctx, config_path).settings()
    _run(settings, "start", {"command": "start", "component": f"worker.{strategy.removeprefix('worker.')}"})


COMMANDS = (reload, stop, start)
