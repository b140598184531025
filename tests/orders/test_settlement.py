"""A kill -9 at every Redis write of the settle step (orders/settlement.py), after the broker answered.

The journal's outcome and the gate's position must change together: a restart that finds an exit
``delivered`` in the journal but its position still ``closing`` at the gate refuses every later
entry of that strategy ("position already open") with nothing on the review list, silently and for
ever (issue 22: `kill -9` of the supervisor, sma_b never traded GC again); a rejected entry whose
slot was not freed comes back as a position the broker never opened.

The kill is simulated in process, at a point the test chooses (no timing): the old router's Redis
connection lets ``n`` more commands reach Redis once the receiver has the order, then none (a killed
process writes nothing more). Then a new router starts on the same Redis, as a restarted worker does.
Every kill point must leave either the order on the review list (fail closed: an operator resolves
it) or the journal and the book in agreement. Real redis-server, real loopback receiver.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from multialpha.keys import Keys
from multialpha.orders import journal
from multialpha.orders.router import OrderRouter
from multialpha.portfolio.gate import Gate
from tests.orders.support import WEBHOOK_ENVS, Reply, intent, webhook_env


class _Kill:
    """How many more commands the doomed process gets to send (None: no kill planned)."""

    def __init__(self) -> None:
        self.left: int | None = None


def _doomed_client(server: Any, kill: _Kill) -> redis.Redis:
    class Doomed(redis.Connection):
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            if kill.left is not None:
                if kill.left <= 0:
                    raise redis.ConnectionError("process killed")
                kill.left -= 1
            super().send_packed_command(command, check_health)

    pool = redis.ConnectionPool(connection_class=Doomed, host=server.host, port=server.port,
                                decode_responses=True, retry=Retry(NoBackoff(), 0))
    return redis.Redis(connection_pool=pool)


def _settings(settings_for: Any) -> Any:
    """Live orders; a read timeout far above the moment the test holds the answer (one try)."""
    return settings_for(MULTIALPHA__ORDERS__MODE="live", MULTIALPHA__ORDERS__TIMEOUT_S="30",
                        **{env: "https://example.invalid/" + env for env in WEBHOOK_ENVS})


def _wait_for(cond: Any) -> None:
    """A condition another thread makes true (bounded; not a timing assertion)."""
    deadline = time.monotonic() + 10
    while not cond():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.002)


def _killed_while_settling(s: Any, server: Any, clock: Any, receiver: Any, order: Any, reply: Reply,
                           n: int) -> str:
    """Submit ``order`` through a router that is killed after ``n`` more commands once the receiver
    holds the order (the receiver answers ``reply`` only once the kill is armed). Its order id."""
    kill = _Kill()
    doomed = _doomed_client(server, kill)
    r = OrderRouter(s, doomed, "breakout", clock=clock, environ=webhook_env(receiver.url),
                    sleep=clock.sleep, rand=lambda: 0.5)
    try:
        receiver.script = [Reply(reply.status, body=reply.body, hang=True)]
        receiver.release.clear()
        d = r.submit(order)
        assert d.accepted, d
        _wait_for(lambda: d.order_id in receiver.order_ids())
        kill.left = n  # the broker has it; from here on the process may die at any command
        receiver.release.set()
        assert r.wait_idle(10)
    finally:
        kill.left = 0
        r.close(timeout=1)
        doomed.close()
    return d.order_id


# n = 3 commands is the whole settle (the attempt, then the settle's own sends): the sweep must
# reach a kill point past it, or it would only ever see the review branch.
@pytest.mark.parametrize("n", range(4))
def test_exit_delivered_then_killed_never_leaves_the_strategy_blocked(settings_for, redis_server, redis_client,
                                                                       clock, receiver, n):
    s = _settings(settings_for)
    setup = OrderRouter(s, redis_client, "breakout", clock=clock, environ=webhook_env(receiver.url))
    assert setup.submit(intent(price=6000.0)).accepted and setup.wait_idle(5)
    setup.close()
    oid = _killed_while_settling(s, redis_server, clock, receiver, intent(kind="exit", price=6010.0), Reply(200), n)

    restarted = OrderRouter(s, redis_client, "breakout", clock=clock, environ=webhook_env(receiver.url))
    try:
        assert n < 3 or not restarted.needs_review
        if oid in {d["order_id"] for d in restarted.needs_review}:
            # Fail closed: killed before the settle's transaction. Not re-sent, on the review list
            # (`multialpha orders ack|retry`), the position held and the strategy reduce-only.
            assert Gate(s, redis_client).position("breakout", "ES")["state"] == "exit_failed"
            assert "breakout" in Gate(s, redis_client).reduce_only()
            return
        assert redis_client.hget(restarted.keys.order_state(oid), "state") == "delivered"
        # The journal says the broker has the exit: the book must agree, or the strategy is stuck.
        assert Gate(s, redis_client).position("breakout", "ES") is None
        assert restarted.open_positions() == [] and restarted.closing_positions() == []
        # A new signal (a later bar than the first entry's: another order id) is taken.
        again = restarted.submit(intent(price=6011.0, bar_start=clock() - timedelta(minutes=2)))
        assert again.accepted, again.reason
    finally:
        restarted.close(timeout=5)


@pytest.mark.parametrize("n", range(4))
def test_entry_rejected_then_killed_never_leaves_a_phantom_position(settings_for, redis_server, redis_client,
                                                                     clock, receiver, n):
    s = _settings(settings_for)
    refused = Reply(200, body='{"success": false, "message": "not allowed"}')
    oid = _killed_while_settling(s, redis_server, clock, receiver, intent(price=6000.0), refused, n)

    restarted = OrderRouter(s, redis_client, "breakout", clock=clock, environ=webhook_env(receiver.url))
    try:
        assert n < 3 or not restarted.needs_review
        if oid in {d["order_id"] for d in restarted.needs_review}:
            # Fail closed: an operator checks the broker (`ack` / `ack --not-filled`); until then
            # the slot stays counted (state unresolved, never re-sent).
            assert redis_client.hget(restarted.keys.order_state(oid), "state") == "unresolved"
            assert Gate(s, redis_client).position("breakout", "ES") is not None
            return
        assert redis_client.hget(restarted.keys.order_state(oid), "state") == "rejected"
        # Nothing was placed: a position on the book would be restored into the strategy, which
        # would then send an exit for a position the broker never opened.
        assert restarted.open_positions() == []
        assert Gate(s, redis_client).position("breakout", "ES") is None
        assert oid not in {d["order_id"] for d in journal.pending_orders(redis_client, restarted.keys)}
    finally:
        restarted.close(timeout=5)


def _claimed_then_journaled(s: Any, gate: Gate, client: redis.Redis, clock: Any, order: Any, outcome: str) -> None:
    """What an older version's settle could leave: ``order`` claimed at the gate (ES, breakout) and
    its journal outcome written, the gate's move never made."""
    res = gate.submit(now=clock(), order_id=order.order_id, kind=order.kind, strategy="breakout", symbol="ES",
                      direction=order.direction, quantity=1, price=order.price, contract="ESZ5",
                      entry_time=order.bar_start,
                      journal={"order_id": order.order_id, "strategy": "breakout", "symbol": "ES", "kind": order.kind})
    assert res.status == "accepted"
    journal.record_outcome(client, Keys(s.redis.namespace), order.order_id, outcome, clock(), review=False)


