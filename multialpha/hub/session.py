"""The one Databento Live connection, kept alive forever on its own thread.

The client is ``multialpha.lsg.Live`` (``databento.Live``'s interface and protocol,
without its imports: docs/hub.md). The official client's own ``ReconnectPolicy`` tries
once, treats a clean close as the end and does not replay the gap, and ours has none, so
the hub runs its own loop:

    connect -> subscribe(parents, start=resume) -> start -> watch -> (closed)
        -> Disconnected marker -> wait for the hub's resume point -> backoff

- **Watching**: the client's own hang detection only starts after the first
  record, so the session measures silence itself (no record for
  ``hub.silence_timeout_s``, counted from connect) and terminates the client.
  An ``ErrorMsg`` from the gateway also ends the session (it is followed by a
  close on the real gateway; here we do not wait for it).
- **Backoff**: exponential from ``hub.reconnect_initial_s`` to
  ``hub.reconnect_cap_s`` with "equal jitter" (half fixed, half random), reset
  once a session has delivered a record. Every failure is transient: the loop
  only ends on :meth:`stop`.
- **Ordering**: the client callback only enqueues (it runs on the client's
  event-loop thread; blocking there stops socket reads). Markers go through the
  same queue, so the hub thread sees ``Disconnected`` after the last record of
  that connection and ``Connected`` before the first record of the next. Each
  connection has a generation number; a stale connection's late callbacks are
  dropped.
- **Gap replay**: after ``Disconnected`` the hub drops partial bars and
  answers :meth:`resume` with the first minute not yet complete; the next
  subscription carries ``start`` = that minute minus a margin (replay selects
  on ``ts_event``, bars on ``ts_recv``), so every trade of the gap is replayed
  and the hub skips what it already published.
- **Cold start** (the hub has no resume point: no bar log, or nothing received
  yet): the subscription carries ``start`` = the current minute (the gateway's
  clock at connect) minus the margin, so the first minute the hub publishes is
  whole. Every connection reports the first minute it delivers whole
  (``Connected.whole_from``); the hub publishes nothing before it.
- **Refused replay**: a connection that asked for ``start`` and got an
  ``ErrorMsg`` before any record is a refused replay; the next connection
  subscribes live only (its first whole minute is the one after connect), and
  replay is asked for again once a connection has delivered records.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from databento_dbn import ErrorMsg

from multialpha import cme_time

log = logging.getLogger(__name__)

MINUTE_NS = cme_time.MINUTE_NS
REPLAY_MARGIN_NS = MINUTE_NS
# Intraday replay reaches 24 h back; ask for a little less so the request stays valid.
REPLAY_WINDOW_NS = (24 * 60 - 2) * 60 * 1_000_000_000


@dataclass(frozen=True)
class Connected:
    gen: int
    start_ns: int | None  # replay start requested (None = live only)
    gateway: str
    now_ns: int  # the gateway's clock at connect: earlier minutes are "replay"
    # First minute whose every trade this connection delivers (None: unknown, live only
    # without a gateway clock). With start=, the minute after the margin; live only, the
    # minute after connect (its first second may be missed).
    whole_from: int | None = None


def first_whole_minute(start_ns: int | None, now_ns: int) -> int | None:
    """First minute a subscription from ``start_ns`` (None = live from ``now_ns``) delivers whole.

    Replay selects on ``ts_event`` and bars bucket on ``ts_recv`` (>= ts_event, by less than
    the margin), so a minute is whole once it starts a margin after ``start``.
    """
    if start_ns is None:
        return cme_time.floor_minute_ns(now_ns) + MINUTE_NS if now_ns else None
    return -(-start_ns // MINUTE_NS) * MINUTE_NS + REPLAY_MARGIN_NS


@dataclass(frozen=True)
class Disconnected:
    gen: int
    reason: str


@dataclass
class Target:
    """What a connection needs; re-resolved before every attempt (ports can move)."""

    client: Any  # an unstarted lsg.Live (or anything with databento.Live's interface)
    gateway: str
    now_ns: int


class Inbox:
    """Records and markers from the client's thread to the hub thread.

    A deque append plus a wake-up only when the hub sleeps: about a third
    cheaper per record than ``queue.SimpleQueue`` (no lock per item). No lost
    wake-up: the hub clears the event *then* re-checks the deque before waiting;
    a producer appends *then* checks the event.
    """

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._ready = threading.Event()

    def put(self, item: Any) -> None:
        self._items.append(item)
        if not self._ready.is_set():
            self._ready.set()

    def drain(self, limit: int, timeout: float) -> list[Any]:
        items = self._items
        if not items:
            self._ready.clear()
            if not items:
                self._ready.wait(timeout)
        pop = items.popleft
        return [pop() for _ in range(min(limit, len(items)))]

    def __len__(self) -> int:
        return len(self._items)


def backoff_delay(attempt: int, initial: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with equal jitter, capped."""
    base = min(cap, initial * (2 ** min(attempt, 30)))
    return base / 2 + rng.uniform(0, base / 2)


