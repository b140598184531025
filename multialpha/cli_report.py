"""`multialpha report` (click wiring; the logic is :mod:`multialpha.report.command`)."""

from __future__ import annotations

import sys

import click

from multialpha.cli_common import _ctx, config_option, redis_failed


@click.command("report")
@config_option
@click.option("--from", "from_date", default=None,
              help="First CME trading day (YYYY-MM-DD; default: the first fill's).")
@click.option("--to", "to_date", default=None, help="Last CME trading day (default: the last fill's).")
@click.option("--strategy", default=None, help="Only this strategy (default: every strategy and the portfolio).")
@click.option("--html", "html_path", default=None, type=click.Path(dir_okay=False),
              help="Also write one self-contained HTML page here.")
@click.option("--output", default=None, type=click.Path(file_okay=False),
              help="Directory for the CSVs and PNGs (default: <runtime_dir>/report/<from>_<to>).")
@click.option("--no-png", is_flag=True, help="Skip the PNGs (an --html page still embeds them).")
@click.pass_context
def report(ctx: click.Context, config_path: str | None, from_date: str | None, to_date: str | None,
           strategy: str | None, html_path: str | None, output: str | None, no_png: bool) -> None:
    """P&L per trading day, equity/drawdown, Sharpe/Sortino, exposure and slippage from the order journal."""
    import redis

    from multialpha.backtest.source import DateError, parse_day
    from multialpha.report import command
    from multialpha.supervisor.redis_setup import connect

    settings = _ctx(ctx, config_path).settings()
    try:
        first, last = parse_day(from_date, "--from"), parse_day(to_date, "--to")
    except DateError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(command.EXIT_CONFIG)
    if strategy is not None and strategy not in settings.strategies:
        known = ", ".join(settings.strategies)
        click.echo(f"error: --strategy: unknown strategy {strategy!r}; known: {known}", err=True)
        sys.exit(command.EXIT_CONFIG)
    try:
        client = connect(settings, timeout=5)
        code = command.run(settings, client, from_date=first, to_date=last, strategy=strategy, html_path=html_path,
                           output=output, png=not no_png)
    except redis.RedisError as e:
        redis_failed(settings, "report", e)
    sys.exit(code)
