"""Progress over trading days for `multialpha backtest` and `models train`.

On a terminal: a rich progress bar (trading days done / total, the day being
run, elapsed and remaining time). Otherwise (a pipe, a log file, CI): one
plain line per trading day as it starts, and one at the end — no control
codes in logs.
"""

from __future__ import annotations

import contextlib
from datetime import date
from typing import Any, Callable, Iterator

DayCallback = Callable[[int, int, date], None]  # (days done, days total, day being run)


@contextlib.contextmanager
def days(console: Any, label: str, tty: bool | None = None) -> Iterator[DayCallback]:
    """A callback for ``runner.run(progress=...)``; ``tty`` None = ``console.is_terminal``."""
    if console.is_terminal if tty is None else tty:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}"), BarColumn(),
                   TextColumn("{task.completed}/{task.total} trading days"), TextColumn("{task.fields[day]}"),
                   TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(label, total=None, day="")

            def update(done: int, total: int, day: date) -> None:
                bar.update(task, completed=done, total=total, day="" if done == total else str(day))

            yield update
        return
    last: list[int] = [-1]

    def line(done: int, total: int, day: date) -> None:
        if done == last[0]:
            return
        last[0] = done
        if done < total:
            console.print(f"{label}: trading day {day} ({done + 1}/{total})", highlight=False)
        else:
            console.print(f"{label}: {total}/{total} trading days done", highlight=False)

    yield line
