"""A test strategy plugin whose next() raises on its first live bar (registered in-process)."""

from __future__ import annotations

from multialpha.hookspecs import StrategyType, hookimpl
from multialpha.worker.strategy import MultiAlphaStrategy


class CrashStrategy(MultiAlphaStrategy):
    def next(self) -> None:
        if self.all_live:
            raise ZeroDivisionError("strategy bug")


@hookimpl
def multialpha_strategy_types() -> list[StrategyType]:
    return [StrategyType(name="crasher", strategy_class=CrashStrategy, timeframes=("minute", "hour"))]
