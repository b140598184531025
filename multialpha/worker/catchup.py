"""Phase 3 of a worker, catch up: from the boundary ``T`` to the newest bar the hub logged.

Runs after the subscription (live bars already wait in the socket): the open
hour's minutes before the bar log begins come from Historical, then the bar
log from ``T`` is routed; bars at or before the cursor only rebuild the open
hour/day, bars after it are *replayed*. After a Redis reconnect in the live
phase the same bar log fills the gap (:meth:`CatchUp._recover_gap`).

A mixin of :class:`multialpha.worker.runtime.Worker`: it reads the worker's
plan, keys, cursor, counters and feed router, and routes through
``Worker._route_bar`` (worker/live.py).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from multialpha import cme_time
from multialpha.worker.warm import Warmed

log = logging.getLogger(__name__)


def decode_log_entry(fields: dict[Any, Any]) -> Any:
    """A bar-log stream entry -> Bar (the hub's format; raises BarError on garbage)."""
    from multialpha.hub.publisher import bar_from_log

    return bar_from_log(fields)


class CatchUp:
    def _fill_current_hour(self, client: Any, warmed: Warmed) -> None:
        """Minutes between the boundary and the bar log's first bar come from Historical (cached).

        Without them the open hour (and today's daily bar) would miss the
        minutes traded before the hub's log begins — e.g. hub and worker
        started mid-hour. Minutes at or before the cursor only feed the
        resamplers (already processed); minutes after it are replayed. Best effort: on a Historical error the
        hour simply starts later (logged).
        """
        from multialpha.hub.publisher import stream_id_ns
        from multialpha.worker import warmup
        from multialpha.worker.routing import minute_ohlcv

        boundary = warmed.boundary
        end_all = cme_time.from_ns(cme_time.floor_minute_ns(cme_time.to_ns(warmed.now)))
        rows: list[tuple[datetime, str, Any]] = []
        ends: dict[str, datetime] = {}
        pipe = client.pipeline(transaction=False)  # every symbol's first logged bar in one round trip
        sources = self.plan.warm_sources()
        for sym in sources:
            pipe.xrange(self.keys.bar_log(sym), min=f"{cme_time.to_ms(boundary)}-0", max="+", count=1)
        for sym, first in zip(sources, pipe.execute()):
            end = end_all
            if first:
                end = min(end, cme_time.from_ns(stream_id_ns(first[0][0])))
            if end > boundary:
                ends[sym] = end
        if ends:
            try:  # one request for all symbols' minutes (a batch per MAX_OVERFETCH), not one per symbol
                warmed.historian.prefetch(warmup.SCHEMA_1M, list(ends), boundary, max(ends.values()))
            except Exception as e:
                log.warning("could not fetch the open hour's minutes in one request (%s); asking per symbol", e)
        for sym, end in ends.items():
            try:
                cols = warmed.historian.minutes(sym, boundary, end)
            except Exception as e:
                log.warning("could not fetch %s minutes %s..%s (%s); the hour starts with the live bars",
                            sym, cme_time.iso_z(boundary), cme_time.iso_z(end), e)
                continue
            for b in warmup.to_bars(cols, timedelta(minutes=1)):
                rows.append((b.start, sym, b))
        rows.sort(key=lambda r: (r[0], r[1]))
        for start, sym, b in rows:
            cur = self.cursor.get(sym)
            after = cur is not None and cme_time.to_ms(start) > cur
            # After the cursor, a minute is one this strategy missed while it was down, exactly as
            # a bar replayed from the bar log: the hub that logs it may be restarting too (`up`
            # after a crash), so it comes from Historical first and the hub's copy is dropped as a
            # duplicate later. As "warmup" its signals were only simulated: a restarted worker
            # silently skipped an entry that one that stayed up made. As "replay" the late-signal
            # rules apply (worker.trade_replayed_bars).
            phase = "replay" if after else "warmup"
            routed = self.feed_router.minute(
                sym, minute_ohlcv(b.start, b.open, b.high, b.low, b.close, b.volume), phase,
                deliver=cur is None or after,
            )
            if routed and after:
                self.counters["replayed"] += 1

    def _catch_up(self, client: Any, warmed: Warmed) -> None:
        """Replay the bar log from ``boundary``; bars after the cursor count as replayed.

        The previous front's bars (a roll overlap) after the cursor are replayed too, each behind
        its minute's front bars as the hub published them, so a restarted worker rolls and exits
        on the same bar as one that stayed up (flagged late; entries refused as stale)."""
        from multialpha.bar import BarError

        boundary = warmed.boundary
        start_ms = cme_time.to_ms(boundary)
        bars: list[Any] = []
        for sym in self.plan.sources:
            for entry_id, fields in client.xrange(self.keys.bar_log(sym), min=f"{start_ms}-0", max="+"):
                try:
                    bar = decode_log_entry(fields)
                except BarError as e:
                    self.counters["bad_log_entries"] += 1
                    log.warning("bad bar-log entry %s %s: %s", sym, entry_id, e)
                    continue
                if bar.symbol == sym:
                    bars.append(bar)
        # (start, previous front?, symbol): per minute the front bars first, as the hub publishes
        items = [(b.start, False, b.symbol, b) for b in bars]
        items += [(b.start, True, b.symbol, b) for b in self.rolls.logged_prev_bars(client, self.plan.traded, boundary)]
        items.sort(key=lambda t: t[:3])
        for _, old, _, bar in items:
            cur = self.cursor.get(bar.symbol)
            if old:  # only after the cursor: before it, acted on before the restart
                if cur is not None and bar.start_ms > cur:
                    self.rolls.on_prev_bar(bar, phase="replay")
            elif cur is not None and bar.start_ms <= cur:
                self._route_bar(bar, "warmup", deliver=False)  # processed before the restart
            elif cur is None:
                self._route_bar(bar, "warmup")
            else:
                if self._route_bar(bar, "replay"):
                    self.counters["replayed"] += 1

    def _recover_gap(self) -> None:
        """After a Redis reconnect (in a pump): bars published meanwhile come from the bar log."""
        from multialpha.bar import BarError

        recovered = 0
        items: list[tuple[datetime, bool, str, Any]] = []
        for sym in self.plan.sources:
            last = self.feed_router.last_minute.get(sym)
            if last is None:
                continue
            lo = cme_time.to_ms(last) + 1
            for _, fields in self.client.xrange(self.keys.bar_log(sym), min=f"{lo}-0", max="+"):
                try:
                    bar = decode_log_entry(fields)
                except BarError:
                    self.counters["bad_log_entries"] += 1
                    continue
                if bar.symbol == sym:
                    items.append((bar.start, False, sym, bar))
        if self.feed_router.last_minute:  # and the previous front's, each behind its minute's front bars
            since = min(self.feed_router.last_minute.values())  # on_prev_bar drops what it already had
            olds = self.rolls.logged_prev_bars(self.client, self.plan.traded, since)
            items += [(b.start, True, b.symbol, b) for b in olds]
        items.sort(key=lambda t: t[:3])
        for _, old, _, bar in items:
            if old:
                self.rolls.on_prev_bar(bar, phase="replay")
            elif self._route_bar(bar, "replay"):
                recovered += 1
        self.counters["replayed"] += recovered
        log.warning("bar subscription restored; %d bars recovered from the bar log", recovered)
