"""The `multialpha` command. Each subcommand imports its module lazily so a
process only pays for the libraries it uses (databento alone is ~1.2 s)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, NoReturn

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


def require_redis(settings: cfg.Settings, prefix: str) -> None:
    """Fail fast, in one line, when the configured Redis does not answer (no retries at start-up)."""
    from multialpha.supervisor.redis_setup import require

    problem = require(settings)
    if problem:
        click.echo(f"{prefix}: {problem} (is `multialpha up` running? `multialpha config check` shows the "
                   "address; MULTIALPHA__REDIS__HOST/PORT override it)", err=True)
        sys.exit(1)


def redis_failed(settings: cfg.Settings, prefix: str, e: BaseException) -> NoReturn:
    from multialpha.supervisor.redis_setup import unreachable_line

    click.echo(f"{prefix}: {unreachable_line(settings, e)}", err=True)
    sys.exit(1)


def config_error(e: cfg.ConfigError) -> NoReturn:
    click.echo(f"config error: {e}", err=True)
    sys.exit(EXIT_CONFIG)


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
    from multialpha import plugins as plug

    obj = _ctx(ctx, path)
    settings = obj.settings()
    try:  # a strategy_type no installed plugin provides is a config error too
        plug.check_strategy_types(settings)
    except cfg.ConfigError as e:
        config_error(e)
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
    require_redis(settings, "hub")
    from multialpha.hub.main import run

    sys.exit(run(settings))


@main.command()
@config_option
@click.option("--strategy", required=True, help="Strategy name from the config.")
@click.pass_context
def worker(ctx: click.Context, config_path: str | None, strategy: str) -> None:
    """Run one strategy worker."""
    obj = _ctx(ctx, config_path)
    settings = obj.settings()
    logs.setup(f"worker.{strategy}", obj.log_json)
    # A config problem (exit 2, naming the key) is said before a Redis problem (exit 1).
    from multialpha import plugins as plug

    try:
        if strategy not in settings.strategies:
            raise cfg.ConfigError(settings.source_path, "strategies",
                                  f"unknown strategy {strategy!r}; known: {', '.join(sorted(settings.strategies))}")
        plug.strategy_type_of(settings, strategy)
    except cfg.ConfigError as e:
        config_error(e)
    require_redis(settings, f"worker {strategy}")
    from multialpha.worker.runtime import run

    sys.exit(run(settings, strategy))


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
    sys.exit(command.main(
        settings, strategy=opts["strategy"], all_=bool(opts["all_"]), from_date=opts["from_date"],  # type: ignore[arg-type]
        to_date=opts["to_date"], days=int(opts["days"]), resolution=str(opts["resolution"]),  # type: ignore[arg-type]
        output=opts["output"], ml_veto=opts["ml_veto"], png=not opts["no_png"],  # type: ignore[arg-type]
    ))


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


# -- operating orders (the logic: multialpha/orders/commands.py) -------------------------


def _operate(settings: cfg.Settings, prefix: str, action: "Callable[[Any], None]") -> None:
    """Run ``action(client)`` on the deployment's Redis: the configured one, else the one `up`
    manages (its password from the 0600 state file). A Redis error or a refusal is one line on
    stderr and exit 1, never a traceback."""
    import redis

    from multialpha.orders.commands import CommandError
    from multialpha.supervisor.redis_setup import connect

    try:
        action(connect(settings, timeout=5))
    except redis.RedisError as e:
        redis_failed(settings, prefix, e)
    except CommandError as e:
        click.echo(f"{prefix}: {logs.redact(str(e))}", err=True)
        sys.exit(1)


def _console() -> "Any":
    from rich.console import Console

    return Console(highlight=False)  # the terminal's width; 80 columns when piped


@main.command()
@config_option
@click.option("--strategy", default=None, help="Flatten this strategy only.")
@click.option("--all", "all_", is_flag=True, help="Flatten every strategy.")
@click.option("--reason", default="", help="Why (shown in status, the events and the workers' logs).")
@click.pass_context
def flatten(ctx: click.Context, config_path: str | None, strategy: str | None, all_: bool, reason: str) -> None:
    """Exit every open position in scope through the normal order path (each worker, at the close
    of the position's current bar), then keep the scope reduce-only until `multialpha resume`."""
    if bool(strategy) == all_:
        raise click.UsageError("give exactly one of --strategy S or --all")
    settings = _ctx(ctx, config_path).settings()
    if strategy and strategy not in settings.strategies:
        raise click.BadParameter(f"unknown strategy {strategy!r}; known: {', '.join(sorted(settings.strategies))}",
                                 param_hint="--strategy")
    from multialpha.orders import commands

    _operate(settings, "flatten", lambda client: click.echo(
        "\n".join(commands.flatten(settings, client, strategy, reason))))


@main.group("orders")
def orders_group() -> None:
    """Review the order journal; resolve a failed exit or an ambiguous entry after checking the broker.

    ID may be the 10-character prefix `orders list` shows."""


@orders_group.command("list")
@config_option
@click.option("--strategy", default=None, help="Only this strategy's orders.")
# The lifecycle's states (commands.STATES; a test keeps them equal), spelled out so `--help`
# does not import the orders stack.
@click.option("--state", type=click.Choice(["review", "claimed", "sending", "delivered", "paper", "rejected", "ambiguous",
                                            "expired", "failed", "abandoned", "denied", "unresolved", "reviewed"]),
              default=None, help="Only orders in this state (review: on the review list).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Full records (full ids, payloads) as JSON.")
@click.pass_context
def orders_list(ctx: click.Context, config_path: str | None, strategy: str | None, state: str | None,
                limit: int, as_json: bool) -> None:
    """Newest orders first, with their current state (kind and ticker from 100 columns up)."""
    import json

    from multialpha.keys import Keys
    from multialpha.orders import commands

    settings = _ctx(ctx, config_path).settings()

    def run(client: "Any") -> None:
        rows = commands.list_orders(client, Keys(settings.redis.namespace), strategy, state, limit)
        if as_json:
            click.echo(json.dumps(rows, indent=2))
        elif not rows:
            click.echo("no orders" + (" matching" if strategy or state else "") + " in the journal")
        else:
            commands.render_list(_console(), rows)

    _operate(settings, "orders", run)


@orders_group.command("show")
@config_option
@click.argument("order_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def orders_show(ctx: click.Context, config_path: str | None, order_id: str, as_json: bool) -> None:
    """Every journal event of one order, its state, and the position it opened or is closing."""
    import json

    from multialpha.orders import commands

    settings = _ctx(ctx, config_path).settings()

    def run(client: "Any") -> None:
        row, events, pos = commands.show(settings, client, order_id)
        if as_json:
            click.echo(json.dumps({"order": row, "events": events, "position": pos}, indent=2))
        else:
            commands.render_show(_console(), row, events, pos)

    _operate(settings, "orders", run)


@orders_group.command("ack")
@config_option
@click.argument("order_id")
@click.option("--note", default="", help="What you saw at the broker (kept in the journal).")
@click.option("--price", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Exit: the price the broker closed at (default: the position's last mark).")
@click.option("--not-filled", is_flag=True, help="Entry: it never reached the broker; free its slot.")
@click.pass_context
def orders_ack(ctx: click.Context, config_path: str | None, order_id: str, note: str, price: float | None,
               not_filled: bool) -> None:
    """You checked the broker: make the book agree and take the order off the review list.

    \b
    Failed exit: the broker is flat -> the position leaves the book, P&L booked at --price
      or the last mark in the exit bar's trading day; reduce-only lifts with the last one.
    Ambiguous/unresolved entry: filled (default) -> the position stays;
      --not-filled -> its slot is freed.
    Anything else on the review list: acknowledged."""
    from multialpha.orders import commands

    settings = _ctx(ctx, config_path).settings()
    _operate(settings, "orders", lambda client: click.echo(
        "\n".join(commands.ack(settings, client, order_id, note, price, not_filled))))


@orders_group.command("retry")
@config_option
@click.argument("order_id")
@click.pass_context
def orders_retry(ctx: click.Context, config_path: str | None, order_id: str) -> None:
    """Resend a failed EXIT's journaled payload to TradersPost (needs the live destination).

    Entries are never resent (a second one could double the position): check the broker,
    then `orders ack`. Exit 1 if it is not delivered (the exit stays exit_failed)."""
    from multialpha.orders import commands

    settings = _ctx(ctx, config_path).settings()
    ok = [False]

    def run(client: "Any") -> None:
        ok[0], lines = commands.retry(settings, client, order_id, echo=click.echo)
        click.echo("\n".join(lines), err=not ok[0])

    _operate(settings, "orders", run)
    sys.exit(0 if ok[0] else 1)


@orders_group.command("export")
@config_option
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None, help="Write CSV here.")
@click.option("--parquet", "parquet_path", type=click.Path(dir_okay=False), default=None, help="Write Parquet here.")
@click.option("--from", "from_day", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="First CME trading day of the signal bar (17:00 CT boundary), YYYY-MM-DD.")
@click.option("--to", "to_day", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last CME trading day of the signal bar (inclusive), YYYY-MM-DD.")
@click.pass_context
def orders_export(ctx: click.Context, config_path: str | None, csv_path: str | None, parquet_path: str | None,
                  from_day: "Any", to_day: "Any") -> None:
    """One row per order: the intent's fields, final state, last outcome, detail and attempts.

    Days are CME trading days of the order's signal bar (a bar after 17:00 CT belongs to
    the next day), not UTC dates."""
    if bool(csv_path) == bool(parquet_path):
        raise click.UsageError("give exactly one of --csv FILE or --parquet FILE")
    from multialpha.keys import Keys
    from multialpha.orders import commands

    settings = _ctx(ctx, config_path).settings()
    path, fmt = (csv_path, "csv") if csv_path else (parquet_path, "parquet")

    def run(client: "Any") -> None:
        n = commands.export(client, Keys(settings.redis.namespace), str(path), fmt,
                            from_day.date() if from_day else None, to_day.date() if to_day else None)
        click.echo(f"wrote {n} order(s) to {path}")

    _operate(settings, "orders", run)


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
    sys.exit(train.main(settings, **opts))  # type: ignore[arg-type]


if __name__ == "__main__":  # pragma: no cover
    main()
