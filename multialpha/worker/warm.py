"""Phase 2 of a worker, warm: where the previous run stopped, and the history before it.

Reads the cursor (per symbol, the last bar-log id processed), picks the
boundary ``T`` (the current hour, or the hour of the oldest unprocessed bar)
and builds hourly/daily bars before ``T`` of the contract the hub publishes
(worker/warmup.py, through the cache). The result is :class:`Warmed`, which
catch-up starts from.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from multialpha import cme_time
from multialpha.config import Settings
from multialpha.contracts import ContractMap
from multialpha.worker import warmup
from multialpha.worker.prepare import Prepared

log = logging.getLogger(__name__)

MAX_CATCHUP = timedelta(days=7)  # the bar log keeps a week (hub.bar_log_maxlen)


@dataclass(frozen=True)
class Endpoints:
    """The market's clock and the Historical fetch: the sandbox's when there is no API key."""

    clock: Callable[[], datetime]
    fetch: Any  # warmup.Fetch
    dataset: str


@dataclass(frozen=True)
class Warmed:
    """Hand-over of the warm phase to catch-up."""

    now: datetime  # the market clock when warmup started
    boundary: datetime  # T: catch-up replays the bar log from here
    historian: warmup.Historian  # the cache + Historical (the open hour's minutes come from it too)
    symbols: dict[str, warmup.SymbolWarmup]  # per source symbol: hours, days, day resampler, contract
    enabled: bool  # any warmup bars configured: then the open hour is filled from Historical too


def resolve_endpoints(settings: Settings, clock: Callable[[], datetime] | None, fetch: Any) -> Endpoints:
    """Given ones win (tests, the backtest); else the sandbox's, or Databento's with an API key."""
    if clock is not None and fetch is not None:
        return Endpoints(clock, fetch, settings.databento.dataset)
    try:
        from multialpha import endpoints
    except ImportError:  # endpoints (issue 3) not there: the real service
        key, dataset = settings.databento.api_key, settings.databento.dataset

        def factory() -> Any:
            from multialpha.worker.histclient import HistoricalClient

            return HistoricalClient(key, "https://hist.databento.com")

        return Endpoints(clock or cme_time.utcnow, fetch or warmup.databento_fetch(factory, dataset), dataset)
    ep = endpoints.resolve(settings)
    return Endpoints(clock or (lambda: endpoints.now(ep)),
                     fetch or warmup.databento_fetch(lambda: endpoints.bars_client(ep), ep.dataset), ep.dataset)


def await_sandbox(settings: Settings, timeout_s: float, stop: threading.Event, poll_s: float = 0.05) -> bool:
    """Without an API key, wait up to ``timeout_s`` for a running sandbox's state file; True once it is there.

    ``multialpha up`` starts the workers together with the sandbox so that their imports and
    models load while it starts; the sandbox writes its state file (ports, key, CA) when both
    gateways listen. On a timeout (or a stop) this returns False and ``resolve_endpoints`` says
    what is missing."""
    if settings.databento.api_key:
        return True
    from multialpha import runtime
    from multialpha.endpoints import running_sandbox

    path = runtime.sandbox_state_path(settings)
    t0 = time.monotonic()
    if running_sandbox(path):
        return True
    # A state file whose pid is dead is the previous sandbox's (killed, restarting): wait on.
    log.info("waiting for the sandbox (state file %s), up to %.0f s", path, timeout_s)
    while not stop.wait(poll_s):
        if running_sandbox(path):
            log.info("sandbox ready after %.2f s", time.monotonic() - t0)
            return True
        if time.monotonic() - t0 >= timeout_s:
            return False
    return False


def read_cursor(client: Any, key: str) -> dict[str, int]:
    """symbol -> start (ms) of the last bar processed before the restart; bad entries are skipped."""
    cursor: dict[str, int] = {}
    for k, v in client.hgetall(key).items():
        k = k.decode() if isinstance(k, bytes) else k
        v = v.decode() if isinstance(v, bytes) else v
        try:
            cursor[k] = int(str(v).split("-")[0])
        except ValueError:
            log.warning("ignoring bad cursor %s=%r", k, v)
    return cursor


def boundary(now: datetime, sources: list[str], cursor: dict[str, int]) -> datetime:
    """Start of catch-up: the current hour, or the hour of the oldest unprocessed bar."""
    first = now
    for sym in sources:
        ms = cursor.get(sym)
        if ms is not None:
            first = min(first, cme_time.from_ns(ms * 1_000_000) + timedelta(minutes=1))
    first = max(first, now - MAX_CATCHUP)
    return cme_time.hour_bucket(first)


def historian(settings: Settings, ep: Endpoints, contracts: ContractMap) -> warmup.Historian:
    """The cache + Historical that warmup reads (its counters are in the heartbeat while it works)."""
    from multialpha.worker.cache import BarCache

    # Warmup reads the contract the hub trades each day: the same map as the hub.
    return warmup.Historian(BarCache(warmup.cache_root(settings)), ep.fetch, ep.dataset, contracts=contracts)


def warm(settings: Settings, prepared: Prepared, cursor: dict[str, int], now: datetime, historian: warmup.Historian,
         progress: bool | None) -> Warmed:
    """Hours and days before ``T`` for every symbol that needs them (cache first, one Historical request)."""
    t = boundary(now, prepared.plan.sources, cursor)
    w = settings.worker
    symbols = warmup.warm_all(historian, prepared.plan.warm_sources(), t, w.warmup_daily_bars, w.warmup_hourly_bars,
                              progress, adjust=prepared.st.roll.adjust)
    log.info("warmup: %d symbols before %s (%d Historical requests, %d cached ranges)",
             len(symbols), cme_time.iso_z(t), historian.requests, historian.cached_ranges)
    return Warmed(now, t, historian, symbols, w.warmup_daily_bars > 0 or w.warmup_hourly_bars > 0)
