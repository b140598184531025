"""From bars to feed items: resampling, neutral reference bars and the warmup/live join.

One :class:`FeedRouter` per worker. Every minute bar of a source symbol goes
through its hour and day :class:`Resampler` (whether or not a feed wants
them: neutral reference feeds tick on the bucket closes of any source), and
the resulting items go to the :class:`FeedBus` as one batch. The router also
de-duplicates the join between catch-up and live bars by timestamp.
Thread-safe: the main thread routes warmup and catch-up, the subscriber
thread routes live bars and quiet-market flushes.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any, Iterable

from multialpha.worker.adjust import RollAdjuster
from multialpha.worker.feeds import SPANS, FeedBus, Item, Status
from multialpha.worker.plan import FeedPlan
from multialpha.worker.resample import OHLCV, Resampler

RESAMPLED = ("hour", "day")


class FeedRouter:
    def __init__(self, plan: FeedPlan, bus: FeedBus, flush_grace: timedelta = timedelta(seconds=90)) -> None:
        self.plan = plan
        self.bus = bus
        for f in plan.feeds:
            bus.register(f.name)
        self.flush_grace = flush_grace
        self.lock = threading.RLock()
        self.resamplers = {sym: {span: Resampler(span) for span in RESAMPLED} for sym in plan.sources}  # type: ignore[arg-type]
        self.last_minute: dict[str, datetime] = {}
        self.neutral_last: dict[str, datetime] = {}
        self.overlap = 0  # live bars already delivered by catch-up (join de-duplication)
        self.late = 0  # minute bars older than what was routed (dropped)
        # Hour/day bars in each symbol's anchor level across rolls (roll.adjust; worker/adjust.py).
        # None: raw. Resamplers stay raw; a bar is mapped as it leaves, by its contract.
        self.adjuster: RollAdjuster | None = None

    # -- items -------------------------------------------------------------------
    def _span_items(self, sym: str, span: str, bars: Iterable[OHLCV], phase: str,
                    contract: str = "") -> list[tuple[str, Item]]:
        out: list[tuple[str, Item]] = []
        level = self.adjuster.level(sym, contract) if self.adjuster is not None and contract else None
        for b in bars:
            raw_close = None
            if level is not None and not level.identity:
                raw_close, b = b.close, level.bar(b)  # orders are priced from the raw close
            for name in self.plan.routes.get((sym, span), ()):
                out.append((name, Item(b, phase, raw_close=raw_close)))
            for f in self.plan.neutral.get(span, ()):
                if self.neutral_last.get(f.name, datetime.min.replace(tzinfo=b.end.tzinfo)) < b.end:
                    self.neutral_last[f.name] = b.end
                    n = f.neutral
                    out.append((f.name, Item(OHLCV(b.start, b.end, n, n, n, n, 0), phase)))
        return out

    def seed_day(self, sym: str, resampler: Resampler) -> None:
        """Adopt the warmup's open trading day so live minutes complete it."""
        with self.lock:
            self.resamplers[sym]["day"] = resampler

    def adjust_rolls(self, mode: str, historian: Any, anchors: dict[str, str]) -> None:
        """Roll-adjust hour/day bars (``roll.adjust``) from each symbol's warmup anchor on; a roll's
        gap comes from ``historian`` (``adjust.historical_gap``: the warmup's and backtest's rule)."""
        from multialpha.worker.adjust import historical_gap

        if mode != "none":
            self.adjuster = RollAdjuster(mode, lambda sym, roll: historical_gap(historian, sym, roll),  # type: ignore[arg-type]
                                         {s: c for s, c in anchors.items() if c})

    def warmup(self, hours: dict[str, list[OHLCV]], days: dict[str, list[OHLCV]]) -> int:
        """Queue warmup hour/day bars of every symbol in time order; returns the item count."""
        keyed: list[tuple[datetime, int, str, str, OHLCV]] = []
        for span, table in (("hour", hours), ("day", days)):
            for sym, bars in table.items():
                for b in bars:
                    keyed.append((b.end, 0 if span == "hour" else 1, sym, span, b))
        keyed.sort(key=lambda k: (k[0], k[1]))
        count = 0
        with self.lock:
            batch: list[tuple[str, Item | Status]] = []
            stamp = None
            for end, _, sym, span, b in keyed:
                if end != stamp and batch:  # one Cerebro step per timestamp
                    self.bus.put_many(batch)
                    count += len(batch)
                    batch = []
                stamp = end
                batch.extend(self._span_items(sym, span, [b], "warmup"))
            self.bus.put_many(batch)
            count += len(batch)
        return count

    def minute(
        self, sym: str, bar: OHLCV, phase: str, contract: str = "", recv_ns: int = 0, deliver: bool = True
    ) -> bool:
        """Route one minute bar; False if it was already routed (join duplicate) or is late."""
        with self.lock:
            last = self.last_minute.get(sym)
            if last is not None and bar.start <= last:
                if phase == "live":
                    self.overlap += 1
                else:
                    self.late += 1
                return False
            self.last_minute[sym] = bar.start
            items: list[tuple[str, Item | Status]] = []
            prev = cur = ""
            if self.adjuster is not None:
                prev = self.adjuster.current.get(sym, "")
                cur = self.adjuster.observe(sym, contract, bar.start)
            for span in RESAMPLED:
                for b in self.resamplers[sym][span].add(bar):
                    # A roll falls on a trading-day (so hour) boundary: a bucket this bar does not
                    # belong to was closed by it and holds the previous bar's contract.
                    owner = cur if b.start <= bar.start < b.end else prev
                    items.extend(self._span_items(sym, span, [b], phase, owner))
            if deliver:
                level = self.adjuster.level(sym, cur) if cur else None  # (cur is "" without an adjuster)
                level = None if level is None or level.identity else level
                for name in self.plan.routes.get((sym, "minute"), ()):
                    items.append((name, Item(bar, phase, contract, recv_ns, level=level)))
                for f in self.plan.neutral.get("minute", ()):
                    if f.name not in self.neutral_last or self.neutral_last[f.name] < bar.end:
                        self.neutral_last[f.name] = bar.end
                        n = f.neutral
                        items.append((f.name, Item(OHLCV(bar.start, bar.end, n, n, n, n, 0), phase)))
            self.bus.put_many(items, bar.start if phase == "live" else None)
            return True

    def minute_closed(self, start: datetime) -> int:
        """The hub's notice: minutes up to ``start`` are over. Mark it, then close what is due.

        The quiet-market flush belongs to the next minute's turn, as in the
        backtest, which flushes at each minute boundary before that minute's bars.
        """
        with self.lock:
            self.bus.put_marker(start)
            nxt = start + SPANS["minute"]
            return self.flush(nxt, "live", nxt)

    def flush(self, now: datetime, phase: str = "live", turn: datetime | None = None) -> int:
        """Close hours/days whose end + grace has passed with no closing bar (quiet market)."""
        cutoff = now - self.flush_grace
        items: list[tuple[str, Item | Status]] = []
        with self.lock:
            for sym, rs in self.resamplers.items():
                contract = self.adjuster.current.get(sym, "") if self.adjuster is not None else ""
                for span in RESAMPLED:
                    items.extend(self._span_items(sym, span, rs[span].flush(cutoff), phase, contract))
            items.sort(key=lambda it: it[1].bar.end)  # type: ignore[union-attr]
            self.bus.put_many(items, turn)
        return len(items)

    def flush_by_clock(self, now: datetime) -> int:
        """Fallback without minute-close notices: close what ``now`` says is due, but never a
        bucket ending after the newest minute bar routed (any source).

        The hub publishes by minute, so a bar of minute ``m`` means every bar of every
        earlier minute is out: a bucket ending at or before ``m`` has all its minutes, one
        ending later may still get its last minute from a hub lagging by any amount (a day
        closed on the clock alone lost its 15:59 CT minute behind a hub > 89 s late, and the
        late minute then opened a second, one-minute day bar).
        """
        with self.lock:
            if not self.last_minute:
                return 0
            seen = max(self.last_minute.values())
            return self.flush(min(now, seen + self.flush_grace))

    def go_live(self, status: int) -> None:
        """Tell every feed it is LIVE, in order behind everything already queued."""
        with self.lock:
            self.bus.put_many([(f.name, Status(status)) for f in self.plan.feeds])


def minute_ohlcv(start: datetime, o: float, h: float, l: float, c: float, v: float) -> OHLCV:
    return OHLCV(start, start + SPANS["minute"], o, h, l, c, v)
