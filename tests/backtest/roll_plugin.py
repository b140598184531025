"""A test strategy that enters long on its first live hour of each symbol and never exits on its own:
whatever happens to its positions at a roll is the runtime's roll policy."""

from __future__ import annotations

from multialpha.hookspecs import StrategyType, hookimpl
from multialpha.worker.strategy import MultiAlphaStrategy


class HolderStrategy(MultiAlphaStrategy):
    def next(self) -> None:
        done = self.__dict__.setdefault("_entered", set())
        for sym in self.symbols:
            hour = self.feed(sym, "hour")
            if len(hour) and hour.phase == "live" and sym not in done:
                done.add(sym)
                self.enter(hour, "long", "hold across the roll")


@hookimpl
def multialpha_strategy_types() -> list[StrategyType]:
    return [StrategyType(name="roll_holder", strategy_class=HolderStrategy, timeframes=("minute", "hour", "day"))]
