"""Pre-trade risk checks, shared tickers, the daily stop's flatten and `flatten`/`resume`,
all inside the one atomic gate script (real redis-server)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from multialpha.keys import Keys
from multialpha.orders import journal
from multialpha.orders.router import OrderRouter
from multialpha.portfolio import control
from multialpha.portfolio.gate import Gate
from tests.orders.support import intent

T0 = datetime(2025, 12, 10, 15, 29, tzinfo=timezone.utc)


def _router(s, client, clock, name="breakout"):
    return OrderRouter(s, client, name, clock=clock, environ={})


def test_quantity_and_notional_limits_refuse_entries_and_journal_why(settings_for, redis_client, clock):
    s = settings_for(MULTIALPHA__RISK__MAX_QUANTITY="2", MULTIALPHA__RISK__MAX_NOTIONAL="500000")
    r = _router(s, redis_client, clock)
    big = r.submit(intent(quantity=3))
    assert not big.accepted and big.reason == "risk: quantity 3 > risk.max_quantity 2"
    # 2 ES at 6000 x 50 = 600,000 > 500,000
    rich = r.submit(intent(quantity=2, price=6000.0, bar_start=T0 - timedelta(minutes=1)))
    assert not rich.accepted and rich.reason.startswith("risk: notional 600000.00 > risk.max_notional")
    k = Keys(s.redis.namespace)
    assert journal.read(redis_client, k, rich.order_id)[-1]["reason"] == rich.reason
    assert Gate(s, redis_client).positions() == []
    assert r.submit(intent(quantity=1, bar_start=T0 - timedelta(minutes=2))).accepted  # 300,000: fine


def test_price_band_against_the_hubs_last_bar_of_that_contract(settings_for, redis_client, clock):
    s = settings_for(MULTIALPHA__RISK__PRICE_BAND_PCT="2", MULTIALPHA__PORTFOLIO__MAX_POSITIONS="5")
    k = Keys(s.redis.namespace)
    r = _router(s, redis_client, clock)
    # No bar log yet (a backtest has none): nothing to compare with, the check passes.
    assert r.submit(intent(price=6000.0)).accepted
    redis_client.xadd(k.bar_log("NQ"), {"symbol": "NQ", "close": "21000.0", "contract": "NQZ5"}, id="1765380540000-0")
    far = r.submit(intent(symbol="NQ", contract="NQZ5", price=21500.0))  # +2.38 %
    assert not far.accepted and "2.38% from the last NQZ5 close 21000" in far.reason
    near = r.submit(intent(symbol="NQ", contract="NQZ5", price=21400.0, bar_start=T0 - timedelta(minutes=1)))
    assert near.accepted  # +1.9 %
    # The reference must be the SAME contract: a bar of the next front is no reference.
    redis_client.xadd(k.bar_log("RTY"), {"symbol": "RTY", "close": "2500.0", "contract": "RTYH6"},
                      id="1765380540000-0")
    assert r.submit(intent(symbol="RTY", contract="RTYZ5", price=2400.0)).accepted  # 4 % off RTYH6: no matter


def test_shared_ticker_refuses_what_would_reduce_or_reverse_another_strategy(settings_for, redis_client, clock):
    # Both strategies through one webhook, deliberately allowed.
    s = settings_for(MULTIALPHA__PORTFOLIO__ALLOW_SHARED_TICKERS="true", MULTIALPHA__PORTFOLIO__MAX_POSITIONS="5",
                     MULTIALPHA__STRATEGIES__BREAKOUT__WEBHOOK_URL_ENV="TRADERSPOST_WEBHOOK_URL")
    ibs_b, brk = _router(s, redis_client, clock, "ibs_b"), _router(s, redis_client, clock, "breakout")
    ym = dict(symbol="YM", contract="YMZ5", price=44000.0)
    assert ibs_b.submit(intent(strategy="ibs_b", **ym)).accepted
    short = brk.submit(intent(side="short", bar_start=T0 - timedelta(minutes=1), **ym))
    assert not short.accepted and "would reduce or reverse ibs_b's long YMZ5 position" in short.reason
    assert brk.submit(intent(side="long", bar_start=T0 - timedelta(minutes=2), **ym)).accepted  # adds: fine
    out = brk.submit(intent(kind="exit", bar_start=T0 + timedelta(minutes=1), **ym))
    assert not out.accepted and "ibs_b" in out.reason  # TradersPost's exit would close ibs_b's too
    # ... and the other way round, while breakout holds its long.
    back = ibs_b.submit(intent(strategy="ibs_b", kind="exit", bar_start=T0 + timedelta(minutes=2), **ym))
    assert not back.accepted and "breakout's long YMZ5" in back.reason


def test_daily_stop_flattens_tells_every_worker_and_blocks_until_the_next_day(settings_for, redis_client, clock):
    s = settings_for(MULTIALPHA__PORTFOLIO__DAILY_STOP_LOSS="1000")
    k = Keys(s.redis.namespace)
    brk, a = _router(s, redis_client, clock), _router(s, redis_client, clock, "ibs_a")
    assert brk.submit(intent(price=6000.0)).accepted
    assert a.submit(intent(strategy="ibs_a", symbol="GC", contract="GCG6", price=4000.0)).accepted
    sub = redis_client.pubsub()
    sub.subscribe(k.control())
    assert sub.get_message(timeout=1)["type"] == "subscribe"
    assert a.mark("GC", 4001.0, T0 + timedelta(minutes=1), contract="GCG6") == ""  # fine so far
    # ES falls 25 points: -1,250 on one contract: the stop latches, and says flatten.
    reason = brk.mark("ES", 5975.0, T0 + timedelta(minutes=1), contract="ESZ5")
    assert reason.startswith("daily stop loss")
    msg = json.loads(sub.get_message(timeout=1)["data"])
    assert msg["command"] == "flatten" and msg["scope"] == "*" and "daily stop loss" in msg["reason"]
    # Every strategy learns it on its next mark, and no one may enter today.
    assert a.mark("GC", 4001.0, T0 + timedelta(minutes=2), contract="GCG6").startswith("daily stop")
    assert not a.submit(intent(strategy="ibs_a", symbol="6A", contract="6AZ5", price=0.66,
                               bar_start=T0 + timedelta(minutes=2))).accepted
    snap = control.snapshot(s, redis_client, clock=clock)
    assert snap["flatten_pending"] == ["breakout", "ibs_a"]
    # The exits go through (a flatten is exits) and nothing is left.
    assert brk.submit(intent(kind="exit", price=5975.0, bar_start=T0 + timedelta(minutes=2))).accepted
    assert a.submit(intent(strategy="ibs_a", kind="exit", symbol="GC", contract="GCG6", price=4001.0,
                           bar_start=T0 + timedelta(minutes=2))).accepted
    assert Gate(s, redis_client).positions() == []
    # Next trading day (17:00 CT = 23:00 UTC): entries again.
    clock.set(datetime(2025, 12, 10, 23, 1, tzinfo=timezone.utc))
    assert brk.submit(intent(bar_start=datetime(2025, 12, 10, 23, 0, tzinfo=timezone.utc))).accepted


def test_on_daily_stop_block_only_blocks(settings_for, redis_client, clock):
    s = settings_for(MULTIALPHA__PORTFOLIO__DAILY_STOP_LOSS="1000", MULTIALPHA__PORTFOLIO__ON_DAILY_STOP="block")
    brk = _router(s, redis_client, clock)
    assert brk.submit(intent(price=6000.0)).accepted
    assert brk.mark("ES", 5975.0, T0 + timedelta(minutes=1), contract="ESZ5") == ""
    assert Gate(s, redis_client).day_pnl(clock()).stopped


def test_flatten_one_strategy_holds_it_reduce_only_until_resume(settings_for, redis_client, clock):
    s = settings_for(MULTIALPHA__PORTFOLIO__MAX_POSITIONS="5")
    brk, a = _router(s, redis_client, clock), _router(s, redis_client, clock, "ibs_a")
    assert brk.submit(intent()).accepted
    assert a.submit(intent(strategy="ibs_a", symbol="GC", contract="GCG6", price=4000.0)).accepted
    text = control.flatten(s, redis_client, "breakout", reason="broker maintenance")
    assert "broker maintenance" in text
    assert brk.mark("ES", 6001.0, T0 + timedelta(minutes=1), contract="ESZ5").startswith("broker maintenance")
    assert a.mark("GC", 4001.0, T0 + timedelta(minutes=1), contract="GCG6") == ""  # out of scope
    assert brk.submit(intent(kind="exit", bar_start=T0 + timedelta(minutes=1))).accepted
    held = brk.submit(intent(symbol="NQ", contract="NQZ5", price=21000.0, bar_start=T0 + timedelta(minutes=2)))
    assert not held.accepted and held.reason.startswith("reduce-only: flatten: broker maintenance")
    assert a.submit(intent(strategy="ibs_a", symbol="6A", contract="6AZ5", price=0.66,
                           bar_start=T0 + timedelta(minutes=2))).accepted
    assert control.resume(s, redis_client)
    assert brk.submit(intent(symbol="NQ", contract="NQZ5", price=21000.0, bar_start=T0 + timedelta(minutes=3))).accepted


def test_flatten_all_and_resume_do_not_lift_a_failed_exit(settings_for, redis_client, clock):
    s = settings_for()
    gate = Gate(s, redis_client)
    brk = _router(s, redis_client, clock)
    control.flatten(s, redis_client, None, reason="end of quarter")
    assert gate.reduce_only() == {"*": control_text(gate)}
    denied = brk.submit(intent())
    assert not denied.accepted and "end of quarter" in denied.reason
    # A failed exit's reduce-only belongs to the exit, not to `resume`.
    redis_client.sadd(gate.exit_failed_key(), "breakout:ES")
    control.resume(s, redis_client)
    assert gate.reduce_only() == {"breakout": "exit failed for breakout:ES"}
    assert not brk.submit(intent(bar_start=T0 + timedelta(minutes=1))).accepted


def control_text(gate: Gate) -> str:
    return gate.client.hget(gate.reduce_only_key(), "*")
