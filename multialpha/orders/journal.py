"""The outbox journal: Redis stream ``Keys.orders()`` plus one state hash per order.

The gate script writes the ``intent`` entry atomically with the claim, BEFORE
anything is sent. The sender then appends one ``attempt`` entry per HTTP try
and a final ``outcome``. An order whose intent has no final outcome (the
process died in between) stays in ``Keys.orders_pending()`` and is reported by
:func:`pending_review` at the next start — it is never re-sent automatically,
because we cannot know whether the broker got it.

Nothing written here contains the webhook URL: values pass through
:func:`multialpha.logs.redact` first.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import redis

from multialpha import cme_time, logs
from multialpha.keys import Keys

log = logging.getLogger(__name__)

MAXLEN = 1_000_000
# The lifecycle (docs/orders.md): intent -> claimed -> sending -> delivered | rejected |
# ambiguous | expired | failed | abandoned; paper orders go claimed -> paper.
# Outcomes after which nothing is left to do (for an entry; a failed exit always needs a human).
FINAL = {"delivered", "paper", "rejected", "expired"}
# Outcomes a human must look at (did the broker get it or not?).
REVIEW = {"failed", "ambiguous", "unresolved", "abandoned"}
# Outcomes of an ENTRY after which it holds no position: the gate frees its slot and refunds
# its commission (orders/settlement.py). Status, report and verify read the journal by it.
ENTRY_RELEASED = frozenset({"rejected", "expired", "failed", "abandoned"})
# States with no outcome yet: the process that owned them died -> unresolved at next start.
IN_FLIGHT = ("claimed", "sending")


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _clean(fields: dict[str, Any]) -> dict[str, str]:
    return {k: logs.redact("" if v is None else str(v)) for k, v in fields.items()}


def record_attempt(client: redis.Redis, keys: Keys, order_id: str, now: datetime, **fields: Any) -> None:
    pipe = client.pipeline(transaction=True)
    pipe.xadd(keys.orders(), _clean({"event": "attempt", "order_id": order_id, "ts": cme_time.iso_z(now), **fields}),
              maxlen=MAXLEN, approximate=True)
    pipe.hincrby(keys.order_state(order_id), "attempts", 1)
    pipe.hset(keys.order_state(order_id), mapping=_clean({"state": "sending", "updated": cme_time.iso_z(now),
                                                           "last_status": fields.get("status", "")}))
    pipe.execute()


def record_outcome(client: redis.Redis, keys: Keys, order_id: str, result: str, now: datetime,
                   review: bool | None = None, **fields: Any) -> None:
    """Final word on an order; review outcomes stay in the pending set for status.

    ``review`` forces the choice (e.g. a rejected EXIT: the broker may still hold
    the position, so a human must look even though nothing is left to retry)."""
    pipe = client.pipeline(transaction=True)
    queue_outcome(pipe, keys, order_id, result, now, review, **fields)
    pipe.execute()


def queue_outcome(pipe: Any, keys: Keys, order_id: str, result: str, now: datetime,
                  review: bool | None = None, **fields: Any) -> None:
    """:func:`record_outcome`'s writes, queued on ``pipe`` (a MULTI the caller executes): the sender
    settles an order's outcome and its position in one transaction (orders/settlement.py)."""
    pipe.xadd(keys.orders(), _clean({"event": "outcome", "order_id": order_id, "result": result,
                                     "ts": cme_time.iso_z(now), **fields}), maxlen=MAXLEN, approximate=True)
    pipe.hset(keys.order_state(order_id), mapping=_clean({"state": result, "updated": cme_time.iso_z(now),
                                                           "detail": fields.get("detail", "")}))
    needs_review = (result not in FINAL) if review is None else review
    if needs_review:
        pipe.sadd(keys.orders_pending(), order_id)
    else:
        pipe.srem(keys.orders_pending(), order_id)


def record_exit_failed(client: redis.Redis, keys: Keys, order_id: str, now: datetime, **fields: Any) -> None:
    """An exit that was not delivered: journal it and raise an event (status, alerts)."""
    pipe = client.pipeline(transaction=True)
    queue_exit_failed(pipe, keys, order_id, now, **fields)
    pipe.execute()


def queue_exit_failed(pipe: Any, keys: Keys, order_id: str, now: datetime, **fields: Any) -> None:
    """:func:`record_exit_failed`'s writes, queued on ``pipe`` (see :func:`queue_outcome`)."""
    doc = _clean({"event": "exit_failed", "order_id": order_id, "ts": cme_time.iso_z(now), **fields})
    pipe.xadd(keys.orders(), doc, maxlen=MAXLEN, approximate=True)
    pipe.xadd(keys.events(), {"type": "exit_failed", **doc}, maxlen=10_000, approximate=True)


def pending_orders(client: redis.Redis, keys: Keys, strategy: str | None = None) -> list[dict[str, str]]:
    """Orders journaled without a final outcome (in flight, or needing review)."""
    ids = sorted(_s(i) for i in client.smembers(keys.orders_pending()))
    pipe = client.pipeline(transaction=False)
    for oid in ids:
        pipe.hgetall(keys.order_state(oid))
    out = []
    for oid, raw in zip(ids, pipe.execute()):
        doc = {_s(k): _s(v) for k, v in (raw or {}).items()}
        if strategy is not None and doc.get("strategy") != strategy:
            continue
        out.append({"order_id": oid, **doc})
    return out


def pending_review(client: redis.Redis, keys: Keys, strategy: str, now: datetime | None = None) -> list[dict[str, str]]:
    """Call at worker start, BEFORE submitting anything: this strategy's orders
    with an intent but no outcome are marked ``unresolved`` (journaled, logged,
    shown by status) and returned. They are not re-sent."""
    now = now or cme_time.utcnow()
    found = pending_orders(client, keys, strategy)
    for doc in found:
        if doc.get("state") in IN_FLIGHT:
            record_outcome(client, keys, doc["order_id"], "unresolved", now,
                           detail=f"no outcome after restart (last state {doc.get('state')}); not re-sent, check the broker")
            doc["state"] = "unresolved"
        log.warning("order %s (%s %s %s) needs review: %s", doc["order_id"], doc.get("strategy"),
                    doc.get("symbol"), doc.get("kind"), doc.get("state"))
    return found


def acknowledge(client: redis.Redis, keys: Keys, order_id: str, note: str = "", now: datetime | None = None) -> bool:
    """A human has checked the broker: take the order off the review list."""
    now = now or cme_time.utcnow()
    if not client.srem(keys.orders_pending(), order_id):
        return False
    client.hset(keys.order_state(order_id), mapping=_clean({"state": "reviewed", "updated": cme_time.iso_z(now)}))
    client.xadd(keys.orders(), _clean({"event": "reviewed", "order_id": order_id, "note": note,
                                       "ts": cme_time.iso_z(now)}), maxlen=MAXLEN, approximate=True)
    return True


def read(client: redis.Redis, keys: Keys, order_id: str | None = None, count: int = 10_000) -> list[dict[str, str]]:
    """Journal entries, oldest first (optionally one order's)."""
    out = []
    for sid, fields in client.xrange(keys.orders(), count=count):
        doc = {"id": _s(sid), **{_s(k): _s(v) for k, v in fields.items()}}
        if order_id is None or doc.get("order_id") == order_id:
            out.append(doc)
    return out
