"""The operator's order commands: `multialpha flatten` and the `multialpha orders` group.

The click wiring only; the logic is :mod:`multialpha.orders.commands`, imported inside each
command so ``multialpha --help`` does not load the orders stack. :mod:`multialpha.cli`
registers these on the main group.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import click

from multialpha import config as cfg
from multialpha import logs
from multialpha.cli_common import _ctx, config_option, redis_failed


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


@click.command()
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


@click.group("orders")
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
