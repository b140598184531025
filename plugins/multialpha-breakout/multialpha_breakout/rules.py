"""Breakout rules, free of Backtrader so live, backtest and tests run the same code.

Evaluated at the close of each hourly bar (high, low, close):

- ``ATR`` is Wilder's average true range over ``atr_period`` hourly bars
  (the first value is the simple mean of the first ``atr_period`` true ranges).
- The **channel** is the highest high / lowest low of the previous
  ``channel_hours`` hourly bars (the current bar excluded).
- **Entry** (flat, channel and ATR known): long when close > channel high,
  short (with ``allow_short``) when close < channel low — only if
  ATR / close >= ``min_atr_pct`` (no breakouts of a dead market).
- **Exit**: a trailing stop ``atr_stop`` x ATR-at-entry behind the best close
  since entry (long: best close - k x ATR; exit when close <= stop), or a
  close beyond the opposite channel of ``channel_hours // 2`` bars.

Every hourly bar goes through :meth:`BreakoutRules.on_hour`, warmup hours
included (the runtime runs ``next()`` on warmup steps), so the channel and
the ATR are full from the first live hour and a restored position's stop uses
the ATR over the warmup hours (:meth:`restore`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

Side = Literal["long", "short"]


@dataclass(frozen=True)
class Params:
    channel_hours: int = 20
    atr_period: int = 14
    atr_stop: float = 2.0
    min_atr_pct: float = 0.001
    allow_short: bool = True

    @classmethod
    def from_config(cls, params: dict) -> "Params":
        unknown = set(params) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown breakout parameter(s): {', '.join(sorted(unknown))}")
        p = cls(**params)
        if p.channel_hours < 2 or p.atr_period < 1 or p.atr_stop <= 0 or p.min_atr_pct < 0:
            raise ValueError("breakout needs channel_hours >= 2, atr_period >= 1, atr_stop > 0, min_atr_pct >= 0")
        return p


@dataclass(frozen=True)
class Action:
    kind: Literal["entry", "exit"]
    side: Side
    price: float
    reason: str


class BreakoutRules:
    def __init__(self, params: Params) -> None:
        self.p = params
        self.highs: deque[float] = deque(maxlen=params.channel_hours)
        self.lows: deque[float] = deque(maxlen=params.channel_hours)
        self.prev_close: float | None = None
        self.tr_seed: list[float] = []
        self.atr: float | None = None
        self.position: Side | None = None
        self.stop_dist: float | None = None  # None: no ATR known yet for the position's stop
        self.best = 0.0

    def restore(self, side: Side | None, entry_price: float = 0.0) -> None:
        """Adopt a position the runtime restored after a restart.

        The stop distance is ``atr_stop`` x the current ATR — computed over the
        warmup hours, which the strategy feeds through these rules. Should the
        ATR not be known yet (fewer than ``atr_period`` hours seen), the stop
        waits for the first ATR value instead of being zero (a zero distance
        would exit at the first close below the best close).
        """
        self.position = side
        self.best = entry_price
        self.stop_dist = self.p.atr_stop * self.atr if side is not None and self.atr is not None else None

    def _update_atr(self, high: float, low: float) -> None:
        tr = high - low if self.prev_close is None else max(high, self.prev_close) - min(low, self.prev_close)
        if self.atr is None:
            self.tr_seed.append(tr)
            if len(self.tr_seed) == self.p.atr_period:
                self.atr = sum(self.tr_seed) / self.p.atr_period
        else:
            n = self.p.atr_period
            self.atr = (self.atr * (n - 1) + tr) / n

    def on_hour(self, high: float, low: float, close: float) -> Action | None:
        channel_full = len(self.highs) == self.p.channel_hours
        chan_hi = max(self.highs) if channel_full else None
        chan_lo = min(self.lows) if channel_full else None
        half = self.p.channel_hours // 2
        exit_hi = max(list(self.highs)[-half:]) if len(self.highs) >= half else None
        exit_lo = min(list(self.lows)[-half:]) if len(self.lows) >= half else None
        self._update_atr(high, low)
        self.highs.append(high)
        self.lows.append(low)
        self.prev_close = close
        if self.position is not None and self.stop_dist is None and self.atr is not None:
            self.stop_dist = self.p.atr_stop * self.atr  # a restored position's first known ATR
        action: Action | None = None
        if self.position == "long":
            self.best = max(self.best, close)
            stop = self.best - self.stop_dist if self.stop_dist is not None else None
            if stop is not None and close <= stop:
                action = self._exit(close, f"trailing stop {stop:.6g}")
            elif exit_lo is not None and close < exit_lo:
                action = self._exit(close, f"close below {half}h low {exit_lo}")
        elif self.position == "short":
            self.best = min(self.best, close)
            stop = self.best + self.stop_dist if self.stop_dist is not None else None
            if stop is not None and close >= stop:
                action = self._exit(close, f"trailing stop {stop:.6g}")
            elif exit_hi is not None and close > exit_hi:
                action = self._exit(close, f"close above {half}h high {exit_hi}")
        elif chan_hi is not None and self.atr is not None and self.atr / close >= self.p.min_atr_pct:
            if close > chan_hi:
                action = self._enter("long", close, f"close {close} > {self.p.channel_hours}h high {chan_hi}")
            elif self.p.allow_short and chan_lo is not None and close < chan_lo:
                action = self._enter("short", close, f"close {close} < {self.p.channel_hours}h low {chan_lo}")
        return action

    def cancel_entry(self) -> None:
        self.position = None

    def _enter(self, side: Side, close: float, reason: str) -> Action:
        assert self.atr is not None
        self.position, self.best, self.stop_dist = side, close, self.p.atr_stop * self.atr
        return Action("entry", side, close, reason)

    def _exit(self, close: float, reason: str) -> Action:
        side = self.position
        assert side is not None
        self.position = None
        return Action("exit", side, close, reason)
