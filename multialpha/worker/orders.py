"""What the worker needs from the order router (issue 7), as a Protocol.

The worker builds an ``OrderIntent`` and hands it to ``router.submit``; the
router runs the portfolio gate, the outbox journal and the sink. Until
``multialpha.orders`` is importable, :func:`make_intent` builds a stand-in of
the same shape so the worker (and its tests) run unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol


class Decision(Protocol):
    accepted: bool
    reason: str
    order_id: str


class Position(Protocol):
    symbol: str
    side: str
    quantity: int
    entry_price: float
    entry_time: datetime


class Router(Protocol):
    def submit(self, intent: Any) -> Decision: ...

    def open_positions(self) -> list[Position]: ...

    def mark(self, symbol: str, price: float, when: datetime, contract: str | None = None) -> str | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class _IntentShape:
    """Same fields as ``multialpha.orders.intent.OrderIntent`` (used only if that is absent)."""

    strategy: str
    symbol: str
    side: Literal["long", "short"]
    kind: Literal["entry", "exit"]
    quantity: int
    price: float
    bar_start: datetime
    contract: str
    reason: str = ""
    late: bool = False
    tag: str = ""


def make_intent(**fields: Any) -> Any:
    try:
        from multialpha.orders.intent import OrderIntent
    except ImportError:
        return _IntentShape(**fields)
    return OrderIntent(**fields)


def default_router(settings: Any, client: Any, strategy: str, clock: Any = None) -> Router:
    """The real router of issue 7, on the worker's clock (the sandbox clock on the sandbox)."""
    from multialpha.orders.router import OrderRouter

    return OrderRouter(settings, client, strategy, clock=clock) if clock else OrderRouter(settings, client, strategy)


def still_holds(router: Any, symbol: str) -> bool:
    """A position the strategy no longer manages (exit in flight or failed) is still on the book:
    marked like a held one. Routers without the lifecycle (test doubles) hold none."""
    check = getattr(router, "still_holds", None)
    return bool(check is not None and check(symbol))
