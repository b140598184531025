"""The worker process: the sequence of its phases, each in its own module.

``run(settings, strategy)`` goes, in order, through

1. **prepare** (worker/prepare.py -> :class:`~multialpha.worker.prepare.Prepared`): the
   strategy's plugin type (unknown -> exit 2 listing the types), its feed plan, the ML veto;
2. **warm** (worker/warm.py -> :class:`~multialpha.worker.warm.Warmed`): the per-symbol
   cursor from Redis, the boundary ``T``, hourly/daily bars before ``T`` (cache, then Historical);
3. **catch up** (worker/catchup.py): subscribe to the live minute channels first (live
   bars now wait in the socket; worker/live.py wires subscriber, bus and feed router), then
   the bar log from ``T`` (bars up to the cursor rebuild the open hour/day only; bars after it
   are *replayed*: they update indicators and trade only when late signals are allowed);
4. **live** (worker/live.py, worker/signals.py): every feed marked LIVE, Cerebro run (live
   settings) until SIGTERM / ``stop_event``. Its thread reads the channels itself whenever no
   bar is pending (the subscriber's pump), so the live join is de-duplicated by timestamp;
5. **stop** (worker/stop.py): the bar in hand is finished, a final heartbeat is written, exit 0.

The heartbeat (worker/beat.py) beats through all of them. ``Worker`` holds the state the
phases share; each phase's methods come from its module's mixin.
"""

from __future__ import annotations

import collections
import logging
import signal
import threading
import time
from datetime import datetime
from functools import cached_property
from typing import Any, Callable

from multialpha import redis_acl, redis_conn
from multialpha.config import Settings
from multialpha.contracts import ContractMap
from multialpha.keys import Keys
from multialpha.worker import warm
from multialpha.worker.beat import HUB_SILENT, Beating, fail_fast_client, rss_mb
from multialpha.worker.catchup import CatchUp, decode_log_entry
from multialpha.worker.live import LiveRouting
from multialpha.worker.prepare import Prepared, prepare
from multialpha.worker.signals import SignalDesk
from multialpha.worker.stop import Stopping
from multialpha.worker.warm import MAX_CATCHUP

log = logging.getLogger(__name__)

EXIT_OK, EXIT_ERROR, EXIT_CONFIG = 0, 1, 2

# Importable from here as before the split (tests, bench).
__all__ = ["EXIT_CONFIG", "EXIT_ERROR", "EXIT_OK", "HUB_SILENT", "MAX_CATCHUP", "Worker", "decode_log_entry",
           "fail_fast_client", "run", "rss_mb"]


