"""The 1-minute bar message: encoded by the hub, decoded by every consumer.

Contract (ARCHITECTURE.md): ``timestamp`` is the bar's start in UTC; the bar
covers ``[timestamp, timestamp + 60 s)``; prices are rounded to the
instrument's tick; ``source`` is ``live``, ``replay`` or ``sandbox``.

:func:`Bar.from_json` is the boundary check: anything that is not a sane bar
raises :class:`BarError` (callers count and drop it, never crash).
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from multialpha import cme_time

SOURCES = frozenset({"live", "replay", "sandbox"})
MAX_PAYLOAD = 4096  # a bar is ~200 bytes; anything huge is garbage
MAX_PRICE = 1e9
MAX_VOLUME = 10**9
SPAN = timedelta(minutes=1)


class BarError(ValueError):
    """A bar message that must be dropped (and counted) by its consumer."""


class Bar(NamedTuple):
    """One bar. A named tuple: immutable like the frozen dataclass it was, and ~3x cheaper to
    build (0.3 vs 0.9 µs): a bar is built per symbol and minute by the hub, per message by every
    worker and per minute of a backtest. Compare bars with bars: a tuple of the same fields is
    equal too."""

    symbol: str
    start: datetime  # aware UTC, bar start
    open: float
    high: float
    low: float
    close: float
    volume: int
    contract: str = ""
    trades: int = 0
    source: str = "live"

    @property
    def start_ms(self) -> int:
        """Bar-log stream id (``{start_ms}-0``): idempotent per minute."""
        return cme_time.to_ms(self.start)

    @property
    def end(self) -> datetime:
        return self.start + SPAN

    def to_dict(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "timestamp": cme_time.iso_z(self.start),
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
            "contract": self.contract,
            "trades": self.trades,
            "source": self.source,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, payload: str | bytes) -> "Bar":
        if len(payload) > MAX_PAYLOAD:
            raise BarError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
        try:
            doc = json.loads(payload)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:  # deep nesting fits in 4 KB
            raise BarError(f"invalid JSON: {e}") from None
        if not isinstance(doc, dict):
            raise BarError("bar is not a JSON object")
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: dict[str, object]) -> "Bar":
        try:
            symbol = doc["symbol"]
            ts = doc["timestamp"]
            o, h, l, c = (doc[k] for k in ("open", "high", "low", "close"))
            volume = doc["volume"]
        except KeyError as e:
            raise BarError(f"missing field {e.args[0]!r}") from None
        if not isinstance(symbol, str) or not symbol or len(symbol) > 16:
            raise BarError(f"bad symbol {symbol!r}")
        if not isinstance(ts, str):
            raise BarError("timestamp must be a string")
        try:
            start = cme_time.parse_iso(ts)
        except (ValueError, OverflowError) as e:  # e.g. year 1 with a +01:00 offset
            raise BarError(f"bad timestamp {ts!r}: {e}") from None
        if start.second or start.microsecond:
            raise BarError(f"timestamp {ts!r} is not a minute start")
        prices = []
        for name, v in (("open", o), ("high", h), ("low", l), ("close", c)):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise BarError(f"{name} is not a number")
            fv = float(v) if not isinstance(v, int) or abs(v) <= MAX_PRICE else math.inf  # huge ints overflow float()
            if not math.isfinite(fv) or fv <= 0 or fv > MAX_PRICE:
                raise BarError(f"{name}={v!r} out of range")
            prices.append(fv)
        fo, fh, fl, fc = prices
        if fl > min(fo, fc) or fh < max(fo, fc) or fl > fh:
            raise BarError(f"inconsistent OHLC {fo} {fh} {fl} {fc}")
        if isinstance(volume, bool) or not isinstance(volume, int) or not 0 <= volume <= MAX_VOLUME:
            raise BarError(f"bad volume {volume!r}")
        trades = doc.get("trades", 0)
        if isinstance(trades, bool) or not isinstance(trades, int) or trades < 0:
            raise BarError(f"bad trades {trades!r}")
        source = doc.get("source", "live")
        if not isinstance(source, str) or source not in SOURCES:  # a list is unhashable
            raise BarError(f"bad source {source!r}")
        contract = doc.get("contract", "")
        if not isinstance(contract, str):
            raise BarError("contract must be a string")
        return cls(symbol, start, fo, fh, fl, fc, volume, contract, trades, str(source))


# -- the minute-close notice ------------------------------------------------------
# Published by the hub after every bar of the minutes up to ``minute`` (a
# minute start, UTC): "those minutes are over". Workers use it as the market's
# clock: quiet-market closes and cross-strategy turns follow it, not the wall.

def minute_closed_json(start: datetime | int) -> str:
    return minute_closed_payload(cme_time.iso_z(start))


def minute_closed_payload(iso: str) -> str:
    """The notice of the minute ``iso`` (cme_time.iso_z): ``json.dumps`` with compact separators
    would write the same (an ISO stamp needs no escaping)."""
    return '{"minute":"' + iso + '"}'


def parse_minute_closed(payload: str | bytes) -> datetime:
    """The minute a notice announces closed; BarError for anything else."""
    if len(payload) > 256:
        raise BarError("minute-close notice too large")
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError, UnicodeDecodeError) as e:
        raise BarError(f"minute-close notice is not JSON: {e}") from None
    ts = doc.get("minute") if isinstance(doc, dict) else None
    if not isinstance(ts, str):
        raise BarError("minute-close notice without a 'minute' string")
    try:
        start = cme_time.parse_iso(ts)
    except (ValueError, OverflowError) as e:
        raise BarError(f"bad minute {ts!r}: {e}") from None
    if start.second or start.microsecond:
        raise BarError(f"minute {ts!r} is not a minute start")
    return start


def phase_of(bar: Any) -> str:
    """The worker's phase for a published bar: one the hub recovered after a gap (``source:
    replay``) is as stale as the worker's own catch-up; it never opens a position."""
    return "replay" if getattr(bar, "source", "live") == "replay" else "live"  # backtest bars carry none
