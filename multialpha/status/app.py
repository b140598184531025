"""`multialpha status`: once, as JSON, or a live view refreshed every second."""

from __future__ import annotations

import json
import sys
import time

import redis
from rich.console import Console
from rich.live import Live

from multialpha.config import Settings
from multialpha.status.collect import collect
from multialpha.status.render import frame

REFRESH_S = 1.0


def run(settings: Settings, once: bool = False, as_json: bool = False) -> int:
    from multialpha.supervisor.redis_setup import connect

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
    if as_json:
        print(json.dumps(collect(settings, client), indent=2))
        return 0
    console = Console()
    if once:
        console.print(frame(collect(settings, client)))
        return 0
    try:
        with Live(frame(collect(settings, client)), console=console, refresh_per_second=4, screen=False) as live:
            while True:
                time.sleep(REFRESH_S)  # the refresh cadence of an interactive view
                try:
                    live.update(frame(collect(settings, client)))
                except redis.RedisError as e:
                    live.update(f"[bold red]Redis unreachable: {e}[/] — retrying")
    except KeyboardInterrupt:
        return 0
