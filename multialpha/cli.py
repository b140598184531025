"""The `multialpha` command. Each subcommand imports its module lazily so a
process only pays for the libraries it uses (databento alone is ~1.2 s)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import NoReturn

import click

from multialpha import config as cfg
from multialpha import logs

EXIT_CONFIG = 2


@dataclass
class Ctx:
    config_path: str | None
    log_json: bool

    def settings(self) -> cfg.Settings:
        """Load the config or exit 2 naming the file and key."""
        try:
            return cfg.load(self.config_path)
        except cfg.ConfigError as e:
            config_error(e)


def config_error(e: cfg.ConfigError) -> NoReturn:
    click.echo(f"config error: {e}", err=True)
    sys.exit(EXIT_CONFIG)


def not_landed(what: str, issue: int) -> NoReturn:
    click.echo(f"multialpha {what}: not implemented yet (tracked in issue #{issue})", err=True)
    sys.exit(1)


config_option = click.option(
    "--config",
    "config_path",
    envvar=cfg.ENV_CONFIG,
    type=click.Path(dir_okay=False),
    default=None,
    help=f"Config file (default: ${cfg.ENV_CONFIG} or ./{cfg.DEFAULT_CONFIG}).",
)


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


def _ctx(ctx: click.Context, config_path: str | None) -> Ctx:
    """Subcommands accept --config too; theirs wins over the group's."""
    obj: Ctx = ctx.obj
    if config_path:
        obj.config_path = config_path
    return obj


# -- configuration ------------------------------------------------------------------


@main.group("config")
def config_group() -> None:
    """Inspect and validate the configuration."""


@config_group.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.pass_context
def config_check(ctx: click.Context, path: str | None) -> None:
    """Validate PATH (or the configured file) and print a summary."""
    obj = _ctx(ctx, path)
    settings = obj.settings()
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
    not_landed("up", 8)


@main.command()
@config_option
@click.pass_context
def down(ctx: click.Context, config_path: str | None) -> None:
    """Stop a detached `multialpha up`."""
    not_landed("down", 8)


@main.command()
@config_option
@click.option("--once", is_flag=True, help="Print one frame and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable document.")
@click.pass_context
def status(ctx: click.Context, config_path: str | None, once: bool, as_json: bool) -> None:
    """Live view of processes, symbols, strategies, portfolio and orders."""
    not_landed("status", 8)


@main.command()
@config_option
@click.pass_context
def hub(ctx: click.Context, config_path: str | None) -> None:
    """Run the data hub: Databento Live trades -> 1-minute bars -> Redis."""
    not_landed("hub", 4)


@main.command()
@config_option
@click.option("--strategy", required=True, help="Strategy name from the config.")
@click.pass_context
def worker(ctx: click.Context, config_path: str | None, strategy: str) -> None:
    """Run one strategy worker."""
    not_landed("worker", 5)


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
@click.pass_context
def sandbox(ctx: click.Context, config_path: str | None, **opts: object) -> None:
    """Run the local Databento Live + Historical gateways (synthetic CME market)."""
    not_landed("sandbox", 3)


@main.command()
@config_option
@click.pass_context
def plugins(ctx: click.Context, config_path: str | None) -> None:
    """List installed strategy plugins, their versions, strategy types and hooks."""
    not_landed("plugins", 5)


@main.command()
@config_option
@click.option("--strategy", default=None, help="Strategy to backtest.")
@click.option("--all", "all_", is_flag=True, help="All enabled strategies under the shared portfolio.")
@click.option("--from", "from_date", default=None)
@click.option("--to", "to_date", default=None)
@click.pass_context
def backtest(ctx: click.Context, config_path: str | None, **opts: object) -> None:
    """Backtest strategies on historical bars with the live code paths."""
    not_landed("backtest", 9)


@main.command("logs")
@config_option
@click.argument("component", required=False)
@click.option("-f", "--follow", is_flag=True)
@click.pass_context
def logs_cmd(ctx: click.Context, config_path: str | None, component: str | None, follow: bool) -> None:
    """Show (and follow) the per-process log files of `up`."""
    not_landed("logs", 8)


@main.command()
@config_option
@click.option("--output", required=True, type=click.Path(file_okay=False))
@click.pass_context
def systemd(ctx: click.Context, config_path: str | None, output: str) -> None:
    """Write systemd unit files for the hub and each worker."""
    not_landed("systemd", 8)


if __name__ == "__main__":  # pragma: no cover
    main()
