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


HOURS: dict[str, list[tuple[str, float, float, str]]] = {}  # symbol -> (bar end, close, raw close, contract)


class ReentryStrategy(MultiAlphaStrategy):
    """Long whenever flat on a live hour (so again right after a roll's exit, in the new front);
    records every live hour as the strategy sees it (``HOURS``)."""

    def next(self) -> None:
        for sym in self.symbols:
            hour = self.feed(sym, "hour")
            seen = self.__dict__.setdefault("_seen", {})
            if not len(hour) or hour.phase != "live" or seen.get(sym) == len(hour):
                continue
            seen[sym] = len(hour)
            HOURS.setdefault(sym, []).append(
                (self.bar_time(hour).isoformat(), hour.close[0], self.raw_price(hour), self.feed(sym).contract))
            if self.position_of(sym) is None:
                self.enter(hour, "long", "flat on a live hour")


@hookimpl
def multialpha_strategy_types() -> list[StrategyType]:
    return [StrategyType(name="roll_holder", strategy_class=HolderStrategy, timeframes=("minute", "hour", "day")),
            StrategyType(name="roll_reentry", strategy_class=ReentryStrategy, timeframes=("minute", "hour", "day"))]
