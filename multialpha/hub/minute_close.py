"""Closing minutes: a root's finished bar waits for its minute, then all go out in order.

The emission contract of hub/aggregator.py (see its module doc): when the feed clock
passes a minute's end + ``grace``, every root's bar of that minute is emitted together,
sorted by symbol (the roll overlap's previous-front bars after them), then one
minute-close notice. ``MinuteCloser`` holds that half of the aggregator: turning an open
``Series`` into a ``Bar`` (``_close``), releasing the ready bars and the notice when the
clock says so (``advance``, ``_close_due``), and flushing at shutdown
(``release_ready``). Separate from the per-trade hot path in aggregator.py: this runs
once per bar or per minute, never per trade. ``Aggregator`` inherits it and sets every
attribute annotated below in its ``__init__``.
"""

from __future__ import annotations

import logging
from operator import itemgetter
from typing import Callable

from multialpha import cme_time
from multialpha.bar import MAX_VOLUME, Bar
from multialpha.hub.series import MINUTE, Series

# The aggregator's logger: these lines were aggregator.py's, and are filtered by that name.
log = logging.getLogger("multialpha.hub.aggregator")
_BY_MINUTE_SYMBOL = itemgetter(0, 1)  # ready entries (start, symbol, bar): never compare the bars


class MinuteCloser:
    """Bar closing and by-minute emission of :class:`~multialpha.hub.aggregator.Aggregator`."""

    # Set by Aggregator.__init__ (hub/aggregator.py).
    series: dict[str, Series]
    prev_series: dict[str, Series]
    emit: Callable[[Bar], None]
    emit_prev: Callable[[Bar], None]
    on_minute_closed: Callable[[int], None]
    ready: list[tuple[int, str, Bar]]
    grace: int
    clock: int
    deadline: int
    closed_through: int
    replay_until: int
    trades: int
    bars: int
    prev_trades: int
    prev_bars: int
    _stamp_ns = -1  # the last closed bar's minute and its datetime (shared by the minute's bars)
    _stamp = cme_time.from_ns(0)


    def advance(self, ts_ns: int) -> None:
        """Feed-clock tick from a non-trade record (heartbeat, mapping)."""
        if ts_ns > self.clock:
            self.clock = ts_ns
            if ts_ns >= self.deadline:
                self._close_due()

    def _close_due(self) -> None:
        limit = self.clock - self.grace - MINUTE  # minutes starting at or before are over
        nxt = 1 << 62
        for s in self._all_series():
            if s.minute < 0:
                continue
            if s.minute <= limit:
                self._close(s)
            else:
                nxt = min(nxt, s.minute + MINUTE + self.grace)
        if self.ready:
            self.ready.sort(key=_BY_MINUTE_SYMBOL)
            n = 0
            for start, key, bar in self.ready:
                if start > limit:
                    nxt = min(nxt, start + MINUTE + self.grace)
                    break
                (self.emit_prev if key[0] == "~" else self.emit)(bar)
                n += 1
            del self.ready[:n]
        closed = limit - limit % MINUTE
        if closed > self.closed_through:
            self.closed_through = closed
            self.on_minute_closed(closed)
        self.deadline = min(nxt, self._next_notice())

    def _next_notice(self) -> int:
        """When the next minute is over, bars or not: the minute-close notice is a clock."""
        return self.closed_through + 2 * MINUTE + self.grace

    def _close(self, s: Series) -> None:
        m = s.minute
        source = "replay" if m + MINUTE <= self.replay_until else "live"
        volume = s.v
        if volume > MAX_VOLUME:  # only absurd sizes get here; an over-range bar would be dropped by every worker
            log.warning("%s bar %s: volume %d capped at %d", s.root, cme_time.iso_z(m), volume, MAX_VOLUME)
            volume = MAX_VOLUME
        if m != self._stamp_ns:  # every root's bar of a minute closes together: one datetime for all
            self._stamp_ns, self._stamp = m, cme_time.from_ns(m)
        # Series.price inlined on its cache (a call per field was a fifth of a bar's close)
        known, half, tick = s.prices.get, s.half, s.tick
        o = known((s.o + half) // tick) or s.price(s.o)
        h = known((s.h + half) // tick) or s.price(s.h)
        lo = known((s.l + half) // tick) or s.price(s.l)
        c = known((s.c + half) // tick) or s.price(s.c)
        bar = Bar(s.root, self._stamp, o, h, lo, c, volume, s.contract, s.n, source)
        s.minute = s.end = -1
        s.last_pub = m
        if s.prev:  # counted apart: trades/bars stay the front's (what every consumer compares)
            self.prev_trades += s.n
            self.prev_bars += 1
            self.ready.append((m, "~" + s.root, bar))  # "~" sorts after every root: after the front bars
            return
        self.trades += s.n
        self.bars += 1
        self.ready.append((m, s.root, bar))  # out with its minute's other bars (see the module doc)

    def release_ready(self) -> None:
        """Shutdown: emit the complete bars still waiting for their minute (no notice)."""
        for _, key, bar in sorted(self.ready, key=_BY_MINUTE_SYMBOL):
            (self.emit_prev if key[0] == "~" else self.emit)(bar)
        self.ready = []

    def _all_series(self) -> list[Series]:
        return [*self.series.values(), *self.prev_series.values()]
