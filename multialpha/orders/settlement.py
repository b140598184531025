"""The router's second half: the sender thread, and what it books when an order settles.

``OrderRouter.submit`` (orders/router.py) claims an order at the gate and journals its
intent on the bar path; a live order is then handed to this worker's one FIFO sender
thread. Everything after that hand-off lives here: delivering each queued job
(orders/sender.py does the HTTP and retries), settling its outcome in the journal and
the gate (an entry freed, an exit delivered or ``exit_failed``), and the exit lifecycle
the worker reads back (``closing``/``exit_failed``, ``still_holds``, ``_await_exit``),
plus draining and stopping the thread (``pending``, ``wait_idle``, ``close``).

Separate from router.py because it is a different concern and runs on a different
thread: the submit path must stay fast and never waits on HTTP, while this side owns
the slow, failure-heavy bookkeeping. ``Settlement`` is a mixin: ``OrderRouter``
inherits it and sets every attribute annotated below in its ``__init__``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

import redis

from multialpha import logs
from multialpha.config import Settings
from multialpha.keys import Keys
from multialpha.orders import journal
from multialpha.orders.intent import OrderIntent
from multialpha.portfolio.gate import Gate

# The router's logger: these lines were router.py's, operators filter on that name.
log = logging.getLogger("multialpha.orders.router")


@dataclass(frozen=True)
class _Job:
    intent: OrderIntent
    order_id: str
    body: bytes


_STOP = object()


class Settlement:
    """Sender thread + settle bookkeeping of one strategy's :class:`OrderRouter`."""

    # Set by OrderRouter.__init__ (orders/router.py).
    settings: Settings
    client: redis.Redis
    strategy: str
    clock: Callable[[], datetime]
    keys: Keys
    gate: Gate
    max_age: timedelta
    closing: set[str]
    exit_failed: set[str]
    _settled: threading.Condition
    _stop: threading.Event
    _sleep: Callable[[float], Any]
    _rand: Callable[[], float]
    _closed: bool
    _url: str
    _thread: threading.Thread | None
    _queue: "queue.Queue[object]"
    _session: Any  # requests.Session, live only
    _limiter: Any  # orders.ratelimit.RateLimiter, live only

    def _await_exit(self, symbol: str) -> None:
        """Wait (bounded by orders.exit_wait_s) for this strategy's in-flight exit in ``symbol``.

        The FIFO sender delivers it before anything queued later; whether it is delivered in
        time must not decide a re-entry by thread timing. Past the bound the gate decides:
        the position is still closing, so the entry is refused."""
        deadline = time.monotonic() + self.settings.orders.exit_wait_s
        with self._settled:
            while symbol in self.closing and self._thread is not None and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning("entry %s %s: its exit is still being delivered after %gs; the gate decides",
                                self.strategy, symbol, self.settings.orders.exit_wait_s)
                    return
                self._settled.wait(left)

    # -- the sender thread ----------------------------------------------------------
    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                self._queue.task_done()
                return
            assert isinstance(job, _Job)
            try:
                self._send(job)
            except Exception as e:  # noqa: BLE001 - the thread must survive anything
                log.error("order %s: sender error: %s", job.order_id, logs.redact(f"{type(e).__name__}: {e}"))
                try:  # we cannot know how far it got: never resent, a human checks
                    self._settle(job.intent, job.order_id, "ambiguous", f"sender error: {type(e).__name__}: {e}", 0)
                except redis.RedisError:
                    pass  # stays pending -> reported as unresolved at next start
            finally:
                self._queue.task_done()

    def _send(self, job: _Job) -> None:
        from multialpha.orders.sender import deliver

        intent = job.intent

        def on_attempt(a: object) -> None:
            from multialpha.orders.sender import Attempt

            assert isinstance(a, Attempt)
            journal.record_attempt(self.client, self.keys, job.order_id, self.clock(), attempt=a.number,
                                   status="" if a.status is None else a.status, error=a.error,
                                   delivered=a.delivered, retry_in_s="" if a.retry_in_s is None else f"{a.retry_in_s:.3f}",
                                   response=a.response)
            if a.status is None or a.status >= 300:
                log.warning("order %s attempt %d: %s%s", job.order_id, a.number,
                            f"HTTP {a.status}" if a.status is not None else a.error,
                            f", retry in {a.retry_in_s:.2f}s" if a.retry_in_s is not None else "")

        # An entry is worth sending only while its signal is fresh (rate-limit waits included);
        # an exit is sent however late: a missing exit is open risk.
        deadline = intent.bar_close + self.max_age if intent.kind == "entry" else None
        result = deliver(self._session, self._url, job.body, self.settings.orders,
                         idempotent=intent.kind == "exit", clock=self.clock, sleep=self._sleep, rand=self._rand,
                         limiter=self._limiter, on_attempt=on_attempt, should_stop=self._stop.is_set,
                         deadline=deadline)
        self._settle(intent, job.order_id, result.result, result.detail, len(result.attempts),
                     result.attempts[-1].response if result.attempts else "")

    def _settle(self, intent: OrderIntent, oid: str, result: str, detail: str, attempts: int,
                response: str = "") -> None:
        """Book what delivery found out: the journal's outcome and the gate's position.

        - delivered: an exit's position leaves the book now, its P&L booked;
        - an entry that holds no position (rejected, expired, failed with nothing sent,
          abandoned before any try) frees its slot;
        - an ambiguous entry stays counted and listed for review: never resent;
        - an exit that was not delivered, for whatever reason, is ``exit_failed``: the
          position stays counted and marked, the strategy goes reduce-only, and an
          operator resolves it (``multialpha orders retry|ack``).

        The outcome and the position's move are ONE transaction (MULTI/EXEC; Redis's AOF replays
        a transaction whole or not at all). Written one after the other, a kill -9 between them
        (issue 22: the supervisor killed while an exit settled) left the journal saying
        ``delivered`` and the gate still ``closing``: nothing on the review list, and every later
        entry of the strategy refused as "position already open", silently, for ever; a rejected
        entry's slot kept came back at restart as a position the broker never opened. Now a kill
        leaves both written, or neither (the order stays pending and is ``unresolved`` for review
        at the next start)."""
        now = self.clock()
        outcome = "delivered" if result == "sent" else result
        exit_failed = intent.kind == "exit" and outcome != "delivered"
        review = exit_failed or outcome in ("ambiguous", "unresolved")
        # The broker's answer is logged first: should the transaction fail (Redis gone), the log
        # is the operator's only record of it.
        if outcome == "delivered":
            log.info("order %s delivered (%d attempt%s)", oid, attempts, "" if attempts == 1 else "s")
        elif outcome == "rejected":
            log.error("order %s REJECTED by TradersPost: %s %s", oid, detail, response)
        elif outcome == "expired":
            log.warning("order %s expired before it could be sent (orders.max_age_s %g): nothing sent",
                        oid, self.settings.orders.max_age_s)
        else:
            log.error("order %s %s after %d attempt(s): %s; NEEDS REVIEW (check the broker)",
                      oid, outcome, attempts, detail)
        pipe = self.client.pipeline(transaction=True)
        journal.queue_outcome(pipe, self.keys, oid, outcome, now, review=review, detail=detail,
                              attempts=attempts, kind=intent.kind, strategy=self.strategy, symbol=intent.symbol)
        if intent.kind == "entry":
            if outcome in journal.ENTRY_RELEASED:
                self.gate.queue_settle(pipe, "release", self.strategy, intent.symbol, oid, now)
        elif outcome == "delivered":
            self.gate.queue_settle(pipe, "exit_done", self.strategy, intent.symbol, oid, now, day_at=intent.bar_start)
        else:
            self.gate.queue_settle(pipe, "exit_failed", self.strategy, intent.symbol, oid, now)
            journal.queue_exit_failed(pipe, self.keys, oid, now, strategy=self.strategy, symbol=intent.symbol,
                                      result=outcome, detail=detail)
        pipe.execute()
        if intent.kind == "entry":
            return
        if outcome == "delivered":
            self._exit_settled(intent.symbol)
            return
        self._exit_settled(intent.symbol, failed=True)
        log.critical("EXIT FAILED %s %s (order %s, %s): the broker may still hold the position; %s is "
                     "reduce-only until `multialpha orders retry %s` or `ack %s`", self.strategy, intent.symbol,
                     oid, outcome, self.strategy, oid, oid)

    def _exit_settled(self, symbol: str, failed: bool = False) -> None:
        with self._settled:
            self.closing.discard(symbol)
            if failed:
                self.exit_failed.add(symbol)
            self._settled.notify_all()

    def still_holds(self, symbol: str) -> bool:
        """The strategy no longer manages ``symbol``'s position, but it is still on the book: keep
        marking it. (Called per bar: two set lookups, no set built.)"""
        return symbol in self.closing or symbol in self.exit_failed

    def pending(self) -> int:
        """Orders handed to the sender thread and not finished yet."""
        return self._queue.unfinished_tasks if self._thread else 0

    def wait_idle(self, timeout: float) -> bool:
        """Block until the sender has finished every queued order (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Finish queued orders (up to ``timeout``), then stop; leftovers are journaled as abandoned."""
        if self._closed:
            return
        self._closed = True
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(self.settings.orders.timeout_s + 1 if timeout is None else timeout)
        if self._thread.is_alive():
            self._stop.set()  # interrupts backoff sleeps; deliver stops before its next attempt
            self._thread.join(self.settings.orders.timeout_s + 1)
        self._session.close()
