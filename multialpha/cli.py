"""The `multialpha` command. Each subcommand imports its module lazily so a
process only pays for the libraries it uses (databento alone is ~1.2 s)."""

from __future__ import annotations

import sys

import click

from multialpha import config as cfg
from multialpha import logs
from multialpha.cli_common import Ctx, _ctx, config_errors, config_option, redis_failed, require_redis
from multialpha.cli_deploy import COMMANDS as DEPLOY_COMMANDS
from multialpha.cli_orders import flatten, orders_group
from multialpha.verify.cli import verify_cmd
from multialpha.cli_report import report
from multialpha.cli_redis import redis_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@config_option
@click.option("--log-json", is_flag=True, help="One JSON object per log line.")
@click.version_option(package_name="multialpha")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, log_json: bool) -> None:
    """multialpha: run several futures strategies side by side.

    With no DATABENTO_API_KEY everything runs on the embedded sandbox.
    """
    ctx.obj = Ctx(config_path, log_json)


# -- configuration ------------------------------------------------------------------


@main.group("config")
def config_group() -> None:
    """Inspect and validate the configuration."""


@config_group.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.pass_context
def config_check(ctx: click.Context, path: str | None) -> None:
    """Validate PATH (or the configured file) and print a summary."""
    from multialpha import plugins as plug

    obj = _ctx(ctx, path)
    settings = obj.settings()
    with config_errors():  # a strategy_type no installed plugin provides is a config error too
        plug.check_strategy_types(settings)
    for line in cfg.summarize(settings).lines:
        click.echo(line)
    click.echo("config OK")


# -- the processes ------------------------------------------------------------------


@main.command()
@config_option
@click.option("--only", default=None, help="Comma-separated components to run (e.g. hub,ibs_a).")
@click.option("--detach", is_flag=True, help="Run in the background; stop with `multialpha down`.")
@click.pass_context
def up(ctx: click.Context, config_path: str | None, only: str | None, detach: bool) -> None:
    """Start Redis (if needed), the sandbox (if no API key), the hub and the workers."""
    from multialpha.supervisor import commands

    obj = _ctx(ctx, config_path)
    commands.up(obj.settings(), obj.config_path, only, detach, obj.log_json)


@main.command()
@config_option
@click.pass_context
def down(ctx: click.Context, config_path: str | None) -> None:
    """Stop a detached `multialpha up`."""
    from multialpha.supervisor import commands

    commands.down(_ctx(ctx, config_path).settings())


@main.command()
@config_option
@click.option("--once", is_flag=True, help="Print one frame and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable document.")
@click.pass_context
def status(ctx: click.Context, config_path: str | None, once: bool, as_json: bool) -> None:
    """Live view of processes, symbols, strategies, portfolio and orders."""
    from multialpha.status.app import run

    sys.exit(run(_ctx(ctx, config_path).settings(), once=once, as_json=as_json))


@main.command()
@config_option
@click.pass_context
def hub(ctx: click.Context, config_path: str | None) -> None:
    """Run the data hub: Databento Live trades -> 1-minute bars -> Redis."""
    obj = _ctx(ctx, config_path)
    settings = obj.settings()
    logs.setup("hub", obj.log_json)
    logs.register_secret(settings.databento.api_key)
    logs.register_secret(settings.redis.password)
    require_redis(settings, "hub", role="hub")
    from multialpha.hub.main import run

    sys.exit(run(settings))


@main.command()
@config_option
@click.option("--strategy", required=True, help="Strategy name from the config.")
@click.option("--await-sandbox", "await_sandbox_s", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds to wait for the sandbox's state file before the warmup (`up` starts the workers "
                   "together with the sandbox); 0 = it must be there already.")
@click.pass_context
def worker(ctx: click.Context, config_path: str | None, strategy: str, await_sandbox_s: float) -> None:
    """Run one strategy worker."""
    obj = _ctx(ctx, config_path)
    settings = obj.settings()
    logs.setup(f"worker.{strategy}", obj.log_json)
    # A config problem (exit 2, naming the key) is said before a Redis problem (exit 1).
    from multialpha import plugins as plug

    with config_errors():
        if strategy not in settings.strategies:
            raise cfg.ConfigError(settings.source_path, "strategies",
                                  f"unknown strategy {strategy!r}; known: {', '.join(sorted(settings.strategies))}")
        plug.strategy_type_of(settings, strategy)
    require_redis(settings, f"worker {strategy}", role=f"worker.{strategy}")
    from multialpha.worker.runtime import run

    with config_errors():  # e.g. a param the strategy class does not declare (found in the worker's prepare)
        code = run(settings, strategy, await_sandbox_s=await_sandbox_s)
    sys.exit(code)


