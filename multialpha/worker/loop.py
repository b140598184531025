"""Cerebro's live loop, asking the bus which feeds hold a bar instead of polling every feed.

Backtrader's ``Cerebro._runnext`` asks every feed for a bar on every pass,
twice (a second time "with a master"), and each ask walks Backtrader's line
machinery: with 6 feeds that is 11 asks for the one feed that has a bar.
Our feeds only ever get bars from the :class:`~multialpha.worker.feeds.FeedBus`,
which knows which feeds hold an item, so :class:`BusCerebro` waits once on the
bus and asks only those feeds (plus any feed holding a bar it could not
deliver yet). Everything else is Backtrader's rule, in Backtrader's order:
the step's time is the earliest bar; a feed whose bar is later rewinds it
and delivers it on a later step; data and broker notifications, timers,
``cheat_on_open``, then ``Strategy._next``.

The live worker and the backtest both build this Cerebro (worker/runtime.py),
so they keep stepping alike by construction.
"""

from __future__ import annotations

from typing import Any

import backtrader as bt


class BusCerebro(bt.Cerebro):
    """A ``bt.Cerebro`` whose live (``runonce=False``) loop is driven by the feeds' shared bus."""

    def _datanotify(self) -> None:
        # Called twice per pass; Backtrader's drains every feed's queue through a marker and a
        # new list each time. Status changes are rare: look only when some feed has one.
        if any([d.notifs for d in self.datas]):  # (a deque is true when not empty)
            super()._datanotify()

    def _runnext(self, runstrats: list[Any]) -> None:
        datas = sorted(self.datas, key=lambda x: (x._timeframe, x._compression))  # Backtrader's order
        bus = datas[0].bus
        qcheck = datas[0].p.qcheck
        index = {d.p.feed_name: i for i, d in enumerate(datas)}  # (feeds compare as line operations)
        held: list[int] = []  # feeds holding a loaded bar later than their step's time (rewound)
        stacks = [q for d in datas for q in (d._barstack, d._barstash)]  # (made in start(); filters use them)
        for d in datas:
            d._qcheck = 0.0  # never wait inside a feed: the bus waited above
        bus.asks_known = True
        while True:
            self._storenotify()
            if self._event_stop:
                return
            self._datanotify()
            if self._event_stop:
                return
            names = bus.wait(0.0 if held else qcheck)
            if names is False and not held:
                # Drained and stopped: Backtrader's last chance for filters, then the end.
                if not sum(d._last(datamaster=None if i == 0 else datas[0]) for i, d in enumerate(datas)):
                    break
            ask = set(held)
            ask.update(index[n] for n in names or ())
            if any(stacks):
                ask.update(i for i, d in enumerate(datas) if d._barstack or d._barstash)
            held = []
            got: list[int] = []
            for i in sorted(ask):  # in Backtrader's order
                if datas[i].next(ticks=False):
                    got.append(i)
            if got:
                dt0 = min(datas[i].datetime[0] for i in got)
                dmaster = next(datas[i] for i in got if datas[i].datetime[0] == dt0)
                self._dtmaster = dmaster.num2date(dt0)  # (Backtrader's _udtmaster: never read, not kept)
                for i in got:
                    if datas[i].datetime[0] > dt0:
                        datas[i].rewind()  # cannot deliver yet
                        held.append(i)
                    else:
                        datas[i]._tick_fill(force=True)
            else:
                for d in datas:
                    d._check()
            self._datanotify()
            if self._event_stop:
                return
            if got:
                self._check_timers(runstrats, dt0, cheat=True)
                if self.p.cheat_on_open:
                    for strat in runstrats:
                        strat._next_open()
                        if self._event_stop:
                            return
            self._brokernotify()
            if self._event_stop:
                return
            if got:
                self._check_timers(runstrats, dt0, cheat=False)
                for strat in runstrats:
                    strat._next()
                    if self._event_stop:
                        return
                    self._next_writers(runstrats)
        self._datanotify()
        if self._event_stop:
            return
        self._storenotify()
