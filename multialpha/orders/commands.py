"""What an operator does with orders: `multialpha flatten` and `multialpha orders
list|show|ack|retry|export` (the click wiring is in multialpha/cli_orders.py).

Everything goes through the APIs the workers use (journal, Gate, sender), never a
hand-edited hash, so the gate's invariants (open set, exit_failed set, day P&L) hold
whatever an operator does. The questions at 3 a.m. are: what happened to this order
(`show`), does the broker hold the position (the broker's own screen), and how do I
make the book agree with the broker (`retry` resends a failed exit, `ack` records what
the broker says).
"""

from __future__ import annotations

import json
import os
import random
import time
from datetime import datetime
from typing import Callable, Mapping

import redis

from multialpha import cme_time, heartbeat
from multialpha.config import Settings
from multialpha.keys import Keys
from multialpha.orders import journal
from multialpha.orders.review import (  # noqa: F401 - the CLI's and tests' names for the read side
    COLUMNS, STATES, CommandError, _num, _pos_line, _row, _states, export, find, list_orders, render_list,
    render_show, resolve, show,
)
from multialpha.portfolio import control
from multialpha.portfolio.gate import Gate

# -- flatten ----------------------------------------------------------------------------


def flatten(settings: Settings, client: redis.Redis, strategy: str | None, reason: str = "",
            clock: Callable[[], datetime] = cme_time.utcnow) -> list[str]:
    text = control.flatten(settings, client, strategy, reason, clock)
    positions = Gate(settings, client).positions(strategy)
    scope = f"strategy {strategy}" if strategy else "ALL strategies"
    lines = [
        f"FLATTEN {scope} (namespace {settings.redis.namespace!r}): {text}",
        "Every open position in scope is exited through its strategy's normal order path: a running",
        "worker does it at once (at the close of the position's current minute bar), a stopped one on",
        "its first bar after it starts. Entries in scope stay refused (reduce-only) until `multialpha resume`.",
    ]
    lines.append(f"Positions in scope now ({len(positions)}):" if positions else "No positions in scope now.")
    for p in positions:
        lines.append(f"  {_pos_line(p)}")
        if p.get("state") == "exit_failed":  # flatten cannot help there: the exit was sent already
            oid = p.get("exit_order_id", "")
            lines.append(f"    not resent by flatten: check the broker, then `multialpha orders retry {oid}` "
                         f"or `multialpha orders ack {oid}`")
    return lines


# -- acknowledge, retry ---------------------------------------------------------------------


def _worker_alive(client: redis.Redis, keys: Keys, strategy: str) -> bool:
    return heartbeat.read(client, keys, f"worker.{strategy}") is not None


def _exit_bar(pos: Mapping[str, str], now: datetime) -> datetime:
    """The exit signal's bar: its P&L belongs to that trading day, however late it is resolved."""
    return cme_time.parse_iso(pos["exit_time"]) if pos.get("exit_time") else now


def _reduce_only_line(gate: Gate, strategy: str) -> str:
    ro = gate.reduce_only()
    why = ro.get(strategy) or ro.get("*")
    return f"{strategy} is still reduce-only: {why}" if why else f"{strategy} has no reduce-only hold left"


