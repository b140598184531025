"""`multialpha status`: once, as JSON, or a live view that redraws only when something visible changed.

The live view reads Redis once a second through one :class:`~multialpha.status.collect.Status`
(one pipelined round trip when nothing moved), lays the document out for the
terminal's current size, and writes to the terminal only when that layout differs
from the one on screen (a resize counts as a change).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import redis
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from multialpha.config import Settings
from multialpha.status.collect import Status
from multialpha.status.render import lines

REFRESH_S = 1.0


def _key(width: int, height: int, ls: list[Text]) -> tuple[Any, ...]:
    return (width, height, tuple((t.plain, tuple((s.start, s.end, str(s.style)) for s in t.spans),
                                  str(t.style)) for t in ls))


def run(settings: Settings, once: bool = False, as_json: bool = False) -> int:
    from multialpha import redis_acl
    from multialpha.supervisor.redis_setup import connect

    redis_acl.set_role("status")  # redis.acl: read-only

    r = settings.redis
    try:
        client = connect(settings)
    except redis.RedisError as e:
        msg = f"cannot reach Redis at {r.host}:{r.port}: {e} (is `multialpha up` running? see docs/RUNBOOK.md)"
        if as_json:
            print(json.dumps({"schema": "multialpha.status/1", "error": msg}))
        else:
            print(msg, file=sys.stderr)
        return 1
    status = Status(settings, client)
    if as_json:
        print(json.dumps(status(), indent=2))
        return 0
    console = Console()
    if once:
        console.print(Group(*lines(status(), console.width)), crop=True, soft_wrap=False)
        return 0
    return live_view(status, console)


def _size(console: Console) -> tuple[int, int]:
    """The terminal's real size, now (a stale COLUMNS/LINES in the environment must not win after a resize)."""
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
        return size.columns, size.lines
    except (OSError, ValueError):
        return console.size


def live_view(status: Status, console: Console, refresh_s: float = REFRESH_S) -> int:
    shown: tuple[Any, ...] | None = None
    try:
        with Live(console=console, auto_refresh=False, screen=True, redirect_stdout=False,
                  redirect_stderr=False) as live:
            while True:
                width, height = _size(console)
                console.size = (width, height)  # type: ignore[assignment]  # Live draws at this size
                try:
                    ls = lines(status(), width, height)
                except redis.RedisError as e:
                    ls = [Text(f"Redis unreachable: {e} — retrying", style="bold red", no_wrap=True)]
                key = _key(width, height, ls)
                if key != shown:
                    live.update(Group(*ls), refresh=True)
                    shown = key
                time.sleep(refresh_s)  # the refresh cadence of an interactive view
    except KeyboardInterrupt:
        return 0