class Worker(Beating, LiveRouting, SignalDesk, CatchUp, Stopping):
    def __init__(
        self,
        settings: Settings,
        strategy: str,
        *,
        stop_event: threading.Event | None = None,
        router: Any = None,
        clock: Callable[[], datetime] | None = None,
        fetch: Any = None,
        progress: bool | None = None,
        await_sandbox_s: float = 0.0,
    ) -> None:
        self.settings = settings
        self.await_sandbox_s = await_sandbox_s
        self.name = strategy
        self.stop_event = stop_event or threading.Event()
        self.router = router
        self.clock = clock
        self.fetch = fetch
        self.progress = progress
        self.keys = Keys(settings.redis.namespace)
        self.state = "starting"
        self.counters: collections.Counter[str] = collections.Counter()
        self.last_bar: dict[str, datetime] = {}
        self.latencies: collections.deque[float] = collections.deque(maxlen=2048)
        self.cursor: dict[str, int] = {}  # symbol -> last processed bar start (ms)
        self.prepared: Prepared | None = None  # the prepare phase's hand-over (its fields copied below)
        self.historian: Any = None
        self.subscriber: Any = None
        self.feed_router: Any = None
        self.bus: Any = None
        self.strategy_obj: Any = None
        self.trade_late = settings.worker.trade_replayed_bars
        self._buffer: list[tuple[Any, int, bool]] = []  # (bar, recv_ns, previous front?) until live
        self._live_routing = False
        self._seen: dict[str, int] = {}
        self._minute_feeds: tuple[Any, list[tuple[str, Any, Any]]] | None = None  # (strategy, [(sym, feed, clock)])
        self._hb_stop = threading.Event()
        self._hb_wake = threading.Event()
        self._hb_thread: threading.Thread | None = None
        self._health: Any = None  # /healthz + /metrics server when worker.health_port_base is set
        self.cursor_writer: Any = None  # worker/cursor.py (live only)
        self.started_mono = time.monotonic()
        from multialpha.worker.phases import Phases

        self.phases = Phases()  # start-up durations, logged once at LIVE (worker/phases.py)
        self.live_after_s: float | None = None
        self.dataset = settings.databento.dataset
        self.turns: Any = None  # worker/turns.py: config-order turns at the gate (live only)
        self.closed_through: datetime | None = None  # newest minute-close notice reached
        self._notice_mono = 0.0  # monotonic time of the newest notice (or of going live)
        self._stale_logged = False
        self.owns_process = False  # run() in the main thread: the heap is ours to tune
        self.gc_frozen = 0  # objects gc.freeze() moved out of the collector's reach at LIVE
        self.model_status: dict[str, dict[str, Any]] = {}  # symbol -> {usable, reason} (ML veto on)
        self.plugin: dict[str, str] = {}  # the strategy's plugin: name, dist, version loaded (set in _prepare)
        from multialpha.worker.flatten import Flattener

        self.flattener = Flattener(strategy)  # daily stop / `multialpha flatten` exits
        from multialpha.worker.rolls import RollManager

        self.rolls = RollManager(self)  # roll policy, old-contract prices, expiry (worker/rolls.py)

    @cached_property
    def contracts(self) -> ContractMap:
        """The hub's contract map, read once for this worker: warmup, order contracts and rolls share it."""
        return ContractMap.load(self.settings.path(self.settings.contract_map_path))

    # -- the sequence ----------------------------------------------------------------
    def run(self) -> int:
        """Prepare (a ConfigError propagates: the command exits 2 naming the key), then the rest."""
        self._prepare()
        try:
            return self._run_live()
        except Exception as e:
            if self.stop_event.is_set():
                # Told to stop mid-warmup: the sandbox or Redis may be going down with us.
                log.info("stopped while %s (%s: %s)", self.state, type(e).__name__, e)
                return 0
            self.counters["errors"] += 1
            self.state = "error"
            log.exception("worker %s failed", self.name)
            return EXIT_ERROR
        finally:
            self._shutdown()

    def _prepare(self) -> None:
        """Phase 1; its hand-over's fields become the worker's (the later phases and rolls read them)."""
        p = self.prepared = prepare(self.settings, self.name)
        self.phases.mark("prepare")
        self.st, self.stype, self.cls, self.plan = p.st, p.stype, p.cls, p.plan
        self.trade_late, self.plugin, self.model_status = p.trade_late, p.plugin, p.model_status

    def _run_live(self) -> int:
        from multialpha.worker.cursor import CursorWriter

        client = redis_conn.connect(self.settings, decode_responses=True)
        self.client = client
        self.cursor_writer = CursorWriter(lambda: fail_fast_client(self.settings), self.keys.worker_cursor(self.name))
        self.state = "warming"
        self._start_heartbeat()
        if self.await_sandbox_s > 0 and (self.clock is None or self.fetch is None):
            warm.await_sandbox(self.settings, self.await_sandbox_s, self.stop_event)
        ep = warm.resolve_endpoints(self.settings, self.clock, self.fetch)
        self.clock, self.fetch, self.dataset = ep.clock, ep.fetch, ep.dataset
        if self.router is None:
            from multialpha.worker.orders import default_router

            try:
                self.router = default_router(
                    self.settings, redis_conn.connect(self.settings, decode_responses=True), self.name, self.clock
                )
            except ImportError as e:
                log.error("order router unavailable (%s); cannot run a live worker", e)
                return EXIT_ERROR
        for ref in self.plan.feeds:
            if ref.neutral is not None:
                log.warning("reference feed %s (%s) has no data source: flat bars at %s", ref.name, ref.symbol, ref.neutral)
        self.phases.mark("connect")
        # Phase 2: warm
        self.cursor.update(warm.read_cursor(client, self.keys.worker_cursor(self.name)))
        assert self.prepared is not None
        now = self.clock()
        self.historian = warm.historian(self.settings, ep, self.contracts)
        warmed = warm.warm(self.settings, self.prepared, self.cursor, now, self.historian, self.progress)
        h = self.historian
        self.phases.mark("warmup", f"Historical {h.fetch_s:.2f} s, {h.requests} requests")
        # Phase 3: catch up, into the live machinery (subscribed first: live bars wait in the socket)
        self._wire(warmed)
        if not self.subscriber.subscribe(10.0):
            log.error("could not subscribe to the bar channels within 10 s")
            return EXIT_ERROR
        self.phases.mark("subscribe")
        if warmed.enabled:
            self._fill_current_hour(client, warmed)
        self.phases.mark("current hour")
        self._catch_up(client, warmed)
        self.phases.mark("catch-up")
        # Phase 4: live
        self._go_live()
        cerebro = self._build_cerebro()
        self.phases.mark("cerebro")
        threading.Thread(target=self._stop_watch, name="stop-watch", daemon=True).start()
        if self.stop_event.is_set():
            self.bus.stop()
        try:
            cerebro.run()
        except Exception:
            self.counters["errors"] += 1
            self.state = "error"
            log.exception("strategy %s crashed", self.name)
            return EXIT_ERROR
        return EXIT_OK


def run(
    settings: Settings,
    strategy: str,
    *,
    stop_event: threading.Event | None = None,
    router: Any = None,
    clock: Callable[[], datetime] | None = None,
    fetch: Any = None,
    progress: bool | None = None,
    await_sandbox_s: float = 0.0,
) -> int:
    """Run one strategy worker until stopped; returns the process exit code.

    A config problem found before it connects to anything raises ``ConfigError`` (the command
    exits 2 through ``cli_common.config_error``). In the main thread SIGTERM and SIGINT set
    ``stop_event``. ``router`` defaults to ``multialpha.orders.router.OrderRouter``; ``clock``
    and ``fetch`` default to the resolved endpoints (sandbox or Databento). ``await_sandbox_s``:
    without an API key, wait that long for the sandbox's state file before the warmup.
    """
    redis_acl.set_role(f"worker.{strategy}")  # redis.acl: this process connects as its strategy's user
    stop = stop_event or threading.Event()
    main = threading.current_thread() is threading.main_thread()
    if main:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    worker = Worker(settings, strategy, stop_event=stop, router=router, clock=clock, fetch=fetch, progress=progress,
                    await_sandbox_s=await_sandbox_s)
    worker.owns_process = main
    return worker.run()
