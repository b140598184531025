"""Hand-built DBN records for hub unit tests (real databento_dbn classes)."""

from __future__ import annotations

from datetime import datetime

from databento_dbn import Action, ErrorMsg, Side, SType, SymbolMappingMsg, SystemCode, SystemMsg, TradeMsg

from multialpha import cme_time

NS = 1_000_000_000
MIN = 60 * NS


def ns(text: str) -> int:
    return cme_time.to_ns(cme_time.parse_iso(text))


def mapping(iid: int, raw: str, parent: str, ts: int = 0) -> SymbolMappingMsg:
    return SymbolMappingMsg(1, iid, ts, SType.PARENT, parent, SType.RAW_SYMBOL, raw, 0, 0)


def trade(iid: int, ts_recv: int, price: float | int, size: int = 1, ts_event: int | None = None) -> TradeMsg:
    """price: float in real units, or int already in 1e-9 fixed point."""
    px = price if isinstance(price, int) else round(price * NS)
    te = ts_recv - 5_000 if ts_event is None else ts_event
    return TradeMsg(1, iid, te, px, size, Action.TRADE, Side.NONE, 0, ts_recv)


def heartbeat(ts: int) -> SystemMsg:
    return SystemMsg(ts, "Heartbeat", SystemCode.HEARTBEAT)


def error(ts: int, text: str = "boom") -> ErrorMsg:
    return ErrorMsg(ts, text)


def at(dt: datetime) -> int:
    return cme_time.to_ns(dt)
