"""What is traded: the ``instruments:``, ``strategies:`` and ``reference_feeds:`` entries of the config.

Separate from :mod:`multialpha.settings_model` (the runtime sections and :class:`Settings`)
because these are the per-strategy / per-instrument models that workers and the sandbox read.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from multialpha.settings_base import _Model


class ReferenceFeed(_Model):
    symbol: str
    timeframe: Literal["minute", "hour", "day"]
    source: Literal["hub", "none"]
    neutral: float = Field(gt=0)


class StrategyInstrument(_Model):
    size: int = Field(ge=1)
    commission: float | None = Field(None, ge=0)
    ml_enabled: bool = True


class RollSettings(_Model):
    """What a strategy does with a position open when its root rolls (docs/worker.md, "Rolls")."""

    policy: Literal["forward", "exit", "hold"] = "forward"
    # Hour/day series (warmup, live, backtest) adjusted at each roll so the calendar spread never
    # looks like a move (worker/adjust.py); orders, marks and P&L stay raw.
    adjust: Literal["difference", "ratio", "none"] = "difference"


class StrategySettings(_Model):
    strategy_type: str
    enabled: bool = True
    roll: RollSettings = RollSettings()
    params: dict[str, Any] = Field(default_factory=dict)
    reference_feeds: list[str] = Field(default_factory=list)
    webhook_url_env: str | None = None
    instruments: dict[str, StrategyInstrument]

    @field_validator("instruments")
    @classmethod
    def _not_empty(cls, v: dict[str, StrategyInstrument]) -> dict[str, StrategyInstrument]:
        if not v:
            raise ValueError("a strategy needs at least one instrument")
        return v


class InstrumentSpec(_Model):
    name: str
    product_id: str = Field(pattern=r"^[A-Z0-9]+\.FUT$")
    multiplier: float = Field(gt=0)
    tick_size: float = Field(gt=0)
    margin: float = Field(gt=0)
    commission: float = Field(ge=0)
    sandbox_price: float = Field(gt=0)
    slippage_ticks: int | None = Field(None, ge=0)  # simulated fills; None = backtest.slippage_ticks