def ack(settings: Settings, client: redis.Redis, text: str, note: str = "", price: float | None = None,
        not_filled: bool = False, clock: Callable[[], datetime] = cme_time.utcnow) -> list[str]:
    """A human has checked the broker: make the book say what the broker says, then take the
    order off the review list."""
    keys, gate = Keys(settings.redis.namespace), Gate(settings, client)
    oid = resolve(client, keys, text)
    st = _states(client, keys, [oid])[oid]
    if not client.sismember(keys.orders_pending(), oid):
        why = f"state {st['state']}" if st.get("state") else "no order with this id was claimed by the gate"
        raise CommandError(f"order {oid} is not on the review list ({why}): nothing to acknowledge")
    kind, strategy, symbol = st.get("kind", ""), st.get("strategy", ""), st.get("symbol", "")
    now, pos = clock(), gate.position(strategy, symbol)
    # Still in its worker's hands (an entry in flight, an exit's position still `closing`): the
    # outcome is on its way, and acting now would race the sender.
    mine = pos is not None and pos.get("exit_order_id") == oid
    busy = (mine and pos.get("state") == "closing") if kind == "exit" else st.get("state") in journal.IN_FLIGHT
    if busy and _worker_alive(client, keys, strategy):
        raise CommandError(f"{kind} {oid} is still being delivered by worker.{strategy}: wait for its outcome "
                           f"(`multialpha orders show {oid}`)")
    if kind == "exit":
        if not_filled:
            raise CommandError("--not-filled is for entries: an exit that never reached the broker is "
                               f"resent with `multialpha orders retry {oid}`")
        if pos and mine:  # exit_failed, or closing with no worker left
            at, src = (price, "--price") if price is not None else (float(pos["mark"]), "last mark")
            day_at = _exit_bar(pos, now)
            realized = gate.exit_done(strategy, symbol, oid, now, price=at, day_at=day_at)
            if realized is None:
                raise CommandError(f"the {strategy} {symbol} position changed meanwhile; run the command again")
            done = (f"broker flat: {strategy} {symbol} closed on the book at {_num(at)} ({src}), realised P&L "
                    f"{realized:+,.2f} booked to trading day {cme_time.trading_day(day_at)}")
        else:
            done = f"no position of {strategy} {symbol} waits on this exit: nothing to close"
    elif price is not None:
        raise CommandError("--price is for exits (the price the broker closed the position at)")
    elif not_filled:
        done = (f"not filled: {strategy} {symbol} slot freed (no position on the book)"
                if gate.release(strategy, symbol, oid, now) else
                f"not filled: no position of {strategy} {symbol} held this entry")
    else:
        done = (f"filled: the {strategy} {symbol} position stays on the book"
                if pos is not None and pos.get("order_id") == oid else
                f"filled: no position of {strategy} {symbol} holds this entry any more (already exited)")
    if not journal.acknowledge(client, keys, oid, "; ".join(p for p in (done, note) if p), now):
        raise CommandError(f"order {oid} left the review list meanwhile")
    return [f"acknowledged {oid} ({kind} {strategy} {symbol})", done, _reduce_only_line(gate, strategy)]


