"""`multialpha report`: journal -> fills -> sections -> files and a table. Exit 2 bad input, 1 Redis/empty."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Any, Iterable, Mapping

from multialpha.config import Settings
from multialpha.report import build, html, source

EXIT_OK, EXIT_ERROR, EXIT_CONFIG = 0, 1, 2


def make(settings: Settings, events: Iterable[Mapping[str, str]], first: date | None, last: date | None,
         strategy: str | None) -> build.Report:
    """The report of ``events`` (a journal) over [first, last] for one strategy or all of them."""
    fills, denied = source.fills(settings, events)
    if strategy is not None:
        fills = [f for f in fills if f.strategy == strategy]
        names = [strategy]
    else:  # config order; strategies no longer in the config after them, by name
        present = {f.strategy for f in fills}
        names = [n for n in settings.strategies if n in present] + sorted(present - set(settings.strategies))
    first, last = build.period(fills, first, last)
    return build.build(fills, first, last, settings.report_capital, names, portfolio=strategy is None, denied=denied)


def run(settings: Settings, client: Any, *, from_date: date | None, to_date: date | None, strategy: str | None,
        html_path: str | None, output: str | None, png: bool = True) -> int:
    if from_date and to_date and from_date > to_date:
        print(f"error: --from {from_date} is after --to {to_date}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        rep = make(settings, source.read_journal(client, settings), from_date, to_date, strategy)
    except build.EmptyJournal as e:
        print(f"report: {e}", file=sys.stderr)
        return EXIT_ERROR
    except build.NoTradingDay as e:  # e.g. --from/--to a weekend
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    out_dir = Path(output) if output else settings.path(settings.runtime_dir) / "report" / f"{rep.first}_{rep.last}"
    paths = build.write(rep, out_dir, png=png or bool(html_path))
    if html_path:
        paths["html"] = html.write(rep, Path(html_path), title=f"multialpha report ({settings.redis.namespace})")
    print_table(rep, paths)
    return EXIT_OK


def print_table(rep: build.Report, paths: Mapping[str, Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"report: CME trading days {rep.first} .. {rep.last}, capital ${rep.capital:,.0f}")
    table.add_column("figure")
    for s in rep.sections:
        table.add_column(s.name, justify="right")
    for key, label in html.LABELS.items():
        table.add_row(label, *(html.fmt(key, s.stats[key]) for s in rep.sections))
    console = Console(width=max(100, Console().width), highlight=False)
    console.print(table)
    for k, p in paths.items():
        console.print(f"{k:18s} {p}")
