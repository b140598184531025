"""What a strategy wants to do, as one immutable value, and its deterministic id."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from multialpha import cme_time


@dataclass(frozen=True)
class OrderIntent:
    strategy: str
    symbol: str  # root, "ES"
    side: Literal["long", "short"]
    kind: Literal["entry", "exit"]
    quantity: int
    price: float  # signal price: close of the signal bar
    bar_start: datetime  # UTC start of the minute bar that produced the signal
    contract: str  # Databento raw symbol of the front contract, "ESZ5"
    reason: str = ""
    late: bool = False  # produced while replaying missed bars
    # "" for a strategy's own signal; "roll" / "expiry" for the runtime's roll legs and forced
    # exits: part of the order id, so they can never collide with a signal's id on the same bar.
    tag: str = ""

    def __post_init__(self) -> None:
        if self.side not in ("long", "short"):
            raise ValueError(f"side must be long or short, got {self.side!r}")
        if self.kind not in ("entry", "exit"):
            raise ValueError(f"kind must be entry or exit, got {self.kind!r}")
        if not isinstance(self.quantity, int) or isinstance(self.quantity, bool) or self.quantity < 1:
            raise ValueError(f"quantity must be a positive int, got {self.quantity!r}")
        if not (self.price == self.price and self.price > 0 and self.price != float("inf")):
            raise ValueError(f"price must be a positive finite number, got {self.price!r}")
        if self.bar_start.tzinfo is None:
            raise ValueError("bar_start must be an aware UTC datetime")
        if not self.strategy or not self.symbol or ":" in self.strategy or ":" in self.symbol:
            raise ValueError("strategy and symbol must be non-empty and contain no ':'")

    @property
    def action(self) -> str:
        """TradersPost action: entry long -> buy, entry short -> sell, exit -> exit."""
        if self.kind == "exit":
            return "exit"
        return "buy" if self.side == "long" else "sell"

    @property
    def bar_close(self) -> datetime:
        """When the signal bar closed: the signal's age is measured from here (orders.max_age_s)."""
        return self.bar_start + timedelta(minutes=1)

    @property
    def direction(self) -> int:
        return 1 if self.side == "long" else -1

    @property
    def order_id(self) -> str:
        return order_id(self.strategy, self.symbol, self.bar_start, self.action, self.tag)


def order_id(strategy: str, symbol: str, bar_start: datetime, action: str, tag: str = "") -> str:
    """Same (strategy, symbol, bar, action[, tag]) -> same id, in any process, after any restart.

    This is what makes a replayed bar or a restarted worker unable to send twice. A tag
    (``roll``, ``expiry``) is appended only when set, so untagged ids are unchanged.
    """
    parts = (strategy, symbol, cme_time.iso_z(bar_start), action) + ((tag,) if tag else ())
    text = "|".join(parts)
    return hashlib.sha256(text.encode()).hexdigest()[:24]
