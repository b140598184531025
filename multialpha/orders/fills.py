"""The one fill-price model of simulated fills: backtest, paper trading and the gate's P&L.

A paper or backtest market order fills ``slippage_ticks`` ticks (``backtest.slippage_ticks``,
an instrument's own ``slippage_ticks`` overrides it) worse than its signal price: a buy
higher, a sell lower. The router passes this price to the portfolio gate (which books the
position and the realised P&L at it) and journals it as ``fill_price`` beside the signal
``price``, so the gate's day P&L, the backtest's trades and ``multialpha report`` all read
one number. Live orders have no simulated fill: TradersPost does not report its fills, so
their journal carries the signal price only (slippage unknown).
"""

from __future__ import annotations

import math
from decimal import Decimal

from multialpha.config import Settings


def tick_decimals(tick: float) -> int:
    """Decimal places of a tick size (0.25 -> 2, 0.0000005 -> 7, 1.0 -> 0)."""
    return max(0, -int(Decimal(repr(tick)).normalize().as_tuple().exponent))


def round_price(price: float, tick: float) -> float:
    """The nearest multiple of ``tick``, as the float with the tick's decimals (nan stays nan)."""
    if math.isnan(price):
        return price
    return round(round(price / tick) * tick, tick_decimals(tick))


def is_buy(side: str, kind: str) -> bool:
    """An entry long and an exit short buy; an entry short and an exit long sell."""
    return (side == "long") == (kind == "entry")


def fill_price(settings: Settings, symbol: str, side: str, kind: str, signal_price: float) -> float:
    """The simulated fill of a market order at ``signal_price``: slippage ticks against the trader.

    Decimal arithmetic: ``6000.25 + 0.25`` is exactly ``6000.5``, with no binary noise that
    would make the gate's P&L differ from the report's in the last cent."""
    ticks = settings.slippage_ticks(symbol)
    if ticks == 0:
        return signal_price
    step = Decimal(ticks) * Decimal(repr(settings.instruments[symbol].tick_size))
    px = Decimal(repr(signal_price))
    return float(px + step if is_buy(side, kind) else px - step)


def slippage_cost(settings: Settings, symbol: str, quantity: int) -> float:
    """Dollars one side's slippage costs: ticks x tick size x multiplier x quantity."""
    spec = settings.instruments[symbol]
    return settings.slippage_ticks(symbol) * spec.tick_size * spec.multiplier * quantity