def test_a_delivered_exit_left_closing_by_an_older_version_is_finished_at_restart(settings_for, redis_client, clock,
                                                                                   receiver, caplog):
    """Redis state written before the fix (outcome journaled, the process killed before the gate's
    exit_done): the next router start takes the position off the book, and says so."""
    s = _settings(settings_for)
    r = OrderRouter(s, redis_client, "breakout", clock=clock, environ=webhook_env(receiver.url))
    try:
        assert r.submit(intent(price=6000.0)).accepted and r.wait_idle(5)
    finally:
        r.close()
    gate = Gate(s, redis_client)
    # The old settle step, killed between its two writes: the gate claims the exit, the journal
    # gets its outcome, exit_done never runs.
    _claimed_then_journaled(s, gate, redis_client, clock, intent(kind="exit", price=6010.0), "delivered")
    assert gate.position("breakout", "ES")["state"] == "closing"

    restarted = OrderRouter(s, redis_client, "breakout", clock=clock, environ=webhook_env(receiver.url))
    try:
        assert gate.position("breakout", "ES") is None
        assert restarted.needs_review == [] and "breakout" not in gate.reduce_only()
        assert "was delivered but its position was still closing" in caplog.text
        assert restarted.submit(intent(price=6011.0, bar_start=clock() - timedelta(minutes=2))).accepted
    finally:
        restarted.close(timeout=5)


def test_a_rejected_entry_left_open_by_an_older_version_is_released_at_restart(settings_for, redis_client, clock,
                                                                                receiver, caplog):
    """The entry half of the same split: the journal has the entry rejected, the gate still holds
    its slot as an open position. The next router start frees it, and says so; nothing is restored
    into the strategy (it would later exit a position the broker never opened)."""
    s = _settings(settings_for)
    gate = Gate(s, redis_client)
    _claimed_then_journaled(s, gate, redis_client, clock, intent(price=6000.0), "rejected")
    assert gate.position("breakout", "ES")["state"] == "open"

    restarted = OrderRouter(s, redis_client, "breakout", clock=clock, environ=webhook_env(receiver.url))
    try:
        assert gate.position("breakout", "ES") is None and restarted.open_positions() == []
        assert restarted.needs_review == []
        assert "was rejected but its position was still open" in caplog.text
    finally:
        restarted.close(timeout=5)


def test_scripts_lost_between_the_check_and_exec_leave_journal_and_book_together(settings_for, redis_client, clock,
                                                                                   receiver, monkeypatch):
    """redis-py checks a pipeline's scripts before its MULTI; a server that loses them in between (a
    restart, a failover, here SCRIPT FLUSH at that instant) must not run the journal's writes of the
    settle without the gate's move: the settle sends the gate script's text (EVAL)."""
    s = _settings(settings_for)
    r = OrderRouter(s, redis_client, "breakout", clock=clock, environ=webhook_env(receiver.url))
    try:
        assert r.submit(intent(price=6000.0)).accepted and r.wait_idle(5)
        original = redis.client.Pipeline.load_scripts

        def load_then_lose(pipe: Any) -> None:
            original(pipe)
            redis_client.script_flush()

        monkeypatch.setattr(redis.client.Pipeline, "load_scripts", load_then_lose)
        x = r.submit(intent(kind="exit", price=6010.0))
        assert x.accepted and r.wait_idle(5)
    finally:
        r.close()
    assert redis_client.hget(Keys(s.redis.namespace).order_state(x.order_id), "state") == "delivered"
    assert Gate(s, redis_client).position("breakout", "ES") is None
