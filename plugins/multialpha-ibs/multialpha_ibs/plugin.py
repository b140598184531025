"""The IBS plugin's hook implementations (entry point ``ibs`` in group ``multialpha``)."""

from __future__ import annotations

from typing import Any, Mapping

from multialpha.hookspecs import StrategyType, hookimpl

REFERENCES = ("VIX", "PL", "6E", "6J", "TLT_day", "ZB_hour")


@hookimpl
def multialpha_strategy_types() -> list[StrategyType]:
    return [
        StrategyType(
            name="ibs",
            strategy_class="multialpha_ibs.strategy:IbsStrategy",
            timeframes=("minute", "hour", "day"),
            reference_feeds=REFERENCES,
            description="Internal Bar Strength mean reversion on CME daily bars, hourly-timed entries",
        )
    ]


@hookimpl
def multialpha_features(strategy: str, symbol: str, side: str, data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    from multialpha.mlveto.bt_features import features_from_feeds

    return features_from_feeds(data.get("day"), {r: data.get(r) for r in REFERENCES})
