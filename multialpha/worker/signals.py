"""The strategy's side of a live step: the book restored, signals, the ML veto, orders.

``MultiAlphaStrategy`` calls these hooks (its ``runtime``): ``before_next`` /
``on_live`` put the order router's real positions in the book before the
first order can leave; ``on_signal`` decides whether an entry or exit is
simulated, refused (stale bar, veto) or sent to the router.

A mixin of :class:`multialpha.worker.runtime.Worker` (its state lives there).
"""

from __future__ import annotations

import gc
import logging
import time
from datetime import datetime
from typing import Any

from multialpha import plugins

log = logging.getLogger(__name__)


class SignalDesk:
    def _restore(self, strategy: Any, force: bool = False) -> None:
        """Before the first order can leave, the book becomes what the router holds.

        Without late trading, going LIVE restores again: positions the replay
        only simulated must not survive into live trading.
        """
        if self.strategy_obj is strategy and not force:
            return
        from multialpha.worker.strategy import BookPosition

        held, positions = [], [p for p in self.router.open_positions() if p.symbol in self.st.instruments]
        for p in positions:
            held.append(BookPosition(p.symbol, p.side, p.quantity, p.entry_price, p.entry_time, real=True))
        strategy.restore_book(held)
        self.rolls.restored(positions)
        self.strategy_obj = strategy
        log.info("%d open positions restored from the order router", len(held))

    def before_next(self, strategy: Any) -> None:
        """The first bar that may trade (replayed or live) finds the real book in place: a replayed
        bar may exit a real position (entries on it are refused unless late trading is on)."""
        if self.strategy_obj is not None:
            return
        for sym in self.plan.traded:
            feed = strategy.feed(sym)
            if len(feed) and feed.phase in ("live", "replay"):
                self._restore(strategy)
                return

    def on_live(self, strategy: Any) -> None:
        self._restore(strategy, force=not self.trade_late)
        self.state = "live"
        self.live_after_s = time.monotonic() - self.started_mono
        log.info("LIVE after %.2fs", self.live_after_s)
        self.phases.mark("first step")  # cerebro.run() until the strategy's first live next()
        log.info("%s", self.phases.line(from_process=self.owns_process))
        if self.owns_process:
            # Imports and warmup built ~1M objects that live as long as the worker. Frozen, they
            # are out of the collector's full passes, which otherwise stall a live bar for
            # 30-40 ms every so often. (Not in a test's thread: it would pin the test's garbage.)
            gc.collect()
            gc.freeze()
            # Counted once: get_freeze_count() walks the whole frozen list (~3 ms, GIL held).
            self.gc_frozen = gc.get_freeze_count()
        self._hb_wake.set()

    def on_signal(self, strategy: Any, kind: str, symbol: str, side: str, price: float, reason: str) -> Any:
        from multialpha.worker.strategy import Outcome

        feed = strategy.feed(symbol)
        phase = feed.phase if len(feed) else "warmup"
        late = phase == "replay"
        held = strategy.book.get(symbol) if kind == "exit" else None
        if held is not None and held.real:
            # A real position's exit always reaches the router, whatever bar raised it (a replayed
            # bar, or a minute feed whose newest bar is still a warmup one while an hour or day bar
            # signals): dropping it from the book in simulation would leave the broker holding it.
            return self._submit(strategy, "exit", symbol, side, price, reason, late, held.quantity)
        if phase == "warmup" or (not late and not strategy.all_live):
            return Outcome(True, False, "simulated")
        self._restore(strategy)
        if kind == "exit":
            # Exits act on stale (replayed) bars too: a position the strategy wants out of is risk.
            pos = strategy.book.get(symbol)
            if pos is None or not pos.real:
                return Outcome(True, False, "simulated position")
            return self._submit(strategy, "exit", symbol, side, price, reason, late, pos.quantity)
        if late and not self.trade_late:
            # Never a position from a stale bar (the hub's replay after a gap, or our own catch-up):
            # refused here, before the veto and the gate; the router would refuse it too.
            self.counters["stale_entries"] += 1
            log.info("entry %s %s on a replayed bar refused (worker.trade_replayed_bars is off)", side, symbol)
            return Outcome(False, False, "stale bar: entries on replayed bars are off")
        vetoed = self._veto(strategy, symbol, side)
        if vetoed is not None:
            return Outcome(False, False, vetoed)
        return self._submit(strategy, "entry", symbol, side, price, reason, late, strategy.quantity_for(symbol))

    def _veto(self, strategy: Any, symbol: str, side: str) -> str | None:
        """None = allowed; else the veto reason. Follows ml_veto.mode / on_missing."""
        mode = self.settings.ml_veto.mode
        if mode == "off" or not self.st.instruments[symbol].ml_enabled:
            return None
        data = {"minute": strategy.feed(symbol)}
        for tf in ("hour", "day"):
            if tf in self.stype.timeframes:
                data[tf] = strategy.feed(symbol, tf)
        for alias in self.st.reference_feeds:
            data[alias] = strategy.ref(alias)
        features: dict[str, Any] = {}
        stype = self.st.strategy_type
        try:
            for part in plugins.scoped_hook("multialpha_features", stype)(
                    strategy=self.name, symbol=symbol, side=side, data=data):
                if part:
                    features.update(part)
            decision = plugins.scoped_hook("multialpha_ml_veto", stype)(
                strategy=self.name, symbol=symbol, side=side, features=features)
        except Exception as e:
            self.counters["errors"] += 1
            log.exception("veto hook failed for %s %s", symbol, side)
            decision, err = None, f"veto error: {type(e).__name__}"
        else:
            err = ""
        if decision is None:
            allow = self.settings.ml_veto.on_missing == "allow"
            reason = err or f"no veto model answered; on_missing={self.settings.ml_veto.on_missing}"
        else:
            allow, reason = bool(decision.allow), decision.reason
        acted = allow or mode == "shadow"
        self._journal_veto(symbol, side, decision, allow, acted, reason, features)
        if allow:
            return None
        self.counters["vetoes"] += 1
        if mode == "shadow":
            log.info("shadow veto (not enforced) %s %s: %s", symbol, side, reason)
            return None
        log.info("vetoed %s %s: %s", symbol, side, reason)
        return reason or "vetoed"

    def _journal_veto(self, symbol: str, side: str, decision: Any, allow: bool, acted: bool, reason: str,
                      features: dict[str, Any]) -> None:
        """Every veto decision, allowed or not, for status and later analysis."""
        from multialpha.mlveto.record import record

        try:
            record(self.client, self.keys, strategy=self.name, symbol=symbol, side=side, at=self.clock(),
                   allow=allow, acted=acted, mode=self.settings.ml_veto.mode, reason=reason, features=features,
                   probability=getattr(decision, "score", None),
                   model_sha256=str((getattr(decision, "extra", None) or {}).get("model_sha256", "")),
                   bar_start=self._bar_start(symbol))
        except Exception:
            log.warning("veto journal write failed", exc_info=True)

    def _bar_start(self, symbol: str) -> datetime | None:
        """Start of the minute bar the strategy is deciding on (None before it has one)."""
        from multialpha.worker.strategy import minute_bar_start

        st = self.strategy_obj
        return minute_bar_start(st.feed(symbol)) if st is not None else None

    def _submit(self, strategy: Any, kind: str, symbol: str, side: str, price: float, reason: str, late: bool, qty: int) -> Any:
        from multialpha.worker.orders import make_intent
        from multialpha.worker.strategy import Outcome, minute_bar_start

        feed = strategy.feed(symbol)
        contract = feed.contract or self._front(symbol, minute_bar_start(feed))
        if kind == "exit":  # priced at the HELD contract's close, not the new front's
            price = self.rolls.exit_price(symbol, price)
        intent = make_intent(
            strategy=self.name, symbol=symbol, side=side, kind=kind, quantity=qty, price=price,
            bar_start=minute_bar_start(feed), contract=contract, reason=reason, late=late,
        )
        try:
            if not self.flattener.active:  # flatten exits take no slot: they need no turn
                self._await_turn()
            decision = self.router.submit(intent)
        except Exception:
            self.counters["errors"] += 1
            log.exception("order router failed on %s %s", kind, symbol)
            return Outcome(False, False, "router error")
        self.rolls.submitted(kind, symbol, contract, bool(decision.accepted))
        self.counters["orders"] += 1 if decision.accepted else 0
        self.counters["rejected"] += 0 if decision.accepted else 1
        log.info("%s %s %s x%d @ %s -> %s %s", kind, side, symbol, qty, price, "accepted" if decision.accepted else "rejected", decision.reason)
        return Outcome(bool(decision.accepted), True, decision.reason)

    def _front(self, symbol: str, when: datetime) -> str:
        try:
            return self.contracts.front(symbol, when).raw_symbol
        except Exception:
            return ""
