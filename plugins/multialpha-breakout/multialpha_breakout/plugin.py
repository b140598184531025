"""The breakout plugin's hook implementations (entry point ``breakout`` in group ``multialpha``)."""

from __future__ import annotations

from typing import Any, Mapping

from multialpha.hookspecs import StrategyType, hookimpl

REFERENCES = ("VIX", "TLT_day")


@hookimpl
def multialpha_strategy_types() -> list[StrategyType]:
    return [
        StrategyType(
            name="breakout",
            strategy_class="multialpha_breakout.strategy:BreakoutStrategy",
            timeframes=("minute", "hour", "day"),
            reference_feeds=REFERENCES,
            description="Hourly Donchian channel breakout with ATR filter and trailing ATR stop",
        )
    ]


@hookimpl
def multialpha_features(strategy: str, symbol: str, side: str, data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    from multialpha.mlveto.bt_features import features_from_feeds

    return features_from_feeds(data.get("day"), {r: data.get(r) for r in REFERENCES})
