"""`multialpha verify [--day D] [--strategy S] [--json]`: replay a trading day, diff with the journal.

Exit codes: 0 no difference; 1 at least one difference (the first differing bar is named);
2 bad option or config (naming it); 3 the day could not be verified (bar log trimmed, no
bars, Redis or Historical unreachable, a strategy crashed). Every run that reaches Redis
stores its summary (``Keys.verify_results``) for `multialpha status`.
"""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import date
from typing import Any

import click

from multialpha import cme_time
from multialpha.cli_common import _ctx, config_errors, config_option
from multialpha.config import ConfigError, Settings

EXIT_OK, EXIT_DIFFERENT, EXIT_CONFIG, EXIT_UNVERIFIED = 0, 1, 2, 3


@click.command("verify")
@config_option
@click.option("--day", default=None, help="CME trading day (YYYY-MM-DD; default: the last complete one).")
@click.option("--strategy", default=None, help="Compare only this strategy (all enabled ones are replayed).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@click.pass_context
def verify_cmd(ctx: click.Context, config_path: str | None, day: str | None, strategy: str | None,
               as_json: bool) -> None:
    """Replay a trading day from the hub's bar logs and diff its decisions with the journal."""
    settings = _ctx(ctx, config_path).settings()
    with config_errors():
        code = main(settings, day=day, strategy=strategy, as_json=as_json)
    sys.exit(code)


def _fail(msg: str, code: int) -> int:
    print(msg, file=sys.stderr)
    return code


def main(settings: Settings, *, day: str | None, strategy: str | None, as_json: bool) -> int:
    import redis

    from multialpha.backtest.command import setup_logging
    from multialpha.backtest.source import DateError, open_source, parse_day
    from multialpha.supervisor.redis_setup import connect, unreachable_line

    setup_logging("verify")
    try:
        if strategy is not None and strategy not in settings.enabled_strategies:
            raise ConfigError(settings.source_path, "--strategy",
                              f"{strategy!r} is not an enabled strategy; enabled: "
                              f"{', '.join(settings.enabled_strategies) or 'none'}")
        if not settings.enabled_strategies:
            raise ConfigError(settings.source_path, "strategies", "no enabled strategy")
        wanted = parse_day(day, "--day")
        if wanted is not None and wanted.weekday() >= 5:
            raise DateError(f"--day {wanted} is a {wanted.strftime('%A')} (weekend): no CME trading day")
    except DateError as e:
        return _fail(f"error: {e}", EXIT_CONFIG)
    try:
        client = connect(settings, timeout=10)
        client.ping()
    except redis.RedisError as e:
        return _fail(f"verify: {unreachable_line(settings, e)}", EXIT_UNVERIFIED)
    with contextlib.ExitStack() as stack:
        try:
            src = stack.enter_context(open_source(settings, until=wanted))
        except Exception as e:  # a dead sandbox's state file, or no way to reach Historical
            return _fail(f"verify: historical data (warmup) unavailable: {type(e).__name__}: {e}", EXIT_UNVERIFIED)
        return _run(settings, client, src, wanted, strategy, as_json)
    raise AssertionError("unreachable")  # pragma: no cover


def _run(settings: Settings, client: Any, src: Any, wanted: date | None, strategy: str | None, as_json: bool) -> int:
    from multialpha.backtest.data import default_days
    from multialpha.keys import Keys
    from multialpha.verify import engine, store

    keys = Keys(settings.redis.namespace)
    the_day = wanted or default_days(src.now, 1)[1]
    if cme_time.session_bounds(the_day)[1] > src.now:
        return _fail(f"error: trading day {the_day} is not over yet (data clock {cme_time.iso_z(src.now)})",
                     EXIT_CONFIG)
    try:
        result = engine.verify_day(settings, client, the_day, fetch=src.fetch, dataset=src.dataset,
                                   data_now=src.now, only=strategy)
    except Exception as e:  # bar log gap, no bars, a crashed strategy, Historical down: the day is unverified
        result = engine.VerifyResult(the_day.isoformat(), [strategy] if strategy else list(settings.enabled_strategies),
                                     [], {}, checked_at=cme_time.iso_z(cme_time.utcnow()),
                                     error=f"{type(e).__name__}: {e}")
    try:
        store.save(client, keys, result)
    except Exception as e:  # the report still prints; status just will not show it
        print(f"verify: result not stored in Redis: {type(e).__name__}: {e}", file=sys.stderr)
    if as_json:
        print(json.dumps(result.as_dict(), indent=2, sort_keys=True))
    else:
        _print(result)
    if result.error:
        if not as_json:
            print(f"verify {result.day}: could not verify: {result.error}", file=sys.stderr)
        return EXIT_UNVERIFIED
    return EXIT_OK if result.ok else EXIT_DIFFERENT


def _print(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from multialpha.verify import store

    console = Console(width=max(120, Console().width), highlight=False)
    counts = Table(title=f"verify {result.day}: live journal vs replay from the bar logs")
    for col in ("strategy", "orders live/replay", "denied live/replay", "vetoes live/replay"):
        counts.add_column(col)
    for s, c in result.counts.items():
        counts.add_row(s, f"{c['live_orders']}/{c['replay_orders']}", f"{c['live_denied']}/{c['replay_denied']}",
                       f"{c['live_vetoes']}/{c['replay_vetoes']}")
    console.print(counts)
    for n in result.notes:
        console.print(n)
    # Differences as plain lines, not table cells: a decision key is long, and a folded cell
    # cannot be searched for or pasted into an issue.
    for d in sorted(result.differences, key=lambda x: x.bar_start):
        console.print(f"{d.bar_start or '?'}  {d.category} {d.change}  {d.strategy} {d.symbol}", soft_wrap=True)
        console.print(f"    live:   {d.live or '-'}", soft_wrap=True)
        console.print(f"    replay: {d.replay or '-'}", soft_wrap=True)
    console.print(store.line(store.summary(result)))
