"""`multialpha backtest`: options -> run -> summary table + files. Exit 2 config, 1 data/other."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from multialpha import cme_time, plugins
from multialpha.config import ConfigError, Settings

EXIT_OK, EXIT_ERROR, EXIT_CONFIG = 0, 1, 2
DEFAULT_DAYS = 3


@dataclass(frozen=True)
class Source:
    """Where Historical bars come from and where the data ends ("now")."""

    fetch: Any
    dataset: str
    now: datetime
    sandbox: bool


def resolve_source(settings: Settings) -> Source:
    """Databento Historical with a key, else the running sandbox (its clock is "now")."""
    from multialpha import endpoints
    from multialpha.worker import warmup

    ep = endpoints.resolve(settings)
    fetch = warmup.databento_fetch(lambda: endpoints.historical_client(ep), ep.dataset)
    return Source(fetch, ep.dataset, endpoints.now(ep), ep.is_sandbox)


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


def parse_day(text: str | None, what: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError("", what, f"expected YYYY-MM-DD, got {text!r}") from None


def date_range(now: datetime, from_day: date | None, to_day: date | None, days: int) -> tuple[date, date]:
    from multialpha.backtest import data as bt_data

    if from_day is None and to_day is None:
        return bt_data.default_days(now, days)
    if to_day is None:
        to_day = bt_data.default_days(now, 1)[1]
    if from_day is None:
        from_day = cme_time.add_business_days(to_day, -(days - 1))
    for d, what in ((from_day, "--from"), (to_day, "--to")):
        if d.weekday() >= 5:
            raise ConfigError("", what, f"{d} is a weekend: no CME trading day")
    if to_day < from_day:
        raise ConfigError("", "--to", f"{to_day} is before --from {from_day}")
    return from_day, to_day


def with_veto_mode(settings: Settings, mode: str | None) -> Settings:
    if not mode:
        return settings
    return settings.model_copy(update={"ml_veto": settings.ml_veto.model_copy(update={"mode": mode})})


def main(settings: Settings, *, strategy: str | None, all_: bool, from_date: str | None, to_date: str | None,
         days: int, resolution: str, output: str | None, ml_veto: str | None, png: bool = True,
         progress: bool | None = None) -> int:
    from rich.console import Console

    from multialpha.backtest import data as bt_data
    from multialpha.backtest import results, runner

    err = Console(stderr=True)
    setup_logging("backtest")
    try:
        names = select_strategies(settings, strategy, all_)
        for n in names:
            plugins.strategy_type_of(settings, n)
        f, t = parse_day(from_date, "--from"), parse_day(to_date, "--to")
        settings = with_veto_mode(settings, ml_veto)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        src = resolve_source(settings)
    except Exception as e:  # no key and no sandbox running, unreadable state file …
        print(f"historical data unavailable: {e}\n(start the sandbox with `multialpha sandbox` or set DATABENTO_API_KEY)",
              file=sys.stderr)
        return EXIT_ERROR
    try:
        first, last = date_range(src.now, f, t, days)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    start, end = bt_data.session_range(first, last)
    out_dir = Path(output) if output else settings.path(settings.runtime_dir) / "backtest" / (
        f"{'all' if all_ else '_'.join(names)}_{first}_{last}_{resolution}")
    err.print(f"backtest {', '.join(names)}: trading days {first} .. {last} ({resolution} bars, "
              f"{'sandbox' if src.sandbox else 'Databento'} data up to {cme_time.iso_z(src.now)}), "
              f"ml_veto={settings.ml_veto.mode}")
    show = sys.stderr.isatty() if progress is None else progress
    try:
        if show:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} bars"),
                          TimeRemainingColumn(), console=err, transient=True) as bar:
                task = bar.add_task("backtest", total=None)
                run = runner.run(settings, names, start, end, fetch=src.fetch, dataset=src.dataset, data_now=src.now,
                                 resolution=resolution,
                                 progress=lambda d, n: bar.update(task, completed=d, total=n))
        else:
            run = runner.run(settings, names, start, end, fetch=src.fetch, dataset=src.dataset, data_now=src.now,
                             resolution=resolution)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return EXIT_CONFIG
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
        "net_pnl": "${:,.2f}", "realized_pnl": "${:,.2f}", "max_drawdown": "${:,.2f}",
        "final_equity": "${:,.2f}",
    }
    for k, v in summ.items():
        table.add_row(k.replace("_", " "), fmt.get(k, "{}").format(v))
    console = Console()
    console.print(table)
    for k, p in paths.items():
        console.print(f"{k:8s} {p}")
