"""IBS as a multialpha Backtrader strategy: feeds in, rules decide, runtime acts.

Backtrader only delivers bars here; every decision is made by
:class:`multialpha_ibs.rules.IbsRules`, the same object the tests check
against a pandas computation of the documented rules.
"""

from __future__ import annotations


from multialpha.worker.strategy import MultiAlphaStrategy

from multialpha_ibs.rules import IbsRules, Params


class IbsStrategy(MultiAlphaStrategy):
    params = tuple((k, v.default) for k, v in Params.__dataclass_fields__.items())  # type: ignore[misc]

    def start(self) -> None:
        p = Params.from_config({k: getattr(self.p, k) for k in Params.__dataclass_fields__})  # validates
        self.rules = {sym: IbsRules(p) for sym in self.symbols}
        self.seen = {sym: [0, 0] for sym in self.symbols}  # bars consumed: [day, hour]

    def next(self) -> None:
        for sym in self.symbols:
            day, hour = self.feed(sym, "day"), self.feed(sym, "hour")
            self._sync(sym)
            seen = self.seen[sym]
            if len(day) > seen[0]:  # the day closes before the next session's first hour
                seen[0] = len(day)
                act = self.rules[sym].on_day(self.bar_time(day), day.high[0], day.low[0], day.close[0])
                if act is not None:
                    self.exit(day, act.reason)
            if len(hour) > seen[1]:
                seen[1] = len(hour)
                act = self.rules[sym].on_hour(self.bar_time(hour), hour.close[0])
                if act is not None and not self.enter(hour, act.side, act.reason):
                    self.rules[sym].cancel_entry()

    def _sync(self, sym: str) -> None:
        """The book is the truth (restored after a restart); the rules follow it."""
        pos = self.position_of(sym)
        rules = self.rules[sym]
        side = pos.side if pos else None
        if rules.position != side:
            rules.restore(side)


