"""OrderRouter: the one door from a strategy to the market.

``submit`` runs on the bar path and stays fast: one atomic gate script
(claim id + kill switch + daily stop + max positions + reserve + journal the
intent), then either the paper outcome (one pipelined write) or a hand-off to
this worker's sender thread. HTTP retries never block the bar path or other
workers (they are other processes).

One sender thread per worker, FIFO: orders leave in the order they were
submitted, so an exit can never overtake its entry (and a reversal's exit
precedes its new entry) on any symbol. The price: a retrying order delays this
worker's later orders; other strategies are unaffected.

This module is the submit path and the router's state; the sender thread and the
settle/exit-lifecycle bookkeeping are in orders/settlement.py (``Settlement``, a base
class of ``OrderRouter``), the webhook URL checks in orders/webhook_url.py.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import random
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Mapping

import redis

from multialpha import cme_time, logs
from multialpha.config import Settings
from multialpha.contracts import ContractMap
from multialpha.keys import Keys
from multialpha.orders import fills, journal, payload
from multialpha.orders.intent import OrderIntent
from multialpha.orders.settlement import Settlement, _Job
from multialpha.orders.webhook_url import _check_url, _register_url
from multialpha.portfolio.gate import Gate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    accepted: bool
    reason: str
    order_id: str


@dataclass(frozen=True)
class Position:
    strategy: str
    symbol: str
    side: str
    quantity: int
    entry_price: float
    entry_time: datetime
    contract: str


class OrderRouter(Settlement):
    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        strategy: str,
        *,
        clock: Callable[[], datetime] = cme_time.utcnow,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        import os

        if strategy not in settings.strategies:
            raise ValueError(f"unknown strategy {strategy!r}")
        env = dict(os.environ if environ is None else environ)
        self.settings = settings
        self.client = client
        self.strategy = strategy
        self.clock = clock
        self.keys = Keys(settings.redis.namespace)
        self.gate = Gate(settings, client)
        self.cmap = ContractMap.load(settings.path(settings.contract_map_path))
        self.destination = settings.order_destination(strategy, env)
        # Which webhook this strategy's orders reach (never the URL itself): the gate refuses
        # orders that would net against another strategy's position through the same one.
        self.destination_key = settings.destination_key(strategy, env)
        self.max_age = timedelta(seconds=settings.orders.max_age_s)
        # Symbols whose exit is claimed but not delivered yet (in flight), and whose exit failed:
        # both still on the book, so the worker keeps marking them (``still_holds``).
        self.closing: set[str] = set()
        self.exit_failed: set[str] = set()
        self._settled = threading.Condition()  # notified whenever the sender settles an order
        self._stop = threading.Event()
        self._sleep = sleep or (lambda s: self._stop.wait(s))
        self._rand = rand
        self._stop_logged_day: object = None
        self._ignored_marks: dict[str, str | None] = {}
        self._closed = False
        self._url = ""
        self._thread: threading.Thread | None = None
        self._queue: "queue.Queue[object]" = queue.Queue()
        if self.destination == "live":
            self._url = env[settings.webhook_env(strategy)]
            _register_url(self._url)
            _check_url(self._url, settings.webhook_env(strategy))
            import requests

            from multialpha.orders.ratelimit import RateLimiter

            self._session = requests.Session()
            self._limiter = RateLimiter(client, self.keys, settings.orders.rate_per_minute,
                                        settings.orders.rate_per_hour, clock=clock)
            self._thread = threading.Thread(target=self._run, name=f"orders.{strategy}", daemon=True)
            self._thread.start()
        log.info("orders for %s: %s", strategy, self.describe())
        # Orders journaled by a previous run of this strategy with no outcome:
        # reported (logs, journal, status), never re-sent. Before any submit.
        self.needs_review: list[dict[str, str]] = []
        try:
            self.needs_review = journal.pending_review(client, self.keys, strategy, now=clock())
            for doc in self.needs_review:
                # An exit that died with its process may not have reached the broker: the
                # position stays counted and the strategy reduce-only until an operator resolves it.
                if doc.get("kind") == "exit" and self.gate.exit_failed(strategy, doc.get("symbol", ""),
                                                                         doc["order_id"], clock()):
                    log.critical("exit %s %s (order %s) has no outcome after a restart: reduce-only until "
                                 "`multialpha orders retry|ack %s`", strategy, doc.get("symbol"),
                                 doc["order_id"], doc["order_id"])
            self._finish_split_settles()
            # Positions whose exit never settled stay on the book: keep marking them.
            self.exit_failed.update(p["symbol"] for p in self.closing_positions())
        except redis.RedisError as e:
            log.error("could not check for unresolved orders: %s", logs.redact(str(e)))

    def _finish_split_settles(self) -> None:
        """Positions whose order the journal has settled but the book has not: left by a version
        that wrote the outcome and the gate's move apart and was killed between them (issue 22;
        orders/settlement.py now writes both in one transaction). The journal holds the broker's
        answer, so the book follows it here, with a warning:
        - ``closing`` and its exit ``delivered``: off the book (left, every later entry of the
          strategy in that symbol is refused, with nothing to review);
        - ``open`` and its entry rejected, expired, failed or abandoned: the slot is freed (left,
          the strategy would hold, and later exit, a position the broker never opened)."""
        for p in self.gate.positions(self.strategy):
            state = p.get("state", "open")
            oid = p.get("exit_order_id", "") if state == "closing" else p.get("order_id", "") if state == "open" else ""
            if not oid:
                continue
            got = self.client.hget(self.keys.order_state(oid), "state")
            got = got.decode() if isinstance(got, bytes) else got
            if state == "closing" and got == "delivered":
                at = cme_time.parse_iso(p["exit_time"]) if p.get("exit_time") else None
                self.gate.exit_done(self.strategy, p["symbol"], oid, self.clock(), day_at=at)
                log.warning("exit %s %s (order %s) was delivered but its position was still closing: "
                            "taken off the book now", self.strategy, p["symbol"], oid)
            elif state == "open" and got in journal.ENTRY_RELEASED:
                self.gate.release(self.strategy, p["symbol"], oid, self.clock())
                log.warning("entry %s %s (order %s) was %s but its position was still open: slot freed now",
                            self.strategy, p["symbol"], oid, got)

    def describe(self) -> str:
        if self.destination == "live":
            return "LIVE: orders are sent to TradersPost"
        return "paper: orders are journaled only, nothing is sent"

    # -- the bar path ------------------------------------------------------------
    def submit(self, intent: OrderIntent) -> Decision:
        """Gate (entries) -> journal intent -> sink. Never raises for a bad order."""
        if self._closed:
            raise RuntimeError("OrderRouter is closed")
        if intent.strategy != self.strategy:
            raise ValueError(f"intent for {intent.strategy!r} submitted to the router of {self.strategy!r}")
        now = self.clock()
        oid = intent.order_id
        if intent.symbol not in self.settings.strategies[self.strategy].instruments:
            return self._refuse(intent, oid, now, f"{intent.symbol} is not an instrument of {self.strategy}")
        if intent.kind == "entry" and intent.symbol in self.closing:
            self._await_exit(intent.symbol)
        if intent.kind == "entry" and intent.late and not self.settings.worker.trade_replayed_bars:
            return self._refuse(intent, oid, now, "late entry from a replayed bar (worker.trade_replayed_bars is off)")
        age = now - intent.bar_close
        stale = age > self.max_age
        if stale and intent.kind == "entry":
            # A market order at a price the market left minutes ago: refused, never queued.
            return self._refuse(intent, oid, now, f"expired: signal bar closed {age.total_seconds():.0f}s ago "
                                f"(orders.max_age_s {self.settings.orders.max_age_s:g})", event="expired")
        if stale:
            log.warning("exit %s %s: signal bar closed %.0fs ago; sent anyway (exits reduce risk), flagged stale",
                        self.strategy, intent.symbol, age.total_seconds())
        contract = intent.contract
        if intent.kind == "exit":
            # Close the contract we HOLD, even if the front rolled since the entry.
            try:
                held, held_qty = self.client.hmget(self.gate.position_key(self.strategy, intent.symbol),
                                                   ["contract", "quantity"])
            except redis.RedisError as e:
                return self._unavailable(oid, e)
            if held:
                held = held.decode() if isinstance(held, bytes) else held
                if held != contract:
                    log.warning("exit %s %s: closing held contract %s (signal bar is %s)",
                                self.strategy, intent.symbol, held, contract)
                contract = held
                intent = dataclasses.replace(intent, contract=held)  # journaled: the contract closed
                # The gate closes the whole position: so must the order.
                if held_qty is not None and int(held_qty) != intent.quantity:
                    log.warning("exit %s %s: quantity %d -> %s held", self.strategy, intent.symbol,
                                intent.quantity, int(held_qty))
                    intent = dataclasses.replace(intent, quantity=int(held_qty))
        try:
            ticker = payload.ticker_for(self.cmap, intent.symbol, contract, intent.bar_start)
        except payload.PayloadError as e:
            return self._refuse(intent, oid, now, str(e))
        if intent.kind == "entry":
            front = self.cmap.front(intent.symbol, intent.bar_start).raw_symbol
            if front != contract:
                log.warning("entry %s %s on %s but the calendar front is %s", self.strategy, intent.symbol,
                            contract, front)
        body = payload.build(intent, ticker, oid, now)
        body_json = json.dumps(body, separators=(",", ":"))
        fields = self._journal_fields(intent, oid, ticker, body_json, now, stale)
        # Paper fills are simulated (orders/fills.py): the gate books the position and its P&L at
        # the fill, and the journal keeps it beside the signal price. Live: the signal price,
        # until a broker fill is known (TradersPost reports none).
        price = intent.price
        if self.destination == "paper":
            price = fills.fill_price(self.settings, intent.symbol, intent.side, intent.kind, intent.price)
            fields["fill_price"] = repr(price)
        try:
            res = self.gate.submit(
                now=now, order_id=oid, kind=intent.kind, strategy=self.strategy, symbol=intent.symbol,
                direction=intent.direction, quantity=intent.quantity, price=price, contract=contract,
                entry_time=intent.bar_start, journal=fields,
                day_at=intent.bar_start,  # the signal bar's trading day (see portfolio/gate.py)
                destination=self.destination_key,
                deliver_now=self.destination == "paper",  # paper: the exit is delivered with its intent
            )
        except redis.RedisError as e:
            return self._unavailable(oid, e)
        if res.status != "accepted":
            log.info("order %s %s %s %s: %s", oid, self.strategy, intent.symbol, intent.action, res.reason)
            return Decision(False, f"{res.status}: {res.reason}" if res.status == "duplicate" else res.reason, oid)
        log.info("order %s %s %s %s x%d %s @ %s -> %s", oid, self.strategy, intent.symbol, intent.action,
                 intent.quantity, ticker, intent.price, self.destination)
        if res.unreplicated and self.destination == "live":
            # Fail closed (docs/orders.md, "Replicated claims"): a claim only the primary holds could
            # vanish in a failover, and the replayed bar would then claim and send the order again.
            # Nothing is sent; an entry frees its slot, an exit goes exit_failed (alert, operator).
            detail = (f"claim acknowledged by {res.replicas} of {res.wanted} replica(s) within "
                      f"{self.settings.redis.wait_timeout_ms} ms (redis.wait_replicas): NOT sent")
            self._settle(intent, oid, "failed", detail, 0)
            return Decision(False, detail, oid)
        if res.unreplicated:
            log.warning("order %s: paper claim acknowledged by %d of %d replica(s)", oid, res.replicas, res.wanted)
        if self.destination == "paper":
            try:
                journal.record_outcome(self.client, self.keys, oid, "paper", now, detail="paper journal only")
            except redis.RedisError as e:  # intent is journaled: shows as unresolved at next start
                log.error("order %s: paper outcome not journaled: %s", oid, logs.redact(str(e)))
            return Decision(True, "paper", oid)
        if intent.kind == "exit":
            self.closing.add(intent.symbol)
        self._queue.put(_Job(intent, oid, body_json.encode()))
        return Decision(True, "queued for TradersPost", oid)

    def _journal_fields(self, intent: OrderIntent, oid: str, ticker: str, body: str, now: datetime,
                        stale: bool = False) -> dict[str, str]:
        return {
            "order_id": oid, "strategy": intent.strategy, "symbol": intent.symbol, "kind": intent.kind,
            "action": intent.action, "side": intent.side, "quantity": str(intent.quantity),
            "price": repr(intent.price), "contract": intent.contract, "ticker": ticker,
            "bar_start": cme_time.iso_z(intent.bar_start), "bar_close": cme_time.iso_z(intent.bar_close),
            "late": "1" if intent.late else "0",
            "stale": "1" if stale else "0", "destination": self.destination, "signal_reason": logs.redact(intent.reason),
            "payload": logs.redact(body), "ts": cme_time.iso_z(now),
        }

    def _unavailable(self, oid: str, e: Exception) -> Decision:
        # Fail closed: nothing journaled means nothing may be sent.
        log.error("order %s not placed, portfolio gate unavailable: %s", oid, logs.redact(str(e)))
        return Decision(False, f"portfolio gate unavailable: {logs.redact(str(e))}", oid)

    def _refuse(self, intent: OrderIntent, oid: str, now: datetime, reason: str, event: str = "denied") -> Decision:
        """Refused before the gate: journaled, nothing claimed, nothing sent."""
        log.warning("order %s %s %s %s refused: %s", oid, self.strategy, intent.symbol, intent.action, reason)
        try:
            self._journal_refusal(intent, oid, now, reason, event)
        except redis.RedisError as e:
            log.error("order %s: refusal not journaled: %s", oid, logs.redact(str(e)))
        return Decision(False, reason, oid)

    def _journal_refusal(self, intent: OrderIntent, oid: str, now: datetime, reason: str, event: str) -> None:
        self.client.xadd(self.keys.orders(), {
            "event": event, "decision": "denied", "reason": logs.redact(reason), "order_id": oid,
            "strategy": intent.strategy, "symbol": intent.symbol, "kind": intent.kind, "action": intent.action,
            "bar_start": cme_time.iso_z(intent.bar_start), "ts": cme_time.iso_z(now),
        }, maxlen=journal.MAXLEN, approximate=True)

    # -- state -------------------------------------------------------------------
    def open_positions(self) -> list[Position]:
        """This strategy's open positions per the gate (restore them after a restart)."""
        out = []
        for p in self.gate.positions(self.strategy):
            if p.get("state", "open") != "open":
                continue  # its exit is claimed: the strategy is flat, the gate still counts it
            out.append(Position(
                strategy=p["strategy"], symbol=p["symbol"], side="long" if int(p["dir"]) > 0 else "short",
                quantity=int(p["quantity"]), entry_price=float(p["entry_price"]),
                entry_time=cme_time.parse_iso(p["entry_time"]), contract=p["contract"],
            ))
        return out

    def closing_positions(self) -> list[dict[str, str]]:
        """This strategy's positions whose exit is claimed but not delivered (closing, exit_failed)."""
        return [p for p in self.gate.positions(self.strategy) if p.get("state", "open") != "open"]

    def mark(self, symbol: str, price: float, when: datetime, contract: str | None = None) -> str:
        """Mark this strategy's position in ``symbol`` for the daily stop.

        ``when`` is the marking bar's start: the mark belongs to that bar's CME
        trading day, not to the (later) moment it is processed.

        Pass the bar's ``contract``: after a roll the feed prices the new front,
        and marking the old contract's position with it would book the calendar
        spread as P&L; such marks are ignored (the last good mark stays).

        Returns why this strategy's positions must be flattened now ('' = they need not):
        a ``multialpha flatten`` in scope, or the daily stop with on_daily_stop: flatten."""
        try:
            day = self.gate.mark(self.strategy, symbol, price, self.clock(), contract or "", day_at=when)
        except redis.RedisError as e:
            log.error("mark %s %s failed: %s", self.strategy, symbol, logs.redact(str(e)))
            return ""
        if day.absent:  # its exit was delivered, or an operator resolved it
            self.closing.discard(symbol)
            self.exit_failed.discard(symbol)
        if day.ignored and self._ignored_marks.get(symbol) != contract:
            self._ignored_marks[symbol] = contract
            log.warning("mark %s %s: bar contract %s is not the contract held; mark ignored",
                        self.strategy, symbol, contract)
        if day.stopped and self._stop_logged_day != day.trading_day:
            self._stop_logged_day = day.trading_day
            log.warning("daily stop loss reached for trading day %s (P&L %.2f): no new entries anywhere",
                        day.trading_day, day.pnl)
        return day.flatten
