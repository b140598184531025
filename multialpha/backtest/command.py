"""`multialpha backtest`: options -> run -> summary table + files. Exit 2 config, 1 data/other."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

from multialpha import cme_time, plugins
from multialpha.backtest.source import (DateError, Source, check_days, date_range, open_source, parse_day,
                                        sandbox_first_day)
from multialpha.config import ConfigError, Settings

__all__ = ["DateError", "Source", "date_range", "main", "open_source", "parse_day", "resolve_source",
           "select_strategies"]

EXIT_OK, EXIT_ERROR, EXIT_CONFIG = 0, 1, 2
DEFAULT_DAYS = 3


def resolve_source(settings: Settings) -> Source:
    """Databento Historical with a key, else the *running* sandbox (its clock is "now"); never embeds.

    The commands use :func:`multialpha.backtest.source.open_source`, which also starts an
    embedded sandbox when none is running.
    """
    from multialpha import endpoints
    from multialpha.worker import warmup

    ep = endpoints.resolve(settings)
    fetch = warmup.databento_fetch(lambda: endpoints.bars_client(ep), ep.dataset)
    return Source(fetch, ep.dataset, endpoints.now(ep), ep.is_sandbox, sandbox_first_day(ep.sandbox))


def setup_logging(process: str) -> None:
    """WARNING and up unless MULTIALPHA_LOG_LEVEL says otherwise (a run journals thousands of paper orders).

    Left alone when the process already configured logging (tests, embedding).
    """
    import logging
    import os

    from multialpha import logs

    if not logging.getLogger().handlers:
        logs.setup(process, level=os.environ.get("MULTIALPHA_LOG_LEVEL", "WARNING"))


def select_strategies(settings: Settings, strategy: str | None, all_: bool) -> list[str]:
    if all_:
        names = list(settings.enabled_strategies)
        if not names:
            raise ConfigError(settings.source_path, "strategies", "no enabled strategy")
        return names
    if not strategy:
        raise ConfigError(settings.source_path, "--strategy", "give --strategy NAME or --all")
    names = [s.strip() for s in strategy.split(",") if s.strip()]
    for n in names:
        if n not in settings.strategies:
            raise ConfigError(settings.source_path, "strategies",
                              f"unknown strategy {n!r}; known: {', '.join(settings.strategies)}")
    return [n for n in settings.strategies if n in names]  # config order


def with_veto_mode(settings: Settings, mode: str | None) -> Settings:
    if not mode:
        return settings
    return settings.model_copy(update={"ml_veto": settings.ml_veto.model_copy(update={"mode": mode})})


def main(settings: Settings, *, strategy: str | None, all_: bool, from_date: str | None, to_date: str | None,
         days: int, resolution: str, output: str | None, ml_veto: str | None, png: bool = True,
         progress: bool | None = None) -> int:
    from rich.console import Console

    err = Console(stderr=True, highlight=False, soft_wrap=True)  # long paths/messages: no hard wraps in logs
    setup_logging("backtest")
    try:
        names = select_strategies(settings, strategy, all_)
        for n in names:
            plugins.strategy_type_of(settings, n)
        f, t = parse_day(from_date, "--from"), parse_day(to_date, "--to")
        check_days(f, t, days)  # before any sandbox starts
        settings = with_veto_mode(settings, ml_veto)
    except DateError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    with contextlib.ExitStack() as stack:
        try:
            src = stack.enter_context(open_source(settings, say=err.print, until=t))
        except Exception as e:  # a dead sandbox's state file, or the embedded one could not start
            print(f"historical data unavailable: {type(e).__name__}: {e}", file=sys.stderr)
            return EXIT_ERROR
        return _run(settings, src, names, all_, f, t, days, resolution, output, png, progress, err)
    raise AssertionError("unreachable")  # pragma: no cover (ExitStack never swallows here)


def _run(settings: Settings, src: Source, names: list[str], all_: bool, f: Any, t: Any, days: int, resolution: str,
         output: str | None, png: bool, progress: bool | None, err: Any) -> int:
    from multialpha.backtest import data as bt_data
    from multialpha.backtest import progress as day_progress
    from multialpha.backtest import results, runner

    try:
        first, last = date_range(src, f, t, days)
    except DateError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    start, end = bt_data.session_range(first, last)
    out_dir = Path(output) if output else settings.path(settings.runtime_dir) / "backtest" / (
        f"{'all' if all_ else '_'.join(names)}_{first}_{last}_{resolution}")
    err.print(f"backtest {', '.join(names)}: trading days {first} .. {last} ({resolution} bars, "
              f"{src.label} data up to {cme_time.iso_z(src.now)}), ml_veto={settings.ml_veto.mode}")
    try:
        with day_progress.days(err, "backtest", tty=progress) as on_day:
            run = runner.run(settings, names, start, end, fetch=src.fetch, dataset=src.dataset, data_now=src.now,
                             resolution=resolution, progress=on_day)
    except ConfigError:
        raise  # the command's one way out for config problems (cli_common.config_errors): exit 2
    except bt_data.DataUnavailable as e:
        print(f"historical data unavailable: {e}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:  # a strategy that crashed, a Historical error …: say so, exit 1
        print(f"backtest failed: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_ERROR
    paths = results.write(run, out_dir, png=png)
    tl = results.trades(run)
    summ = results.summary(run, tl, results.equity_curve(run, tl))
    print_summary(summ, paths)
    return EXIT_OK


def print_summary(summ: dict[str, Any], paths: dict[str, Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="backtest", show_header=False)
    fmt = {
        "win_rate": "{:.1%}", "exposure": "{:.1%}", "max_drawdown_pct": "{:.2%}", "sharpe": "{:.2f}",
        "sortino": "{:.2f}", "net_pnl": "${:,.2f}", "net_pnl_no_slippage": "${:,.2f}", "slippage": "${:,.2f}",
        "realized_pnl": "${:,.2f}", "realized_pnl_no_slippage": "${:,.2f}", "max_drawdown": "${:,.2f}",
        "final_equity": "${:,.2f}",
    }
    for k, v in summ.items():
        table.add_row(k.replace("_", " "), "n/a" if v is None else fmt.get(k, "{}").format(v))
    console = Console()
    console.print(table)
    for k, p in paths.items():
        console.print(f"{k:8s} {p}")
