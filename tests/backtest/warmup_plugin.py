"""A test strategy plugin implementing only next(): records the hour/day bars it sees, signals in warmup."""

from __future__ import annotations

from typing import Any

from multialpha.hookspecs import StrategyType, hookimpl
from multialpha.worker.strategy import MultiAlphaStrategy

SEEN: dict[str, dict[str, Any]] = {}  # strategy name -> counts per (timeframe, phase), signals


class NextOnlyStrategy(MultiAlphaStrategy):
    """No prenext: warmup must reach next() anyway. Enters on every warmup daily bar, exits on the next."""

    def next(self) -> None:
        rec = SEEN.setdefault(self.symbols[0], {"counts": {}, "signals": [], "lens": {}})
        for sym in self.symbols:
            for tf in ("hour", "day"):
                d = self.feed(sym, tf)
                key = f"{sym}_{tf}"
                if len(d) > rec["lens"].get(key, 0):
                    rec["lens"][key] = len(d)
                    rec["counts"][(tf, d.phase)] = rec["counts"].get((tf, d.phase), 0) + 1
                    if tf == "day" and d.phase == "warmup":
                        ok = self.exit(d, "flip") if self.position_of(sym) else self.enter(d, "long", "warmup day")
                        rec["signals"].append(ok)


@hookimpl
def multialpha_strategy_types() -> list[StrategyType]:
    return [StrategyType(name="next_only", strategy_class=NextOnlyStrategy, timeframes=("minute", "hour", "day"))]
