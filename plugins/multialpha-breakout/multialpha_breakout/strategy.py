"""Breakout as a multialpha Backtrader strategy: feeds in, rules decide, runtime acts.

Decisions are made by :class:`multialpha_breakout.rules.BreakoutRules` at each
completed hourly bar — the object the tests check against pandas.
"""

from __future__ import annotations

from multialpha.worker.strategy import MultiAlphaStrategy

from multialpha_breakout.rules import BreakoutRules, Params


class BreakoutStrategy(MultiAlphaStrategy):
    params = tuple((k, v.default) for k, v in Params.__dataclass_fields__.items())  # type: ignore[misc]

    def start(self) -> None:
        p = Params.from_config({k: getattr(self.p, k) for k in Params.__dataclass_fields__})  # validates
        self.rules = {sym: BreakoutRules(p) for sym in self.symbols}
        self.seen = {sym: 0 for sym in self.symbols}

    def next(self) -> None:
        for sym in self.symbols:
            hour = self.feed(sym, "hour")
            if len(hour) <= self.seen[sym]:
                continue
            self.seen[sym] = len(hour)
            rules = self.rules[sym]
            pos = self.position_of(sym)
            if rules.position != (pos.side if pos else None):  # the book is the truth after a restore
                rules.restore(pos.side if pos else None, pos.entry_price if pos else 0.0)
            act = rules.on_hour(hour.high[0], hour.low[0], hour.close[0])
            if act is None:
                continue
            if act.kind == "exit":
                self.exit(hour, act.reason)
            elif not self.enter(hour, act.side, act.reason):
                rules.cancel_entry()
