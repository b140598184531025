"""The operator of docs/RUNBOOK.md ("Orders to review"), played by a fault scenario.

A kill that lands while an order is between its journaled intent and its outcome leaves it
``unresolved`` after the restart: never re-sent, and if it is an exit the position stays on the
book and the strategy is reduce-only until someone resolves it (fail closed, by design). A
scenario that then compares the run's later orders with the reference must first do what the
operator would: check the broker (the loopback receiver is the broker here) and ``ack`` or
``retry`` through the real CLI. Without that, one in-flight exit of ``sma_b`` made every later
``sma_b`` entry "position already open" (issue 22: eight orders missing, two for review).
"""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

from multialpha.orders import journal

if TYPE_CHECKING:
    from tests.e2e.up_rig import UpRun


def resolve_reviews(run: "UpRun") -> list[tuple[str, str, str]]:
    """Resolve every order on the review list by what the receiver got; returns (order id, kind,
    command). Call once the restarted workers have settled their own orders (``orders_settled``):
    an order still in flight is its worker's, not the operator's."""
    assert run.client is not None
    # As an operator's shell: no explicit Redis address, so the CLI finds the Redis `up` manages
    # (managed_redis.json); the rig's MULTIALPHA__REDIS__PORT names a port nothing listens on.
    env = {k: v for k, v in run.env.items() if k != "MULTIALPHA__REDIS__PORT"}
    done = []
    for doc in journal.pending_orders(run.client, run.keys):
        oid, kind = doc["order_id"], doc.get("kind", "")
        if doc.get("state") in journal.IN_FLIGHT:
            continue
        got = run.rx.delivered().get(oid, 0) > 0
        if kind == "exit":  # the broker has it: flat; it never arrived: resend it (RUNBOOK table)
            args = ["ack", oid, "--note", "receiver got it"] if got else ["retry", oid]
        else:  # entries are never resent: the broker holds the position, or nothing
            args = ["ack", oid] if got else ["ack", oid, "--not-filled"]
        p = subprocess.run([sys.executable, "-m", "multialpha", "--config", str(run.cfg), "orders", *args],
                           env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (args, p.stdout[-2000:], p.stderr[-2000:])
        done.append((oid, kind, args[0]))
    return done
