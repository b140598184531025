"""Body of `multialpha sandbox`: run both gateways in the foreground until Ctrl-C/SIGTERM."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from datetime import date
from pathlib import Path
from typing import Any

import click

from multialpha import cme_time, logs
from multialpha.config import Settings

log = logging.getLogger("multialpha.sandbox")


def run(settings: Settings, log_json: bool, opts: dict[str, Any]) -> int:
    from multialpha.sandbox import heap
    from multialpha.sandbox.server import Sandbox

    logs.setup("sandbox", log_json)
    heap.limit_arenas(2)  # this process is the sandbox: its handler threads share two arenas (sandbox/heap.py)
    from_date = None
    if opts.get("from_date"):
        try:
            from_date = date.fromisoformat(str(opts["from_date"]))
        except ValueError:
            raise click.BadParameter(f"not a YYYY-MM-DD date: {opts['from_date']!r}", param_hint="--from") from None
    start_at = None
    if opts.get("resume_at"):
        try:
            start_at = cme_time.parse_iso(str(opts["resume_at"]))
        except ValueError:
            raise click.BadParameter(f"not an ISO UTC time: {opts['resume_at']!r}", param_hint="--resume-at") from None
    if opts.get("days") is not None and int(opts["days"]) < 1:
        raise click.BadParameter("must be >= 1", param_hint="--days")
    if opts.get("speed") is not None and float(opts["speed"]) < 0:
        raise click.BadParameter("must be >= 0", param_hint="--speed")
    try:
        sb = Sandbox(
            settings,
            seed=opts.get("seed"),
            speed=opts.get("speed"),
            key=opts.get("key"),
            live_port=int(opts.get("live_port") or 0),
            hist_port=int(opts.get("hist_port") or 0),
            from_date=from_date,
            days=opts.get("days"),
            state_file=Path(opts["state_file"]) if opts.get("state_file") else None,
            start_at=start_at,
        )
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--key") from None
    if opts.get("precompute"):
        return precompute(sb)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        st = sb.start()
    except OSError as e:
        click.echo(f"sandbox: cannot start: {e}", err=True)
        return 1
    try:
        speed = "unpaced (as fast as clients read; clock pinned)" if st.speed == 0 else f"{st.speed:g}x real time"
        click.echo(
            "\n".join(
                [
                    "multialpha sandbox: local Databento gateways over a synthetic CME market",
                    f"  live gateway        {st.host}:{st.live_port}",
                    f"  historical gateway  {st.historical_url}",
                    f"  API key (sandbox)   {st.api_key}   <- generated locally, accepted only here",
                    f"  CA certificate      {st.ca_path}",
                    f"  dataset             {st.dataset}, seed {st.seed}, history from {sb.market.first_day}",
                    f"  clock               {cme_time.iso_z(st.now())}, {speed}",
                    f"  state file          {sb.state_file}",
                    "Ctrl-C to stop.",
                ]
            )
        )
        click.echo(json.dumps({k: v for k, v in st.to_dict().items()}, sort_keys=True))
        sys.stdout.flush()
        while not stop.wait(1.0):
            pass
        log.info("stopping sandbox")
    finally:
        sb.stop()
    return 0


def precompute(sb: Any) -> int:
    """Generate (or read) every root's hourly bars over the whole history into the store, then exit."""
    market = sb.market
    if market.store is None:
        click.echo("sandbox --precompute: sandbox.store_dir is empty: nothing to fill", err=True)
        return 2
    days = market.trading_days(cme_time.to_ns(cme_time.session_bounds(market.first_day)[0]),
                               cme_time.to_ns(cme_time.session_bounds(market.from_date)[1]))
    for root in market.roots:
        for day in days:
            market.hour_bars(root, day)
        click.echo(f"  {root}: {len(days)} trading days")
    market.store.close()
    click.echo(f"sandbox store {market.store.dir}: {market.store.misses} days generated, "
               f"{market.store.hits} already there")
    return 0