@main.command()
@config_option
@click.option("--seed", type=int, default=None, help="Market seed (default: sandbox.seed).")
@click.option("--speed", type=float, default=None, help="Replay speed, N x real time; 0 = unthrottled.")
@click.option("--live-port", type=int, default=0, help="Live gateway port (0 = free port).")
@click.option("--hist-port", type=int, default=0, help="Historical gateway port (0 = free port).")
@click.option("--from", "from_date", default=None, help="First replayed trading day (YYYY-MM-DD).")
@click.option("--days", type=int, default=None, help="Trading days of history before --from.")
@click.option("--key", default=None, help="Accepted API key (default: a generated db- key).")
@click.option("--state-file", default=None, type=click.Path(dir_okay=False), help="Where to write ports/key/CA.")
@click.option("--resume-at", default=None,
              help="Start the clock here (ISO UTC) instead of the first session open (`up` continues a persisted bar log).")
@click.option("--precompute", is_flag=True,
              help="Fill sandbox.store_dir with the hourly bars of the whole history, then exit (no gateways).")
@click.pass_context
def sandbox(ctx: click.Context, config_path: str | None, **opts: object) -> None:
    """Run the local Databento Live + Historical gateways (synthetic CME market)."""
    from multialpha.sandbox.cli_run import run

    sys.exit(run(_ctx(ctx, config_path).settings(), ctx.obj.log_json, opts))


@main.command()
@config_option
@click.pass_context
def plugins(ctx: click.Context, config_path: str | None) -> None:
    """List installed strategy plugins, their versions, strategy types and hooks."""
    from rich.console import Console
    from rich.table import Table

    from multialpha import plugins as plug

    table = Table(title="multialpha plugins")
    for col in ("plugin", "version", "strategy types", "hooks"):
        table.add_column(col)
    rows = plug.plugin_infos()
    for row in rows:
        hooks = ", ".join(h.removeprefix("multialpha_") for h in row.hooks)
        table.add_row(row.name, row.version, ", ".join(row.strategy_types) or "-", f"[red]failed: {row.error}[/]" if row.error else hooks)
    Console(width=max(100, Console().width)).print(table)
    if not rows:
        click.echo("no plugins installed (entry-point group 'multialpha')")
    from multialpha import plugin_versions  # per running worker: the version it runs vs the installed one

    plugin_versions.show(_ctx(ctx, config_path).config_path, Console(width=max(100, Console().width)))


@main.command()
@config_option
@click.option("--strategy", default=None, help="Strategy to backtest.")
@click.option("--all", "all_", is_flag=True, help="All enabled strategies under the shared portfolio.")
@click.option("--from", "from_date", default=None, help="First CME trading day (YYYY-MM-DD).")
@click.option("--to", "to_date", default=None, help="Last CME trading day (default: last complete one).")
@click.option("--days", type=int, default=3, show_default=True, help="Trading days when --from is not given.")
@click.option("--resolution", type=click.Choice(["minute", "hour"]), default="minute", show_default=True,
              help="hour: hourly bars drive the minute slot (exact for hour/day strategies only).")
@click.option("--ml-veto", type=click.Choice(["enforce", "shadow", "off"]), default=None, help="Override ml_veto.mode.")
@click.option("--output", default=None, type=click.Path(file_okay=False), help="Output dir (default: runtime dir).")
@click.option("--no-png", is_flag=True, help="Skip the equity-curve PNG.")
@click.pass_context
def backtest(ctx: click.Context, config_path: str | None, **opts: object) -> None:
    """Backtest strategies on historical bars with the live code paths."""
    from multialpha.backtest import command

    settings = _ctx(ctx, config_path).settings()
    with config_errors():
        code = command.main(
            settings, strategy=opts["strategy"], all_=bool(opts["all_"]), from_date=opts["from_date"],  # type: ignore[arg-type]
            to_date=opts["to_date"], days=int(opts["days"]), resolution=str(opts["resolution"]),  # type: ignore[arg-type]
            output=opts["output"], ml_veto=opts["ml_veto"], png=not opts["no_png"],  # type: ignore[arg-type]
        )
    sys.exit(code)


