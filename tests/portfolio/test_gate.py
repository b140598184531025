"""The Lua portfolio gate: limits, daily stop on the CME trading day, P&L, restarts, namespaces."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from multialpha.orders.router import OrderRouter
from multialpha.portfolio import control
from multialpha.portfolio.gate import Gate
from tests.orders.support import intent

T0 = datetime(2025, 12, 10, 15, 29, tzinfo=timezone.utc)


def routers(settings, client, clock, *names):
    return [OrderRouter(settings, client, n, clock=clock, environ={}) for n in names]


def test_max_positions_across_strategies(settings_for, redis_client, clock):
    s = settings_for()  # max_positions: 2
    brk, a, b = routers(s, redis_client, clock, "breakout", "ibs_a", "ibs_b")
    assert brk.submit(intent()).accepted
    assert a.submit(intent(strategy="ibs_a", symbol="GC", contract="GCG6", price=4000.0)).accepted
    third = b.submit(intent(strategy="ibs_b", symbol="YM", contract="YMZ5", price=44000.0))
    assert not third.accepted and third.reason == "max positions: 2 of 2 open"
    # Exits always pass, and free a slot.
    assert brk.submit(intent(kind="exit", bar_start=T0 + timedelta(minutes=5))).accepted
    assert b.submit(intent(strategy="ibs_b", symbol="YM", contract="YMZ5", price=44000.0,
                           bar_start=T0 + timedelta(minutes=6))).accepted


def test_one_position_per_strategy_and_symbol(settings_for, redis_client, clock):
    s = settings_for()
    [r] = routers(s, redis_client, clock, "breakout")
    assert r.submit(intent()).accepted
    again = r.submit(intent(bar_start=T0 + timedelta(minutes=1)))
    assert not again.accepted and "already open" in again.reason


def test_denied_entry_is_claimed_so_a_replay_cannot_enter_later(settings_for, redis_client, clock):
    s = settings_for()
    brk, a, b = routers(s, redis_client, clock, "breakout", "ibs_a", "ibs_b")
    brk.submit(intent())
    a.submit(intent(strategy="ibs_a", symbol="GC", contract="GCG6", price=4000.0))
    late = intent(strategy="ibs_b", symbol="YM", contract="YMZ5", price=44000.0)
    assert not b.submit(late).accepted
    brk.submit(intent(kind="exit", bar_start=T0 + timedelta(minutes=5)))  # slot free now
    replay = b.submit(late)
    assert not replay.accepted and "duplicate" in replay.reason and "denied" in replay.reason


def test_positions_survive_restart_and_are_restored(settings_for, redis_client, clock):
    s = settings_for()
    [r] = routers(s, redis_client, clock, "breakout")
    r.submit(intent(side="short", price=6010.5))
    r.close()
    [r2] = routers(s, redis_client, clock, "breakout")  # the restarted worker
    [p] = r2.open_positions()
    assert (p.strategy, p.symbol, p.side, p.quantity, p.entry_price, p.contract) == (
        "breakout", "ES", "short", 1, 6010.5, "ESZ5")
    assert p.entry_time == T0
    [other] = routers(s, redis_client, clock, "ibs_a")
    assert other.open_positions() == []


def test_namespaces_never_mix(settings_for, redis_client, clock):
    paper = settings_for(MULTIALPHA__PORTFOLIO__MAX_POSITIONS="1")
    live = settings_for(MULTIALPHA__PORTFOLIO__MAX_POSITIONS="1", MULTIALPHA__REDIS__NAMESPACE="live")
    [rp] = routers(paper, redis_client, clock, "breakout")
    [rl] = routers(live, redis_client, clock, "breakout")
    assert rp.submit(intent()).accepted
    assert rl.submit(intent()).accepted  # same id, other namespace: independent
    control.halt(paper, redis_client, "paper only")
    assert not rp.submit(intent(symbol="NQ", contract="NQZ5")).accepted
    assert Gate(live, redis_client).halted() is None
    assert all(k.startswith(("multialpha:", "live:")) for k in redis_client.keys("*"))


def test_pnl_in_dollars_with_multiplier_and_commission(settings_for, redis_client, clock):
    s = settings_for()
    [r] = routers(s, redis_client, clock, "breakout")
    gate = Gate(s, redis_client)
    r.submit(intent(price=6000.0, quantity=2))
    assert gate.day_pnl(clock()).pnl == pytest.approx(-5.0)  # 2 contracts x $2.50 entry commission
    r.mark("ES", 6004.0, clock())
    assert gate.day_pnl(clock()).pnl == pytest.approx(2 * 50 * 4.0 - 5.0)
    r.submit(intent(kind="exit", price=5990.0, quantity=2, bar_start=T0 + timedelta(minutes=3)))
    # realised: 2 x 50 x (5990 - 6000) - 2 x 2.50 exit - 5.00 entry
    assert gate.day_pnl(clock()).pnl == pytest.approx(-1000.0 - 5.0 - 5.0)
    short = intent(side="short", price=6000.0, bar_start=T0 + timedelta(minutes=4))
    r.submit(short)
    r.mark("ES", 5995.0, clock())
    assert gate.day_pnl(clock()).pnl == pytest.approx(-1010.0 - 2.5 + 250.0)


def test_daily_stop_trips_mid_session_latches_and_resets_at_1700_ct(settings_for, redis_client, clock):
    s = settings_for()  # daily_stop_loss 2500
    brk, a = routers(s, redis_client, clock, "breakout", "ibs_a")
    gate = Gate(s, redis_client)
    assert brk.submit(intent(price=6000.0)).accepted
    brk.mark("ES", 5960.0, clock())  # -2000 - 2.50
    assert not gate.day_pnl(clock()).stopped
    clock.advance(60)
    brk.mark("ES", 5950.0, clock())  # 50 x -50 = -2500 - 2.50 commission: reached
    assert gate.day_pnl(clock()).stopped
    blocked = a.submit(intent(strategy="ibs_a", symbol="GC", contract="GCG6", price=4000.0))
    assert not blocked.accepted and blocked.reason.startswith("daily stop loss: trading day 2025-12-10")
    # P&L recovering does not lift the stop for the rest of the trading day...
    brk.mark("ES", 6100.0, clock())
    assert gate.day_pnl(clock()).pnl > 0
    again = a.submit(intent(strategy="ibs_a", symbol="GC", contract="GCG6", price=4000.0,
                            bar_start=T0 + timedelta(minutes=2)))
    assert not again.accepted and "daily stop" in again.reason
    # ...but exits still go out.
    assert brk.submit(intent(kind="exit", price=6100.0, bar_start=T0 + timedelta(minutes=3))).accepted
    # 15:59 CT (21:59 UTC) is still trading day 2025-12-10: blocked.
    clock.set(datetime(2025, 12, 10, 21, 59, tzinfo=timezone.utc))
    assert not a.submit(intent(strategy="ibs_a", symbol="GC", contract="GCG6", price=4000.0,
                               bar_start=clock() - timedelta(minutes=1))).accepted
    # 17:00 CT (23:00 UTC): trading day 2025-12-11 begins, the stop resets.
    clock.set(datetime(2025, 12, 10, 23, 0, tzinfo=timezone.utc))
    assert gate.day_pnl(clock()).trading_day.isoformat() == "2025-12-11"
    assert not gate.day_pnl(clock()).stopped
    assert a.submit(intent(strategy="ibs_a", symbol="GC", contract="GCG6", price=4000.0,
                           bar_start=clock())).accepted


def test_carried_position_counts_only_todays_move(settings_for, redis_client, clock):
    s = settings_for()
    [r] = routers(s, redis_client, clock, "breakout")
    gate = Gate(s, redis_client)
    r.submit(intent(price=6000.0))
    r.mark("ES", 5960.0, clock())  # -2000 on 2025-12-10
    clock.set(datetime(2025, 12, 10, 23, 5, tzinfo=timezone.utc))  # next trading day
    assert gate.day_pnl(clock()).pnl == pytest.approx(0.0)
    r.mark("ES", 5970.0, clock())
    assert gate.day_pnl(clock()).pnl == pytest.approx(500.0)  # from yesterday's last mark
    r.submit(intent(kind="exit", price=5980.0, bar_start=clock()))
    assert gate.day_pnl(clock()).pnl == pytest.approx(1000.0 - 2.5)


def test_a_bar_books_into_its_own_trading_day_however_late_it_is_processed(settings_for, redis_client, clock):
    """The session's last minute (15:59 CT) reaches a worker after 16:00 CT, already the next
    trading day by the clock: its mark and its orders still belong to the day of the bar."""
    s = settings_for()
    gate = Gate(s, redis_client)
    brk, a = routers(s, redis_client, clock, "breakout", "ibs_a")
    last = datetime(2025, 12, 10, 21, 59, tzinfo=timezone.utc)  # 15:59 CT, trading day 12-10
    opening = datetime(2025, 12, 10, 23, 0, tzinfo=timezone.utc)  # 17:00 CT, trading day 12-11
    brk.submit(intent(price=6000.0, bar_start=last - timedelta(minutes=30)))
    clock.set(datetime(2025, 12, 10, 22, 0, 1, tzinfo=timezone.utc))  # 16:00:01 CT: 12-11 by the clock
    brk.mark("ES", 5949.0, last)  # -2550 - 2.50 commission: 12-10's stop
    assert gate.day_pnl(last).stopped and gate.day_pnl(last).pnl == pytest.approx(-2552.5)
    assert not gate.day_pnl(clock()).stopped and gate.day_pnl(clock()).pnl == pytest.approx(0.0)
    # An order from the last bar is checked against the bar's day; the next session's is not.
    denied = a.submit(intent(strategy="ibs_a", symbol="GC", contract="GCG6", price=4000.0, bar_start=last))
    assert not denied.accepted and "daily stop" in denied.reason and "2025-12-10" in denied.reason
    clock.set(opening + timedelta(minutes=1))
    assert a.submit(intent(strategy="ibs_a", symbol="GC", contract="GCG6", price=4000.0, bar_start=opening)).accepted
    # 12-11's P&L runs from 12-10's closing mark, the last bar's.
    brk.mark("ES", 5960.0, opening)
    assert gate.day_pnl(clock()).pnl == pytest.approx(550.0 - 2.5)  # + GC's entry commission


def test_weekend_friday_close_resets_on_sunday_open(settings_for, redis_client, clock):
    s = settings_for()
    gate = Gate(s, redis_client)
    [r] = routers(s, redis_client, clock, "breakout")
    clock.set(datetime(2025, 12, 12, 20, 0, tzinfo=timezone.utc))  # Friday 14:00 CT
    r.submit(intent(price=6000.0, bar_start=clock()))
    r.mark("ES", 5940.0, clock())
    assert gate.day_pnl(clock()).stopped
    clock.set(datetime(2025, 12, 14, 23, 0, tzinfo=timezone.utc))  # Sunday 17:00 CT -> Monday's day
    assert gate.day_pnl(clock()).trading_day.isoformat() == "2025-12-15"
    assert not gate.day_pnl(clock()).stopped


def test_halt_blocks_entries_not_exits_and_resume_lifts_it(settings_for, redis_client, clock):
    s = settings_for()
    brk, a = routers(s, redis_client, clock, "breakout", "ibs_a")
    assert brk.submit(intent()).accepted
    text = control.halt(s, redis_client, "fat finger", clock=clock)
    assert "fat finger" in text
    d = a.submit(intent(strategy="ibs_a", symbol="GC", contract="GCG6", price=4000.0))
    assert not d.accepted and d.reason.startswith("halted: fat finger")
    assert brk.submit(intent(kind="exit", bar_start=T0 + timedelta(minutes=1))).accepted
    assert control.resume(s, redis_client, clock=clock)
    assert a.submit(intent(strategy="ibs_a", symbol="GC", contract="GCG6", price=4000.0,
                           bar_start=T0 + timedelta(minutes=2))).accepted
    snap = control.snapshot(s, redis_client, clock=clock)
    assert snap["halted"] is False and snap["entries"] == "allowed" and snap["open_positions"] == 1


def test_mark_of_another_contract_is_ignored_after_a_roll(settings_for, redis_client, clock):
    """ESH6 trades ~60 points over ESZ5: booking that as P&L would be a phantom $3,000."""
    s = settings_for()
    [r] = routers(s, redis_client, clock, "breakout")
    gate = Gate(s, redis_client)
    r.submit(intent(price=6000.0, contract="ESZ5"))
    r.mark("ES", 6010.0, clock(), contract="ESZ5")
    assert gate.day_pnl(clock()).pnl == pytest.approx(500.0 - 2.5)
    r.mark("ES", 6070.0, clock(), contract="ESH6")  # the new front's price
    assert gate.day_pnl(clock()).pnl == pytest.approx(500.0 - 2.5)
    assert gate.position("breakout", "ES")["mark"] == "6010.0"
    r.mark("ES", 6020.0, clock())  # no contract given: trusted
    assert gate.day_pnl(clock()).pnl == pytest.approx(1000.0 - 2.5)


def test_deployment_limits_in_redis_win_over_the_workers_own(settings_for, redis_client, clock):
    """`up`/`reload` write the limits once; every worker's next decision uses them, whatever
    config that worker started with (no restart needed to lower or raise a limit)."""
    s = settings_for()  # the workers' config says max_positions: 2
    brk, a = routers(s, redis_client, clock, "breakout", "ibs_a")
    gate = Gate(s, redis_client)
    tighter = s.model_copy(update={"portfolio": s.portfolio.model_copy(update={"max_positions": 1})})
    assert gate.write_limits(tighter)["max_positions"] == "1"
    assert brk.submit(intent()).accepted
    second = a.submit(intent(strategy="ibs_a", symbol="GC", contract="GCG6", price=4000.0))
    assert not second.accepted and second.reason == "max positions: 1 of 1 open"
    gate.write_limits(s)  # back to 2: the same entry (a new bar) passes now
    assert a.submit(intent(strategy="ibs_a", symbol="GC", contract="GCG6", price=4000.0,
                           bar_start=T0 + timedelta(minutes=1))).accepted
    assert redis_client.hgetall(gate.limits_key()) == {"max_positions": "2", "daily_stop_loss": "2500.0",
                                                       "on_daily_stop": "flatten", "allow_shared_tickers": "0"}


def test_claim_waits_for_a_replica_before_it_is_accepted(settings_for, clock):
    """redis.wait_replicas: 1 on a real primary + replica: the claim and its journaled intent are on
    the replica when submit returns, and the result says how many replicas acknowledged it."""
    from multialpha.keys import Keys
    from multialpha.managed_redis import ManagedRedis

    with ManagedRedis() as primary, \
            ManagedRedis(extra_args=("--replicaof", "127.0.0.1", str(primary.port))) as replica:
        rc = replica.client(decode_responses=True)
        deadline = time.monotonic() + 20  # polling bound for the replica's first sync, not a timing
        while rc.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "replica never synced"
            time.sleep(0.02)
        s = settings_for(MULTIALPHA__REDIS__PORT=str(primary.port), MULTIALPHA__REDIS__WAIT_REPLICAS="1",
                         MULTIALPHA__REDIS__WAIT_TIMEOUT_MS="5000")
        pc = primary.client(decode_responses=True)
        gate = Gate(s, pc)
        res = gate.submit(now=clock(), order_id="oid-wait-1", kind="entry", strategy="breakout", symbol="ES",
                          direction=1, quantity=1, price=6000.25, contract="ESZ5", entry_time=T0,
                          journal={"order_id": "oid-wait-1", "event_note": "x"}, day_at=T0, destination="env:X")
        assert res.status == "accepted" and res.replicas == 1 and res.wanted == 1 and not res.unreplicated
        k = Keys(s.redis.namespace)
        assert rc.exists(gate.position_key("breakout", "ES")) == 1
        assert any(f.get("order_id") == "oid-wait-1" for _, f in rc.xrange(k.orders()))
        # A second replica that does not exist: WAIT times out with 1 of 2 -> unreplicated.
        s2 = settings_for(MULTIALPHA__REDIS__PORT=str(primary.port), MULTIALPHA__REDIS__WAIT_REPLICAS="2",
                          MULTIALPHA__REDIS__WAIT_TIMEOUT_MS="50")
        res2 = Gate(s2, pc).submit(now=clock(), order_id="oid-wait-2", kind="entry", strategy="ibs_a",
                                   symbol="GC", direction=1, quantity=1, price=4000.0, contract="GCG6",
                                   entry_time=T0, journal={"order_id": "oid-wait-2"}, day_at=T0,
                                   destination="env:Y")
        assert res2.status == "accepted" and res2.replicas == 1 and res2.unreplicated
        rc.close()
        pc.close()