class Session:
    def __init__(
        self,
        connect: Callable[[], Target],
        out: Inbox,
        *,
        dataset: str,
        symbols: list[str],
        schema: str = "trades",
        stype_in: str = "parent",
        start_ns: int | None = None,
        silence_timeout_s: float = 40.0,
        reconnect_initial_s: float = 0.5,
        reconnect_cap_s: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        self.connect = connect
        self.out = out
        self.dataset = dataset
        self.symbols = list(symbols)
        self.schema = schema
        self.stype_in = stype_in
        self.silence_timeout_s = silence_timeout_s
        self.initial = reconnect_initial_s
        self.cap = reconnect_cap_s
        self.rng = rng or random.Random()
        self.gen = 0
        self.state = "starting"
        self.gateway = ""
        self.reconnects = 0
        self.last_error = ""
        self.client: Any = None  # the current Live client (diagnostics and tests)
        self._start = start_ns
        self._last_record = time.monotonic()
        self._got_record = False
        self._error_gen = -1
        self._live_gen = 0  # generation whose records are accepted (0 = none)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._resume: "queue.SimpleQueue[int | None]" = queue.SimpleQueue()
        self._resubscribe = False
        self._sent_start: int | None = None  # start= of the current connection
        self.replay_refused = False  # the gateway refused start=: live only until a connection works
        self._thread = threading.Thread(target=self._run, name="hub-session", daemon=True)

    # -- control (any thread) ------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        self._wake.set()
        self._resume.put(None)
        self._thread.join(timeout)

    def resume(self, start_ns: int | None) -> None:
        """The hub's answer to a Disconnected marker: replay from this minute."""
        self._resume.put(start_ns)

    def resubscribe(self, symbols: list[str]) -> None:
        """New instrument set (config reload): reconnect with the new subscription."""
        self.symbols = list(symbols)
        self._resubscribe = True
        self._wake.set()

    def streaming(self) -> bool:
        """The gateway has answered with the session's metadata header."""
        client = self.client
        try:
            return client is not None and client.metadata is not None
        except Exception:
            return False

    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- the client callback (client's event-loop thread): enqueue only -----------------
    def _callback(self, gen: int) -> Callable[[Any], None]:
        put = self.out.put  # deque append + rare wake-up; nothing that can block

        def on_record(record: Any) -> None:
            if gen != self._live_gen:
                return  # a stale connection's leftovers
            self._last_record = time.monotonic()
            if type(record) is ErrorMsg:
                self._error_gen = gen
                self._wake.set()
            else:
                self._got_record = True  # a working session: backoff starts over
            put(record)

        return on_record

    def _on_exception(self, exc: Exception) -> None:
        log.error("databento callback error: %s", exc)

    # -- the loop -----------------------------------------------------------------------
    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            self.gen += 1
            gen = self.gen
            self._live_gen = gen
            reason = self._one_connection(gen)
            self._live_gen = 0
            if self._stop.is_set():
                break
            if self._sent_start is not None and self._error_gen == gen and not self._got_record:
                # An ErrorMsg before any record answers the subscription itself: replay refused.
                self.replay_refused = True
                log.error("gateway refused replay from %s: the next connection subscribes live only",
                          _iso(self._sent_start))
            elif self._got_record:
                self.replay_refused = False  # a working connection: ask for replay again next time
            if self._got_record:
                attempt = 0
            self.reconnects += 1
            self.last_error = reason
            self.state = "reconnecting"
            self.out.put(Disconnected(gen, reason))
            # The hub computes the resume point after draining this connection's records.
            start = self._resume.get()
            if self._stop.is_set():
                break
            self._start = start
            delay = backoff_delay(attempt, self.initial, self.cap, self.rng)
            attempt += 1
            log.warning("live session %d ended (%s); reconnecting in %.2fs, replay from %s", gen, reason, delay, start)
            self._wake.clear()
            if self._stop.wait(delay):
                break
        self.state = "stopped"

    def _one_connection(self, gen: int) -> str:
        self._got_record = False
        self._resubscribe = False
        self._sent_start = None
        self._wake.clear()
        client = None
        try:
            target = self.connect()
            client = target.client
            self.client = client
            self.gateway = target.gateway
            client.add_callback(self._callback(gen), self._on_exception)
            minute = self._start
            if minute is None and target.now_ns:
                # Cold start: replay the current minute, so the first bar published is whole.
                minute = cme_time.floor_minute_ns(target.now_ns)
            start = None if minute is None or self.replay_refused else max(0, minute - REPLAY_MARGIN_NS)
            oldest = target.now_ns - REPLAY_WINDOW_NS
            if start is not None and target.now_ns and start < oldest:
                log.error(
                    "gap since %s exceeds the gateway's 24 h replay window: minutes before %s cannot be recovered",
                    _iso(start), _iso(oldest),
                )
                start = oldest
            self._sent_start = start
            self.state = "connecting"
            client.subscribe(
                dataset=self.dataset, schema=self.schema, symbols=self.symbols, stype_in=self.stype_in, start=start
            )
            whole = first_whole_minute(start, target.now_ns)
            self.out.put(Connected(gen, start, target.gateway, target.now_ns, whole))
            self._last_record = time.monotonic()
            client.start()
            self.state = "connected"
            log.info("live session %d connected to %s (%d symbols, start %s)", gen, target.gateway, len(self.symbols), start)
            return self._watch(client, gen)
        except Exception as e:  # every failure is transient: log, back off, retry
            return f"{type(e).__name__}: {e}"
        finally:
            self.client = None
            if client is not None:
                _terminate(client)

    def _watch(self, client: Any, gen: int) -> str:
        while True:
            if self._stop.is_set():
                return "stopped"
            if self._error_gen == gen:
                return "gateway sent an error"
            if self._resubscribe:
                return "resubscribe"
            if not client.is_connected():
                try:
                    client.block_for_close(timeout=1.0)
                except Exception as e:
                    return f"closed: {type(e).__name__}: {e}"
                return "closed by gateway"
            silent = time.monotonic() - self._last_record
            if silent > self.silence_timeout_s:
                return f"silent for {silent:.1f}s"
            self._wake.wait(0.05)
            self._wake.clear()


def _iso(ns: int) -> str:
    return cme_time.iso_z(ns)


def _terminate(client: Any) -> None:
    try:
        if client.is_connected():
            client.terminate()
    except Exception:  # already closed or never connected
        pass