@main.command("logs")
@config_option
@click.argument("component", required=False)
@click.option("-f", "--follow", is_flag=True)
@click.pass_context
def logs_cmd(ctx: click.Context, config_path: str | None, component: str | None, follow: bool) -> None:
    """Show (and follow) the per-process log files of `up`."""
    from multialpha.supervisor import commands

    commands.show_logs(_ctx(ctx, config_path).settings(), component, follow)


@main.command()
@config_option
@click.option("--output", required=True, type=click.Path(file_okay=False))
@click.pass_context
def systemd(ctx: click.Context, config_path: str | None, output: str) -> None:
    """Write systemd unit files for the hub and each worker."""
    from multialpha.supervisor import commands

    obj = _ctx(ctx, config_path)
    commands.systemd(obj.settings(), obj.config_path, output)


@main.command()
@config_option
@click.option("--reason", default="", help="Why (shown in status and the journal).")
@click.pass_context
def halt(ctx: click.Context, config_path: str | None, reason: str) -> None:
    """Kill switch: block all new entries in every worker now (exits still go out)."""
    import redis

    from multialpha.portfolio import control
    from multialpha.supervisor.redis_setup import connect

    settings = _ctx(ctx, config_path).settings()
    try:  # the configured Redis, else the one `up` manages (password from its 0600 state file)
        text = control.halt(settings, connect(settings, timeout=5), reason)
    except redis.RedisError as e:
        redis_failed(settings, "halt failed", e)
    click.echo(f"HALTED: no new entries in namespace {settings.redis.namespace!r}: {text}")


@main.command()
@config_option
@click.pass_context
def resume(ctx: click.Context, config_path: str | None) -> None:
    """Lift the kill switch: entries are allowed again (daily stop loss still applies)."""
    import redis

    from multialpha.portfolio import control
    from multialpha.supervisor.redis_setup import connect

    settings = _ctx(ctx, config_path).settings()
    try:
        was = control.resume(settings, connect(settings, timeout=5))
    except redis.RedisError as e:
        redis_failed(settings, "resume failed", e)
    click.echo(f"resumed: entries allowed in namespace {settings.redis.namespace!r}"
               + ("" if was else " (was not halted)"))


# -- operating orders (the click wiring: multialpha/cli_orders.py) -------------------------

main.add_command(flatten)
main.add_command(orders_group)
for _command in DEPLOY_COMMANDS:  # reload, stop, start (multialpha/cli_deploy.py)
    main.add_command(_command)
main.add_command(verify_cmd)  # multialpha/verify/cli.py
main.add_command(report)
main.add_command(redis_group)


@main.command()
@config_option
@click.argument("component")
@click.pass_context
def restart(ctx: click.Context, config_path: str | None, component: str) -> None:
    """Ask the running `multialpha up` to restart one component (e.g. hub, ibs_a)."""
    from multialpha.supervisor import commands

    commands.restart(_ctx(ctx, config_path).settings(), component)


@main.group("models")
def models_group() -> None:
    """ML veto models."""


@models_group.command("train")
@config_option
@click.option("--strategy", default=None, help="Strategy (default: every enabled one).")
@click.option("--symbols", default=None, help="Comma-separated symbols (default: all of each strategy).")
@click.option("--from", "from_date", default=None, help="First CME trading day (YYYY-MM-DD).")
@click.option("--to", "to_date", default=None, help="Last CME trading day (default: last complete one).")
@click.option("--days", type=int, default=120, show_default=True, help="Trading days when --from is not given.")
@click.option("--min-trades", type=int, default=20, show_default=True, help="Fewer labelled entries: no model.")
@click.option("--models-dir", default=None, type=click.Path(file_okay=False), help="Default: models_path from config.")
@click.option("--force", is_flag=True, help="Allow replacing the shipped models (models_path); else use --models-dir.")
@click.pass_context
def models_train(ctx: click.Context, config_path: str | None, **opts: object) -> None:
    """Train the per-symbol veto models on the strategies' own backtested trades."""
    from multialpha.mlveto import train

    settings = _ctx(ctx, config_path).settings()
    with config_errors():
        code = train.main(settings, **opts)  # type: ignore[arg-type]
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
