"""The Redis pub/sub reader: its own thread, validating every bar before it reaches Cerebro.

Malformed payloads (bad JSON, missing fields, NaN, negative or huge prices,
oversize), bars on the wrong channel, out-of-order and duplicate bars (by
timestamp, per symbol) are dropped, counted and logged (rate-limited) —
never raised. The hub's minute-close notices (``Keys.minute_closed``) arrive
on the same connection, so in order with the bars, and go to
``on_minute_closed`` (malformed or stale ones are dropped the same way). Between messages it calls ``on_idle`` every ``qcheck`` seconds
(quiet-market closes of hours and days). A lost Redis connection is retried
with backoff; ``connected`` says whether it is up.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from datetime import datetime
from typing import Any, Callable

from multialpha.bar import Bar, BarError, parse_minute_closed
from multialpha.keys import Keys

log = logging.getLogger(__name__)


class BarSubscriber(threading.Thread):
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
    ) -> None:
        super().__init__(name="bar-subscriber", daemon=True)
        self.client_factory = client_factory
        self.channels = {keys.bars(s): s for s in symbols}
        self.notice_channel = keys.minute_closed() if on_minute_closed is not None else None
        self.on_minute_closed = on_minute_closed
        self.closed_through: datetime | None = None
        self.stale_notices = 0
        self.on_bar = on_bar
        self.on_idle = on_idle
        self.on_resubscribed = on_resubscribed  # after a reconnect: recover the gap from the bar log
        self.sessions = 0
        self.qcheck = qcheck
        self.stop_event = threading.Event()
        self.subscribed = threading.Event()
        self.connected = False
        self.dropped: collections.Counter[str] = collections.Counter()
        self.received = 0
        self.last_start: dict[str, datetime] = {}
        self._last_warn = 0.0

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        backoff = 0.2
        while not self.stop_event.is_set():
            try:
                self._session()
                backoff = 0.2
            except Exception as e:  # redis down or protocol trouble: retry, never die
                self.connected = False
                log.warning("bar subscription lost (%s); retrying in %.1fs", type(e).__name__, backoff)
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _session(self) -> None:
        client = self.client_factory()
        pubsub = client.pubsub()
        try:
            channels = [*self.channels, *([self.notice_channel] if self.notice_channel else [])]
            pubsub.subscribe(*channels)
            self.connected = True
            confirmed = 0
            next_idle = time.monotonic() + self.qcheck
            while not self.stop_event.is_set():
                msg = pubsub.get_message(timeout=self.qcheck)
                if msg is not None:
                    kind = msg.get("type")
                    if kind == "message":
                        self.handle(msg["channel"], msg["data"], time.perf_counter_ns())
                    elif kind == "subscribe":
                        confirmed += 1
                        # All channels confirmed: from here on no published bar is missed. redis-py
                        # re-subscribes by itself after a dropped connection: every further full set
                        # of confirmations is a reconnect, whose gap the bar log fills.
                        if confirmed % len(channels) == 0:
                            self.sessions += 1
                            if self.subscribed.is_set():
                                self.on_resubscribed()
                            self.subscribed.set()
                now = time.monotonic()
                if now >= next_idle:
                    next_idle = now + self.qcheck
                    self.on_idle()
        finally:
            self.connected = False
            try:
                pubsub.close()
                client.close()
            except Exception:
                pass

    def handle(self, channel: Any, payload: Any, recv_ns: int) -> None:
        """Validate one message and pass it on; any defect is counted, not raised."""
        self.received += 1
        channel = channel.decode() if isinstance(channel, bytes) else channel
        if channel == self.notice_channel:
            self._notice(payload)
            return
        symbol = self.channels.get(channel)
        try:
            bar = Bar.from_json(payload)
        except BarError as e:
            self._drop("malformed", f"{channel}: {e}")
            return
        if bar.symbol != symbol:
            self._drop("wrong_symbol", f"{channel}: bar for {bar.symbol}")
            return
        last = self.last_start.get(symbol)
        if last is not None and bar.start <= last:
            self._drop("duplicate" if bar.start == last else "out_of_order", f"{channel}: {bar.start.isoformat()}")
            return
        self.last_start[symbol] = bar.start
        try:
            self.on_bar(bar, recv_ns)
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

    def _drop(self, why: str, detail: str) -> None:
        self.dropped[why] += 1
        now = time.monotonic()
        if now - self._last_warn > 5.0:  # a flood of garbage must not flood the log
            self._last_warn = now
            log.warning("dropped bar (%s): %s [dropped so far: %s]", why, detail[:200], dict(self.dropped))
