"""RecordingRouter: the one test double — a stand-in for issue 7's OrderRouter.

It has the router's shape (submit/open_positions/mark/close) and records
what it is given; the portfolio gate, journal and sinks are that component's
own unit and are tested there.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class RecordedDecision:
    accepted: bool
    reason: str
    order_id: str


@dataclass
class HeldPosition:
    symbol: str
    side: str
    quantity: int
    entry_price: float
    entry_time: datetime


@dataclass
class RecordingRouter:
    accept: bool = True
    positions: list[HeldPosition] = field(default_factory=list)
    record_path: str = ""
    intents: list[Any] = field(default_factory=list)
    marks: list[tuple[str, float, datetime, str | None]] = field(default_factory=list)
    closed: bool = False

    def __post_init__(self) -> None:
        self.lock = threading.Lock()

    def submit(self, intent: Any) -> RecordedDecision:
        with self.lock:
            self.intents.append(intent)
            n = len(self.intents)
        if self.record_path:
            with open(self.record_path, "a") as f:
                f.write(json.dumps(asdict(intent), default=str) + "\n")
        return RecordedDecision(self.accept, "ok" if self.accept else "gate closed", f"test-{n}")

    def open_positions(self) -> list[HeldPosition]:
        return list(self.positions)

    def mark(self, symbol: str, price: float, when: datetime, contract: str | None = None) -> None:
        self.marks.append((symbol, price, when, contract))

    def close(self) -> None:
        self.closed = True
