"""The Redis pub/sub reader, validating every bar before it reaches Cerebro.

It has no thread of its own: whoever needs data calls :meth:`BarSubscriber.pump`.
In a worker that is Cerebro's thread, through the :class:`FeedBus`, whenever
no bar is pending — so a bar goes socket → validation → feed → ``next()``
in one thread, with no hand-off between threads (each hand-off cost a
wake-up and a fight for the GIL with the bar in hand; bench/worker_latency.py).
Until the first pump, published bars simply wait in the socket.

Malformed payloads (bad JSON, missing fields, NaN, negative or huge prices,
oversize), bars on the wrong channel, out-of-order and duplicate bars (by
timestamp, per symbol) are dropped, counted and logged (rate-limited) —
never raised. The hub's minute-close notices (``Keys.minute_closed``) arrive
on the same connection, so in order with the bars, and go to
``on_minute_closed`` (malformed or stale ones are dropped the same way).
Every ``qcheck`` seconds a pump also calls ``on_idle`` (quiet-market closes
of hours and days). A lost Redis connection is retried with backoff from the
pumps; ``connected`` says whether it is up.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from datetime import datetime
from typing import Any, Callable

from multialpha import redis_conn
from multialpha.bar import Bar, BarError, parse_minute_closed
from multialpha.keys import Keys

log = logging.getLogger(__name__)


class BarSubscriber:
    def __init__(
        self,
        client_factory: Callable[[], Any],
        keys: Keys,
        symbols: list[str],
        on_bar: Callable[[Bar, int], None],
        on_idle: Callable[[], None] = lambda: None,
        qcheck: float = 0.5,
        on_resubscribed: Callable[[], None] = lambda: None,
        on_minute_closed: Callable[[datetime], None] | None = None,
        on_control: Callable[[dict[str, Any]], None] | None = None,
        on_prev_bar: Callable[[Bar, int], None] | None = None,
    ) -> None:
        self.client_factory = client_factory
        self.channels = {keys.bars(s): s for s in symbols}
        # The previous front's bars after a roll (Keys.prev_bars): their own channel, their own
        # order check (key "SYM:prev"), handed to on_prev_bar - never to the strategy's feeds.
        self.on_prev_bar = on_prev_bar
        self.prev_channels = {keys.prev_bars(s): s for s in symbols} if on_prev_bar is not None else {}
        self.notice_channel = keys.minute_closed() if on_minute_closed is not None else None
        self.on_minute_closed = on_minute_closed
        # The deployment's control channel (flatten, halt, resume): a flatten reaches the
        # worker at once instead of on its next mark.
        self.control_channel = keys.control() if on_control is not None else None
        self.on_control = on_control
        self.closed_through: datetime | None = None
        self.stale_notices = 0
        self.on_bar = on_bar
        self.on_idle = on_idle
        self.on_resubscribed = on_resubscribed  # after a reconnect: recover the gap from the bar log
        self.sessions = 0
        self.qcheck = qcheck
        self.stop_event = threading.Event()
        self.subscribed = threading.Event()  # every channel confirmed at least once
        self.connected = False
        self.dropped: collections.Counter[str] = collections.Counter()
        self.received = 0
        self.last_start: dict[str, datetime] = {}
        self._last_warn = 0.0
        self._all = [*self.channels, *self.prev_channels,
                     *(c for c in (self.notice_channel, self.control_channel) if c)]
        self._client: Any = None
        self._pubsub: Any = None
        self._confirmed = 0
        self._backoff = 0.2
        self._retry_at = 0.0
        self._next_idle = time.monotonic() + qcheck

    def subscribe(self, timeout: float) -> bool:
        """Connect and pump until every channel is confirmed: from then on no published bar is missed."""
        deadline = time.monotonic() + timeout
        while not self.subscribed.is_set() and not self.stop_event.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.pump(min(left, 0.1))
        return self.subscribed.is_set()

    def stop(self) -> None:
        """Pumps return at once from now on (a pump in progress ends within its timeout)."""
        self.stop_event.set()

    def close(self) -> None:
        self.stop()
        self._disconnect()

    def pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` for one message and handle it; reconnect when due. Never raises."""
        if self.stop_event.is_set():
            return
        if self._pubsub is None:
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                self.stop_event.wait(min(wait, timeout))
                return
        try:
            if self._pubsub is None:
                self._connect()
            msg = self._pubsub.get_message(timeout=timeout)
            if msg is not None:
                kind = msg.get("type")
                if kind == "message":
                    self.handle(msg["channel"], msg["data"], time.perf_counter_ns())
                elif kind == "subscribe":
                    self._confirm()  # may recover a gap from the bar log: Redis trouble lands below
        except Exception as e:  # redis down or protocol trouble: retry later, never die
            self._disconnect()
            self._retry_at = time.monotonic() + self._backoff
            log.warning("bar subscription lost (%s); retrying in %.1fs", type(e).__name__, self._backoff)
            self._backoff = min(self._backoff * 2, 5.0)
            return
        now = time.monotonic()
        if now >= self._next_idle:
            self._next_idle = now + self.qcheck
            try:
                self.on_idle()
            except Exception:
                log.exception("idle callback failed")

    def _connect(self) -> None:
        self._client = self.client_factory()
        self._pubsub = self._client.pubsub()
        self._pubsub.subscribe(*self._all)
        self.connected = True

    def _confirm(self) -> None:
        self._confirmed += 1
        self._backoff = 0.2
        # redis-py re-subscribes by itself after a dropped connection: every further full set
        # of confirmations is a reconnect, whose gap the bar log fills.
        if self._confirmed % len(self._all) == 0:
            self.sessions += 1
            if self.subscribed.is_set():
                self.on_resubscribed()
            self.subscribed.set()

    def _disconnect(self) -> None:
        self.connected = False
        pubsub, client, self._pubsub, self._client = self._pubsub, self._client, None, None
        self._confirmed = 0
        redis_conn.close_quietly(pubsub and pubsub.close, client and client.close)

    def handle(self, channel: Any, payload: Any, recv_ns: int) -> None:
        """Validate one message and pass it on; any defect is counted, not raised."""
        self.received += 1
        channel = channel.decode() if isinstance(channel, bytes) else channel
        if channel == self.notice_channel:
            self._notice(payload)
            return
        if channel == self.control_channel:
            self._control(payload)
            return
        symbol = self.channels.get(channel)
        prev = symbol is None and channel in self.prev_channels
        if prev:
            symbol = self.prev_channels[channel]
        try:
            bar = Bar.from_json(payload)
        except BarError as e:
            self._drop("malformed", f"{channel}: {e}")
            return
        if bar.symbol != symbol:
            self._drop("wrong_symbol", f"{channel}: bar for {bar.symbol}")
            return
        order_key = f"{symbol}:prev" if prev else symbol
        last = self.last_start.get(order_key)
        if last is not None and bar.start <= last:
            self._drop("duplicate" if bar.start == last else "out_of_order", f"{channel}: {bar.start.isoformat()}")
            return
        self.last_start[order_key] = bar.start
        try:
            (self.on_prev_bar if prev else self.on_bar)(bar, recv_ns)  # type: ignore[misc]
        except Exception:
            self._drop("handler_error", f"{channel}: handler failed")
            log.exception("bar handler failed for %s", channel)

    def _notice(self, payload: Any) -> None:
        try:
            minute = parse_minute_closed(payload)
        except BarError as e:
            self._drop("malformed_notice", str(e))
            return
        if self.closed_through is not None and minute <= self.closed_through:
            self.stale_notices += 1  # a restarted hub re-announcing: harmless, not a defect
            return
        self.closed_through = minute
        assert self.on_minute_closed is not None
        try:
            self.on_minute_closed(minute)
        except Exception:
            self._drop("handler_error", "minute-close handler failed")
            log.exception("minute-close handler failed")

    def _control(self, payload: Any) -> None:
        try:
            doc = json.loads(payload)
        except (ValueError, TypeError, RecursionError):
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("command"), str):
            self._drop("malformed_control", repr(payload)[:100])
            return
        assert self.on_control is not None
        try:
            self.on_control(doc)
        except Exception:
            self._drop("handler_error", "control handler failed")
            log.exception("control handler failed")

    def _drop(self, why: str, detail: str) -> None:
        self.dropped[why] += 1
        now = time.monotonic()
        if now - self._last_warn > 5.0:  # a flood of garbage must not flood the log
            self._last_warn = now
            log.warning("dropped bar (%s): %s [dropped so far: %s]", why, detail[:200], dict(self.dropped))
