"""The TradersPost receiver misbehaves under a real `multialpha up` sending LIVE orders: down for
5 sim-minutes (connection refused), then slow (2 s per request), then answering 429 with
Retry-After. Compared with the session's reference run: every order the strategies placed is
delivered exactly once (none lost, none duplicated, none left for review), and the journal shows
the retries, the Retry-After honoured and the shared rate limit never exceeded.

The sender's backoff runs in wall seconds while the test moves the sandbox clock in 30 sim-second
steps, so "5 minutes down" is 5 sim-minutes of orders meeting a dead receiver (and at least two
refused retries of one order); the rig's orders settings (12 attempts, backoff 0.2..2 s) are what
a real deployment would scale to its outage budget (docs/orders.md).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import timedelta

import pytest

from multialpha import cme_time, runtime
from tests.e2e import up_rig as R

pytestmark = pytest.mark.slow
RETRY_AFTER_S = 1


def _attempts(run: R.UpRun) -> list[dict[str, str]]:
    return [e for e in run.journal() if e.get("event") == "attempt"]


def test_webhook_down_slow_then_429(up_base, up_cache, up_reference) -> None:
    run = R.new_run(up_base, "webhook", up_cache)
    rx = run.rx
    try:
        run.begin()
        run.settle(R.FAULT_AT)
        assert sum(rx.delivered().values()) > 0
        # 1) down: nothing listens for 5 sim-minutes.
        rx.down()
        t = time.monotonic()
        run.advance_to(R.FAULT_AT + timedelta(minutes=5))
        R.poll("refused attempts retried", lambda: Counter(
            e["order_id"] for e in _attempts(run) if e.get("status") == "" and e.get("delivered") == "no"
        ).most_common(1)[0][1] >= 2 if any(e.get("status") == "" for e in _attempts(run)) else False, context=run.tail)
        down_ids = {e["order_id"] for e in _attempts(run) if e.get("status") == ""}
        # 2) slow: back, 2 s per request (shorter than orders.timeout_s: answered, late).
        rx.delay_s = 2.0
        rx.up()
        R.poll("orders held during the outage delivered", lambda: all(rx.delivered().get(i) for i in down_ids),
               context=run.tail)
        rec = time.monotonic() - t
        run.advance_to(R.FAULT_AT + timedelta(minutes=8))
        R.poll("slow requests answered", lambda: run.orders_settled() and sum(
            1 for r in rx.requests if r.wall > t) > len(down_ids), context=run.tail)
        # 3) rate limited: the next 3 requests get 429 + Retry-After.
        rx.delay_s = 0.0
        rx.retry_after = str(RETRY_AFTER_S)
        rx.too_many = 3
        out = run.finish("webhook down/slow/429")
        out.recovery_s = rec
        full = run.journal()
    finally:
        run.stop()
        rx.down()
    attempts = [e for e in full if e.get("event") == "attempt"]
    refused = [a for a in attempts if a.get("status") == ""]
    limited = [a for a in attempts if a.get("status") == "429"]
    assert len(refused) >= 2 and all(a["delivered"] == "no" for a in refused), refused
    assert rx.too_many == 0 and len(limited) == 3, limited  # the 3 were really served (later orders existed)
    # Retry-After honoured: the sender scheduled exactly that delay, and the order went out later.
    assert all(float(a["retry_in_s"]) == RETRY_AFTER_S for a in limited), limited
    # Backoff bounded by orders.backoff_max_s (refusals are retried, never given up within 12 tries).
    assert all(0 < float(a["retry_in_s"]) <= 2.0 for a in refused if a["retry_in_s"]), refused
    # The shared rate limit: no 60 s window of attempts (the router's clock) above rate_per_minute.
    stamps = sorted(cme_time.parse_iso(a["ts"]) for a in attempts)
    per_min = run.settings.orders.rate_per_minute
    assert all(sum(1 for s in stamps if w - timedelta(seconds=60) < s <= w) <= per_min for w in stamps)
    # What the receiver answered 2xx is exactly what the journal says was sent, once each.
    sent = {e["order_id"] for e in full if e.get("event") == "outcome" and e.get("result") == "delivered"}
    assert set(out.delivered) == sent and all(n == 1 for n in out.delivered.values())
    # The webhook URL's secret path never reaches a log line or the journal, whatever failed.
    logs_dir = runtime.runtime_dir(run.settings) / "logs"
    texts = [f.read_text(errors="replace") for f in [*logs_dir.glob("*.log"), run.err_path]] + [json.dumps(full)]
    assert not [t for t in texts for secret in R.SECRET.split("/") if secret in t]
    R.check("webhook down 5 sim-min, slow 2 s, 429 x3", up_reference, out, full)
