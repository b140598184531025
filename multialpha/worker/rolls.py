"""Contract rolls for one worker: the roll policy, each contract at its own price, expiry.

The hub publishes the front contract's bars on ``Keys.bars`` and, for
``hub.roll_overlap_days`` trading days after a roll, the *previous* front's bars
on ``Keys.prev_bars`` (the backtest loads the same bars from Historical). Those
previous-front bars never reach the strategy's feeds: they come here, staged on
the :class:`~multialpha.worker.feeds.FeedBus` as a :class:`~multialpha.worker.feeds.Call`
behind the same minute's front bars, so they act in the same order live and in a
backtest, on Cerebro's thread, between steps.

A real position held in a contract that is no longer the front (``held`` here,
from the router's positions and every accepted entry):

- ``roll.policy: forward`` (default): at the old contract's first bar after the
  roll, one roll pair: exit in the old contract at that bar's close, re-entry with
  the same side and size in the new front at its latest close. Both legs are
  ordinary orders through the gate (order ids tagged ``roll``; journal
  ``signal_reason`` ``roll: OLD -> NEW``). A refused re-entry (daily stop, halt,
  limits) leaves the strategy flat.
- ``exit``: the exit leg only.
- ``hold``: the position stays in the old contract: marked at the old contract's
  bars, and a strategy exit is priced at its latest close (:meth:`exit_price`).
  It is exited (tag ``expiry``) on the old contract's first bar of its last safe
  day or of the last overlap day, whichever comes first: after that no prices
  of it are published.

Whatever the policy, no position is held past its contract's
``ContractMap.last_safe_day``: on the first bar of that trading day (of its own
contract: the front's feed, or the previous front's bars) it is exited, journaled
with reason ``expiry``. With ``hub.roll_overlap_days: 0`` there are no old-contract
bars: a position left in a rolled contract is exited (forward: and re-entered) at
the first front bar of the new contract, the exit priced at the position's last
mark (the held contract's last close the gate saw).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any, Iterable

from multialpha import cme_time
from multialpha.contracts import ContractMap
from multialpha.worker.orders import still_holds
from multialpha.bar import phase_of

log = logging.getLogger(__name__)

MINUTE = timedelta(minutes=1)


class RollManager:
    def __init__(self, worker: Any) -> None:
        self.w = worker
        st = worker.settings.strategies.get(worker.name)
        self.policy: str = st.roll.policy if st is not None else "forward"
        self.overlap_days: int = worker.settings.hub.roll_overlap_days
        self.held: dict[str, str] = {}  # symbol -> contract of the strategy's real position
        self.prev: dict[str, tuple[str, float, datetime]] = {}  # symbol -> (contract, close, start) newest old bar
        self.first_prev_day: dict[str, date] = {}  # contract -> trading day of its first previous-front bar
        self._safe: dict[str, date | None] = {}
        self._prev_last: dict[str, datetime] = {}  # symbol -> newest previous-front bar staged
        self.rolls = 0  # roll pairs (or exits) submitted
        self.expiries = 0  # forced exits

    @property
    def cmap(self) -> ContractMap:
        return self.w.contracts  # the worker's one contract map (read once per process)

    # -- bookkeeping (the worker calls these) -------------------------------------
    def restored(self, positions: list[Any]) -> None:
        self.held = {p.symbol: getattr(p, "contract", "") for p in positions if getattr(p, "contract", "")}

    def submitted(self, kind: str, symbol: str, contract: str, accepted: bool) -> None:
        if not accepted:
            return
        if kind == "entry":
            self.held[symbol] = contract
        else:
            self.held.pop(symbol, None)

    def safe_day(self, contract: str) -> date | None:
        """``ContractMap.last_safe_day`` of a raw symbol (None: not a contract of the map)."""
        if contract not in self._safe:
            c = self.cmap.parse(contract, near=cme_time.trading_day(self.w.clock())) if self.w.clock else None
            self._safe[contract] = self.cmap.last_safe_day(c) if c is not None and c.root in self.cmap.rules else None
        return self._safe[contract]

    def exit_price(self, symbol: str, price: float) -> float:
        """An exit's price is the HELD contract's bar close: the previous front's newest close
        when the position is still in it, else ``price`` (the front's own close)."""
        held = self.held.get(symbol)
        got = self.prev.get(symbol)
        if held and got is not None and got[0] == held and self._front(symbol) != held:
            return got[1]
        return price

    # -- the previous front's bars ---------------------------------------------------
    def on_prev_bar(self, bar: Any, recv_ns: int = 0, phase: str | None = None) -> bool:
        """Producer side (the subscriber's pump, the worker's catch-up, or the backtest's
        conductor): staged in order. ``phase`` ``replay`` (catch-up, or a bar the hub
        recovered after a gap): exits go out flagged late, entries are refused as stale.

        Each bar once: catch-up reads the log while the subscription already buffers live
        bars, and the join between them is de-duplicated here by bar start (per symbol).
        Returns False for such a duplicate."""
        last = self._prev_last.get(bar.symbol)
        if last is not None and bar.start <= last:
            return False
        self._prev_last[bar.symbol] = bar.start
        phase = phase or phase_of(bar)
        self.w.bus.put_call(lambda: self._prev_step(bar, phase))
        return True

    def logged_prev_bars(self, client: Any, symbols: Iterable[str], start: datetime) -> list[Any]:
        """Catch-up after a restart: the hub's previous-front bar log (``Keys.prev_bar_log``) of
        ``symbols`` from ``start``, for the worker to replay in order with the front bars.

        The log is read from ``hub.roll_overlap_days`` trading days earlier so that the first
        day each old contract was published (the ``hold`` policy's last overlap day counts
        from it) is the same as in a worker that stayed up."""
        from multialpha.bar import BarError
        from multialpha.hub.publisher import bar_from_log

        day = cme_time.add_business_days(cme_time.trading_day(start), -max(self.overlap_days, 1))
        lo = min(start, cme_time.session_bounds(day)[0])
        out = []
        for sym in symbols:
            log_key = self.w.keys.prev_bar_log(sym)
            for entry_id, fields in client.xrange(log_key, min=f"{cme_time.to_ms(lo)}-0", max="+"):
                try:
                    bar = bar_from_log(fields)
                except BarError as e:
                    self.w.counters["bad_log_entries"] += 1
                    log.warning("bad previous-front bar-log entry %s %s: %s", sym, entry_id, e)
                    continue
                if bar.symbol != sym:
                    continue
                self.first_prev_day.setdefault(bar.contract, cme_time.trading_day(bar.start))
                if bar.start >= start:
                    out.append(bar)
        return out

    def _prev_step(self, bar: Any, phase: str) -> None:
        """Cerebro's thread, between steps: record the price, then act on a position held in it."""
        sym, contract = bar.symbol, bar.contract
        self.prev[sym] = (contract, float(bar.close), bar.start)
        self.first_prev_day.setdefault(contract, cme_time.trading_day(bar.start))
        strategy = self.w.strategy_obj
        if strategy is None or self.held.get(sym) != contract:
            if still_holds(self.w.router, sym):  # a closing position in the old contract
                self._mark(sym, bar, phase)
            return
        pos = strategy.book.get(sym)
        if pos is None or not pos.real or self._front(sym) in ("", contract):
            return
        day = cme_time.trading_day(bar.start)
        late = phase == "replay"
        safe = self.safe_day(contract)
        if safe is not None and day >= safe:
            self._force_exit(strategy, sym, pos, float(bar.close), bar.start, contract, late,
                             f"expiry: {contract} last safe day {safe}")
            return
        if self.policy == "hold":
            last = cme_time.add_business_days(self.first_prev_day[contract], max(self.overlap_days, 1) - 1)
            if day >= last:
                self._force_exit(strategy, sym, pos, float(bar.close), bar.start, contract, late,
                                 f"expiry: {contract} last overlap day {last} (no prices after it)")
            else:
                self._mark(sym, bar, phase)
            return
        self._roll(strategy, sym, pos, float(bar.close), bar.start, contract, late)

    # -- the front's bars (Worker.after_next, for symbols with a real position) ------------
    def after_bar(self, strategy: Any, sym: str, feed: Any) -> None:
        contract = self.held.get(sym)
        pos = strategy.book.get(sym)
        if not contract or pos is None or not pos.real or feed.phase not in ("live", "replay"):
            return
        late = feed.phase == "replay"
        start = feed.bar_start
        if feed.contract == contract:
            safe = self.safe_day(contract)
            if safe is not None and cme_time.trading_day(start) >= safe:
                self._force_exit(strategy, sym, pos, float(feed.close[0]), start, contract, late,
                                 f"expiry: {contract} last safe day {safe}")
        elif feed.contract and self.overlap_days == 0:
            # No old-contract bars will come: its last mark is its last known price.
            mark = self._last_mark(sym) or pos.entry_price
            if self.policy == "hold":
                self._force_exit(strategy, sym, pos, mark, start, contract, late,
                                 f"expiry: {contract} has no bars after the roll (hub.roll_overlap_days 0)")
            else:
                self._roll(strategy, sym, pos, mark, start, contract, late)

    # -- actions ---------------------------------------------------------------------
    def _front(self, sym: str) -> str:
        strategy = self.w.strategy_obj
        feed = strategy.feed(sym) if strategy is not None else None
        return feed.contract if feed is not None and len(feed) else ""

    def _roll(self, strategy: Any, sym: str, pos: Any, price: float, start: datetime, old: str, late: bool) -> None:
        from multialpha.worker.strategy import BookPosition

        feed = strategy.feed(sym)
        new = feed.contract
        why = f"roll: {old} -> {new}"
        if not self._send("exit", sym, pos.side, pos.quantity, price, start, old, why, late):
            return  # refused (e.g. its exit is already in flight): tried again on the next bar
        self.rolls += 1
        del strategy.book[sym]
        if self.policy != "forward":
            log.warning("ROLL %s %s: %s closed (roll.policy exit)", self.w.name, sym, old)
            return
        px = float(feed.close[0])
        if self._send("entry", sym, pos.side, pos.quantity, px, start, new, why, late):
            strategy.book[sym] = BookPosition(sym, pos.side, pos.quantity, px, start + MINUTE, real=True)
            log.warning("ROLL %s %s: %s x%d %s @ %s -> %s @ %s", self.w.name, sym, pos.side, pos.quantity,
                        old, price, new, px)
        else:
            log.warning("ROLL %s %s: %s closed, re-entry in %s refused: flat", self.w.name, sym, old, new)

    def _force_exit(self, strategy: Any, sym: str, pos: Any, price: float, start: datetime, contract: str,
                    late: bool, why: str) -> None:
        if self._send("exit", sym, pos.side, pos.quantity, price, start, contract, why, late, tag="expiry"):
            self.expiries += 1
            del strategy.book[sym]
            log.warning("EXPIRY %s %s: %s", self.w.name, sym, why)

    def _send(self, kind: str, sym: str, side: str, qty: int, price: float, start: datetime, contract: str,
              reason: str, late: bool, tag: str = "roll") -> bool:
        from multialpha.worker.orders import make_intent

        intent = make_intent(strategy=self.w.name, symbol=sym, side=side, kind=kind, quantity=qty, price=price,
                             bar_start=start, contract=contract, reason=reason, late=late, tag=tag)
        try:
            self._turn(start)
            decision = self.w.router.submit(intent)
        except Exception:
            self.w.counters["errors"] += 1
            log.exception("order router failed on %s %s %s", tag, kind, sym)
            return False
        self.w.counters["orders" if decision.accepted else "rejected"] += 1
        self.submitted(kind, sym, contract, bool(decision.accepted))
        log.info("%s %s %s %s x%d @ %s (%s) -> %s", tag, kind, side, sym, qty, price, contract,
                 decision.reason)
        return bool(decision.accepted)

    def _mark(self, sym: str, bar: Any, phase: str) -> None:
        if phase != "live":
            return  # as the front's marks: live bars only (not the hub's gap replay, not our catch-up)
        try:
            self._turn(bar.start)
            flatten = self.w.router.mark(sym, float(bar.close), bar.start, contract=bar.contract)
        except Exception:
            self.w.counters["errors"] += 1
            log.warning("mark failed for %s %s", sym, bar.contract, exc_info=True)
            return
        if flatten:
            self.w.flattener.request(flatten)

    def _turn(self, minute: datetime) -> None:
        turns = self.w.turns
        if turns is not None and not self.w.flattener.active:
            turns.wait(minute)

    def _last_mark(self, sym: str) -> float | None:
        gate = getattr(self.w.router, "gate", None)
        try:
            p = gate.position(self.w.name, sym) if gate is not None else None
        except Exception:
            return None
        return float(p["mark"]) if p and p.get("mark") else None
