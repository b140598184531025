"""Hourly and daily bars built outside Backtrader — one boundary rule for warmup and live.

Hour buckets are clock hours (UTC; every CME session boundary is on a whole
hour, in either DST regime); day buckets are CME trading days (17:00–16:00
America/Chicago) from :mod:`multialpha.cme_time`. The same :class:`Resampler`
turns live minute bars into hours and days and warmup hourly bars into days,
so a live daily bar and a warmup daily bar of the same day are identical.

Pure: no I/O, no clock of its own (``flush(now)`` is told the time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Literal

from multialpha import cme_time

Span = Literal["hour", "day"]


@dataclass(frozen=True, slots=True)
class OHLCV:
    start: datetime  # aware UTC
    end: datetime  # aware UTC, exclusive; Backtrader stamps the bar here
    open: float
    high: float
    low: float
    close: float
    volume: float


def bucket(span: Span, start: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the hour or CME trading day a bar starting at ``start`` belongs to."""
    if span == "hour":
        b = cme_time.hour_bucket(start)
        return b, b + timedelta(hours=1)
    return cme_time.day_bucket(start), cme_time.day_close(start)


class Resampler:
    """Aggregates finer bars into one span; emits a bucket once it is complete."""

    def __init__(self, span: Span) -> None:
        self.span = span
        self._acc: list | None = None  # [start, end, o, h, l, c, v] of the open bucket (mutable: warmup speed)
        self.late = 0  # bars older than the open bucket (dropped)

    @property
    def current(self) -> OHLCV | None:
        return OHLCV(*self._acc) if self._acc is not None else None

    def add(self, bar: OHLCV) -> list[OHLCV]:
        """Merge ``bar``; return the buckets this bar completed (0, 1 or 2)."""
        return self.add_values(bar.start, bar.end, bar.open, bar.high, bar.low, bar.close, bar.volume)

    def add_values(
        self, start: datetime, end: datetime, o: float, h: float, l: float, c: float, v: float
    ) -> list[OHLCV]:
        out: list[OHLCV] = []
        acc = self._acc
        if acc is not None:
            if start < acc[0]:
                self.late += 1
                return out
            if start >= acc[1]:
                out.append(OHLCV(*acc))
                acc = None
        if acc is None:
            b_start, b_end = bucket(self.span, start)
            acc = [b_start, b_end, o, h, l, c, v]
        else:
            if h > acc[3]:
                acc[3] = h
            if l < acc[4]:
                acc[4] = l
            acc[5] = c
            acc[6] += v
        if end >= acc[1]:  # the bucket's last bar: it is complete now
            out.append(OHLCV(*acc))
            acc = None
        self._acc = acc
        return out

    def flush(self, now: datetime) -> list[OHLCV]:
        """Emit the open bucket if ``now`` is at or past its end (quiet close)."""
        acc = self._acc
        if acc is not None and now >= acc[1]:
            self._acc = None
            return [OHLCV(*acc)]
        return []


def resample(bars: Iterable[OHLCV], span: Span, until: datetime | None = None) -> list[OHLCV]:
    """Complete buckets of ``bars`` (sorted by start); with ``until``, close buckets ending by then."""
    r = Resampler(span)
    out: list[OHLCV] = []
    for bar in bars:
        out.extend(r.add(bar))
    if until is not None:
        out.extend(r.flush(until))
    return out
