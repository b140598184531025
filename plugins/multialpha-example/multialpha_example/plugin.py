"""Hook implementations: import-light (the strategy class is referenced by name)."""

from __future__ import annotations

from typing import Any, Mapping

from multialpha.hookspecs import StrategyType, VetoDecision, hookimpl

MAX_RANGE_PCT = 0.08


@hookimpl
def multialpha_strategy_types() -> list[StrategyType]:
    return [
        StrategyType(
            name="example_sma",
            strategy_class="multialpha_example.strategy:SmaExample",
            timeframes=("minute", "hour", "day"),
            description="minute close vs SMA of hourly closes",
        )
    ]


@hookimpl
def multialpha_features(strategy: str, symbol: str, side: str, data: Mapping[str, Any]) -> dict[str, float] | None:
    day = data.get("day")
    if day is None or len(day) == 0:
        return None
    return {"day_range_pct": (float(day.high[0]) - float(day.low[0])) / float(day.close[0])}


@hookimpl
def multialpha_ml_veto(strategy: str, symbol: str, side: str, features: Mapping[str, Any]) -> VetoDecision | None:
    rng = features.get("day_range_pct")
    if rng is None:
        return None
    if rng > MAX_RANGE_PCT:
        return VetoDecision(False, f"day range {rng:.1%} > {MAX_RANGE_PCT:.0%}", score=rng)
    return VetoDecision(True, "ok", score=rng)