def retry(settings: Settings, client: redis.Redis, text: str, *, clock: Callable[[], datetime] = cme_time.utcnow,
          sleep: Callable[[float], None] = time.sleep, rand: Callable[[], float] = random.random,
          environ: Mapping[str, str] | None = None, echo: Callable[[str], None] = print) -> tuple[bool, list[str]]:
    """Resend a failed EXIT's journaled payload, byte for byte. Exits only: a second exit of a
    flat position is a no-op, a second entry could double a position."""
    import requests

    from multialpha.orders.ratelimit import RateLimiter
    from multialpha.orders.webhook_url import _check_url, _register_url
    from multialpha.orders.sender import Attempt, deliver

    keys, gate = Keys(settings.redis.namespace), Gate(settings, client)
    oid, events, st = find(client, keys, text)
    kind, strategy, symbol = st.get("kind", ""), st.get("strategy", ""), st.get("symbol", "")
    if not st:
        raise CommandError(f"order {oid} was refused before the gate: nothing was sent, nothing to resend")
    if kind != "exit":
        raise CommandError(f"{oid} is an entry: entries are never resent: check the broker, then "
                           f"`multialpha orders ack {oid}` (add --not-filled if it never arrived)")
    pos = gate.position(strategy, symbol)
    if not pos or pos.get("exit_order_id") != oid:
        raise CommandError(f"exit {oid}: no position of {strategy} {symbol} waits on it "
                           f"(order state {st.get('state', '?')}): nothing to resend")
    if pos.get("state") != "exit_failed":
        why = (f"worker.{strategy} is delivering it: wait for its outcome" if _worker_alive(client, keys, strategy)
               else f"worker.{strategy} is not running: start it (it marks the exit failed) and retry, or "
                    f"`multialpha orders ack {oid}` if the broker is flat")
        raise CommandError(f"exit {oid} is {pos.get('state')}, not exit_failed: {why}")
    env = os.environ if environ is None else environ
    var = settings.webhook_env(strategy)
    if settings.order_destination(strategy, env) != "live":
        raise CommandError(f"{strategy}'s orders are paper from here (orders.mode {settings.orders.mode}, ${var} "
                           f"{'set' if env.get(var) else 'unset'}): nothing can be sent; check the broker, "
                           f"then `multialpha orders ack {oid}`")
    url = env[var]
    _register_url(url)  # before anything can print it
    try:
        _check_url(url, var)
    except ValueError as e:
        raise CommandError(str(e)) from None
    intent = next((e for e in events if e.get("event") == "intent"), {})
    try:
        json.loads(intent["payload"])
    except (KeyError, ValueError):
        raise CommandError(f"exit {oid} has no journaled payload to resend") from None
    if not gate.exit_retry(strategy, symbol, oid, clock()):
        raise CommandError(f"the {strategy} {symbol} position changed meanwhile; run the command again")

    def on_attempt(a: Attempt) -> None:
        journal.record_attempt(client, keys, oid, clock(), attempt=a.number, by="operator retry",
                               status="" if a.status is None else a.status, error=a.error, delivered=a.delivered,
                               retry_in_s="" if a.retry_in_s is None else f"{a.retry_in_s:.3f}", response=a.response)
        echo(f"attempt {a.number}: {f'HTTP {a.status}' if a.status is not None else a.error}, delivered "
             f"{a.delivered}" + (f", retrying in {a.retry_in_s:.2f}s" if a.retry_in_s is not None else ""))

    session = requests.Session()
    limiter = RateLimiter(client, keys, settings.orders.rate_per_minute, settings.orders.rate_per_hour, clock=clock)
    try:
        res = deliver(session, url, intent["payload"].encode(), settings.orders, idempotent=True, clock=clock,
                      sleep=sleep, rand=rand, limiter=limiter, on_attempt=on_attempt)
        outcome, detail, tries = ("delivered" if res.result == "sent" else res.result), res.detail, len(res.attempts)
    except BaseException:
        # Ctrl-C or Redis gone mid-way: the exit must not stay `closing` with nobody delivering
        # it, and a POST may have gone out: exit_failed again, a human looks again.
        _failed(gate, client, keys, oid, strategy, symbol, clock(), "ambiguous", "operator retry interrupted", 0)
        raise
    finally:
        session.close()
    if outcome != "delivered":
        _failed(gate, client, keys, oid, strategy, symbol, clock(), outcome, detail, tries)
        return False, [f"exit {oid} NOT delivered ({outcome}: {detail}): {strategy} {symbol} is exit_failed again "
                       f"and {strategy} stays reduce-only. Check the broker; `multialpha orders ack {oid}` if it "
                       "is flat there, else retry later or close it at the broker and ack"]
    now = clock()
    realized = gate.exit_done(strategy, symbol, oid, now, day_at=_exit_bar(pos, now))
    # Acknowledge first: the outcome written after it leaves the order `delivered`, off the list.
    journal.acknowledge(client, keys, oid, f"resent by operator: delivered after {tries} attempt(s)", now)
    journal.record_outcome(client, keys, oid, "delivered", now, review=False, detail=detail, attempts=tries,
                           kind="exit", strategy=strategy, symbol=symbol, by="operator retry")
    booked = "" if realized is None else f", realised P&L {realized:+,.2f}"
    return True, [f"exit {oid} delivered: {strategy} {symbol} closed on the book{booked}",
                  _reduce_only_line(gate, strategy)]


def _failed(gate: Gate, client: redis.Redis, keys: Keys, oid: str, strategy: str, symbol: str, now: datetime,
            outcome: str, detail: str, tries: int) -> None:
    gate.exit_failed(strategy, symbol, oid, now)
    journal.record_outcome(client, keys, oid, outcome, now, review=True, detail=detail, attempts=tries,
                           kind="exit", strategy=strategy, symbol=symbol, by="operator retry")
    journal.record_exit_failed(client, keys, oid, now, strategy=strategy, symbol=symbol, result=outcome,
                               detail=detail, by="operator retry")


