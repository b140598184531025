"""IBS rules, free of Backtrader so live, backtest and tests run the same code.

Internal Bar Strength of a CME daily bar: ``IBS = (close - low) / (high - low)``
(0.5 when high == low). The rules, evaluated bar by bar:

1. **Signal** — when a daily bar completes and the strategy is flat:
   IBS <= ``entry_ibs`` arms a long; with ``allow_short``, IBS >= 1 - ``entry_ibs``
   arms a short. The armed signal remembers the daily close.
2. **Entry (hourly timing)** — at the close of the first hourly bar of the next
   trading day: enter long if that hourly close is still <= the signal day's
   close (the weakness has not already reverted), short if >= it; otherwise
   the signal is dropped. An armed signal lives for that one hourly bar only.
3. **Exit** — when a daily bar completes while in a position: exit a long when
   IBS >= ``exit_ibs`` (a short when IBS <= 1 - ``exit_ibs``), or when the
   position has been held ``max_hold_days`` completed daily bars.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Side = Literal["long", "short"]


@dataclass(frozen=True)
class Params:
    entry_ibs: float = 0.2
    exit_ibs: float = 0.8
    max_hold_days: int = 5
    allow_short: bool = False

    @classmethod
    def from_config(cls, params: dict) -> "Params":
        unknown = set(params) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown IBS parameter(s): {', '.join(sorted(unknown))}")
        p = cls(**params)
        if not 0 < p.entry_ibs < p.exit_ibs < 1:
            raise ValueError("IBS thresholds must satisfy 0 < entry_ibs < exit_ibs < 1")
        if p.max_hold_days < 1:
            raise ValueError("max_hold_days must be >= 1")
        return p


@dataclass(frozen=True)
class Action:
    kind: Literal["entry", "exit"]
    side: Side
    price: float
    reason: str


def ibs(high: float, low: float, close: float) -> float:
    rng = high - low
    return 0.5 if rng <= 0 else (close - low) / rng


class IbsRules:
    def __init__(self, params: Params) -> None:
        self.p = params
        self.position: Side | None = None
        self.held_days = 0
        self.armed: tuple[Side, float, datetime] | None = None  # side, signal close, signal day end
        self.last_ibs: float | None = None

    def restore(self, side: Side | None, held_days: int = 0) -> None:
        """Adopt a position restored by the runtime after a restart."""
        self.position, self.held_days, self.armed = side, held_days, None

    def on_day(self, end: datetime, high: float, low: float, close: float) -> Action | None:
        """A completed CME daily bar (``end`` = its close)."""
        value = ibs(high, low, close)
        self.last_ibs = value
        self.armed = None
        if self.position is not None:
            self.held_days += 1
            if self.position == "long" and value >= self.p.exit_ibs:
                return self._exit(close, f"IBS {value:.3f} >= {self.p.exit_ibs}")
            if self.position == "short" and value <= 1 - self.p.exit_ibs:
                return self._exit(close, f"IBS {value:.3f} <= {1 - self.p.exit_ibs:.3f}")
            if self.held_days >= self.p.max_hold_days:
                return self._exit(close, f"held {self.held_days} days")
            return None
        if value <= self.p.entry_ibs:
            self.armed = ("long", close, end)
        elif self.p.allow_short and value >= 1 - self.p.entry_ibs:
            self.armed = ("short", close, end)
        return None

    def on_hour(self, end: datetime, close: float) -> Action | None:
        """A completed hourly bar; only the first one after a signal matters."""
        if self.armed is None or self.position is not None or end <= self.armed[2]:
            return None
        side, signal_close, _ = self.armed
        self.armed = None
        if (side == "long" and close <= signal_close) or (side == "short" and close >= signal_close):
            self.position, self.held_days = side, 0
            return Action("entry", side, close, f"IBS {self.last_ibs:.3f}, hourly close {close} confirms")
        return None

    def cancel_entry(self) -> None:
        """The runtime refused the entry (veto, portfolio): stay flat."""
        self.position, self.held_days = None, 0

    def _exit(self, price: float, reason: str) -> Action:
        side = self.position
        assert side is not None
        self.position, self.held_days = None, 0
        return Action("exit", side, price, reason)
