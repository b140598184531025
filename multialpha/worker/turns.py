"""Turn order at the portfolio gate: strategies meet it in config order, minute by minute.

Every worker is its own process, so without a rule the gate sees their
entries and marks in whatever order the OS schedules them: when the last
position slot or the daily stop is contested, the winner is a race, and a
backtest (which cannot reproduce a race) would decide differently. The rule:
gate operations happen in ``(minute, config rank)`` order — all of the first
strategy's steps of minute ``T``, then the second's, ... — exactly the order
``multialpha backtest --all`` runs them in.

Mechanics. The hub announces each minute's close after publishing its bars
(``bar.minute_closed_json``). A worker reaching that notice in its own step
sequence has finished every step of minutes ``<= T`` and records ``T`` in the
turns hash (:meth:`Turns.finished`). Before its first gate operation in a step
of minute ``T``, the worker of rank ``r`` waits until every strategy ranked
before it finished ``T`` and every strategy ranked after it finished
``T - 1 min`` (:meth:`Turns.wait`). Only *live* strategies are waited for
(heartbeat state), and never longer than ``worker.turn_timeout_s``: a stuck
strategy costs the others latency, never their orders. Timeouts are counted
and logged — a non-zero count means the order was not guaranteed.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any, Callable

from multialpha import cme_time
from multialpha.keys import Keys

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
TRADING = ("live", "degraded")  # heartbeat states of a strategy that takes turns


class Turns:
    def __init__(
        self,
        client: Any,
        keys: Keys,
        strategy: str,
        order: list[str],
        timeout_s: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if strategy not in order:
            raise ValueError(f"{strategy!r} is not in the turn order {order}")
        self.client = client
        self.keys = keys
        self.strategy = strategy
        rank = order.index(strategy)
        self.before = order[:rank]
        self.after = order[rank + 1:]
        self.timeout_s = timeout_s
        self.monotonic = monotonic
        self.sleep = sleep
        self.granted_ms = -1  # the newest minute this worker already waited for
        self.waits = self.timeouts = self.errors = 0
        self.waited_s = 0.0

    def finished(self, minute: datetime) -> None:
        """Every step of minutes up to ``minute`` (a start) is done."""
        try:
            self.client.hset(self.keys.worker_turns(), self.strategy, str(cme_time.to_ms(minute)))
        except Exception as e:  # never stall trading on bookkeeping; the others time out
            self.errors += 1
            log.warning("turn record failed: %s", type(e).__name__)

    def wait(self, minute: datetime) -> bool:
        """Block until this strategy's turn in ``minute``; False when it timed out."""
        t = cme_time.to_ms(minute)
        if t <= self.granted_ms or self.timeout_s <= 0 or not (self.before or self.after):
            return True
        self.granted_ms = t
        start = self.monotonic()
        pause = 0.0005
        while True:
            try:
                if self._my_turn(t):
                    break
            except Exception as e:
                self.errors += 1
                log.warning("turn check failed (%s): going ahead", type(e).__name__)
                return False
            if self.monotonic() - start >= self.timeout_s:
                self.timeouts += 1
                log.warning("turn %s: strategies before %s did not finish within %.1fs; going ahead "
                            "(gate order not guaranteed)", cme_time.iso_z(minute), self.strategy, self.timeout_s)
                return False
            self.sleep(pause)
            pause = min(pause * 2, 0.005)
        waited = self.monotonic() - start
        if waited > 0:
            self.waits += 1
            self.waited_s += waited
        return True

    def _my_turn(self, t: int) -> bool:
        others = self.before + self.after
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(self.keys.worker_turns(), others)
        for s in others:
            pipe.hget(self.keys.heartbeat(f"worker.{s}"), "state")
        done, *states = pipe.execute()
        for i, s in enumerate(others):
            state = states[i]
            if (state.decode() if isinstance(state, bytes) else state) not in TRADING:
                continue  # not trading (down, warming, stopped): not waited for
            need = t if i < len(self.before) else t - MINUTE_MS
            if done[i] is None or int(done[i]) < need:
                return False
        return True

    def counters(self) -> dict[str, float]:
        return {"turn_waits": self.waits, "turn_timeouts": self.timeouts, "turn_errors": self.errors,
                "turn_wait_s": round(self.waited_s, 3)}
