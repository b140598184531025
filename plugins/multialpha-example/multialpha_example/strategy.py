"""SmaExample: long above the hourly SMA, flat below (short too if allowed)."""

from __future__ import annotations

import backtrader as bt

from multialpha.worker.strategy import MultiAlphaStrategy


class SmaExample(MultiAlphaStrategy):
    params = (("period", 20), ("allow_short", False))

    def __init__(self) -> None:
        self.sma = {s: bt.indicators.SMA(self.feed(s, "hour").close, period=self.p.period) for s in self.symbols}

    def next(self) -> None:
        # Runs on every step, warmup included (MultiAlphaStrategy.prenext calls it): during
        # warmup only the hour/day feeds have bars and the minute feed is empty, hence ready().
        for sym in self.symbols:
            minute, hour = self.feed(sym), self.feed(sym, "hour")
            if not self.ready(minute) or len(hour) < self.p.period:
                continue
            # The SMA is of roll-adjusted hours: the minute close is brought into their level.
            above = self.adjusted_close(minute) > self.sma[sym][0]
            pos = self.position_of(sym)
            if pos is None:
                if above:
                    self.enter(minute, "long", "close above hourly SMA")
                elif self.p.allow_short:
                    self.enter(minute, "short", "close below hourly SMA")
            elif (pos.side == "long") != above:
                self.exit(minute, "crossed hourly SMA")
