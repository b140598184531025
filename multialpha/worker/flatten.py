"""Flattening a strategy's positions on request: the daily stop or `multialpha flatten`.

The gate is the source of truth: a flatten in scope (``{ns}:portfolio:flatten``, or the
daily stop with ``portfolio.on_daily_stop: flatten``) comes back with every mark, and
the control channel tells a running worker at once. Either way the worker exits every
real position through the strategy's own ``exit`` — the normal order path, so the
strategy's book, the gate and the journal agree — at the close of the position's
current minute bar. The exits happen on the Cerebro thread (after a step, or in an
idle pump between steps), never concurrently with ``next()``.

A backtest runs the same code: its marks come back from the same gate, so a day that
hits the stop flattens in the backtest exactly as live.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


class Flattener:
    def __init__(self, strategy_name: str) -> None:
        self.name = strategy_name
        self.reason = ""  # pending flatten ('' = none)
        self.active = False  # exits are being submitted (they skip the turn wait)
        self.exits = 0

    def request(self, reason: str) -> None:
        if reason and not self.reason:
            log.warning("FLATTEN %s: %s — exiting every open position", self.name, reason)
        self.reason = reason or self.reason

    def on_control(self, doc: dict[str, Any]) -> None:
        """A control-channel message: flatten in scope, or resume (which lifts it)."""
        command, scope = doc.get("command"), doc.get("scope", "*")
        if command == "flatten" and scope in ("*", self.name):
            self.request(str(doc.get("reason") or "flatten requested"))
        elif command == "resume":
            self.reason = ""

    def run(self, strategy: Any) -> int:
        """Exit every real position of ``strategy`` whose feed has a bar; returns the exits accepted."""
        if not self.reason or strategy is None:
            return 0
        done = 0
        self.active = True
        try:
            for sym, pos in list(strategy.book.items()):
                if not pos.real:
                    continue
                feed = strategy.feed(sym)
                if not len(feed):
                    continue  # no bar to price the exit yet: the next one will
                if strategy.exit(feed, reason=f"flatten: {self.reason}"):
                    done += 1
        finally:
            self.active = False
        self.exits += done
        if not any(p.real for p in strategy.book.values()):
            if done:
                log.warning("FLATTEN %s: %d exit(s) submitted; reduce-only until `multialpha resume`",
                            self.name, done)
            self.reason = ""
        return done
