"""TradersPost webhook bodies (see ../shared/traderspost-webhook-spec.json).

``ticker`` is always the explicit contract in TradersPost's 4-digit-year
spelling (ESZ5 -> ESZ2025), never a continuous symbol: TradersPost's own roll
schedule may differ from ours, and an exit must close the contract we hold.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from multialpha import cme_time
from multialpha.contracts import ContractMap
from multialpha.orders.intent import OrderIntent

SENTIMENT = {"buy": "bullish", "sell": "bearish", "exit": "flat"}


class PayloadError(ValueError):
    """The intent cannot be turned into a safe, explicit order."""


def ticker_for(cmap: ContractMap, root: str, raw_contract: str, near: datetime) -> str:
    """Databento raw outright (ESZ5) -> TradersPost ticker (ESZ2025), checked against the root."""
    contract = cmap.parse(raw_contract, near=cme_time.trading_day(near))
    if contract is None:
        raise PayloadError(f"{raw_contract!r} is not an outright contract of a known root")
    if contract.root != root:
        raise PayloadError(f"contract {raw_contract!r} does not belong to {root!r}")
    return contract.traderspost_symbol


def build(intent: OrderIntent, ticker: str, order_id: str, now: datetime) -> dict[str, Any]:
    """The JSON body for one order. Market order, fixed quantity."""
    action = intent.action
    return {
        "ticker": ticker,
        "action": action,
        "sentiment": SENTIMENT[action],
        "quantity": intent.quantity,
        "quantityType": "fixed_quantity",
        "orderType": "market",
        "price": intent.price,
        "signalPrice": intent.price,
        "time": cme_time.iso_z(now),
        "extras": {
            "orderId": order_id,
            "strategy": intent.strategy,
            "symbol": intent.symbol,
            "contract": intent.contract,
            "barStart": cme_time.iso_z(intent.bar_start),
            "reason": intent.reason,
            "late": intent.late,
        },
    }
