"""Rolls in a live worker: a worker restarted during a roll overlap rolls on the same bar as one
that stayed up (worker/rolls.py, worker/runtime.py catch-up).

Real parts: a real Redis, the real order router and portfolio gate (paper mode), the worker
in-process with a test-controlled clock. The hub's part (the front and previous-front bar logs
and channels) is written by the test exactly as the hub writes it.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from multialpha.bar import Bar
from multialpha.keys import Keys
from multialpha.orders.router import OrderRouter
from multialpha.worker.orders import make_intent
from tests.worker.conftest import FixedClock, WorkerThread, make_bar, publish, recorder, wait_for

UTC = timezone.utc
# ES rolls ESZ5 -> ESH6 on trading day 2025-12-11, which opens 2025-12-10 23:00Z.
CLOSE_1210 = datetime(2025, 12, 10, 21, 59, tzinfo=UTC)  # last minute of trading day 12-10
OPEN_1211 = datetime(2025, 12, 10, 23, 0, tzinfo=UTC)


def log_only(client: Any, log_key: str, bar: Bar) -> None:
    """The hub's XADD to a bar log (id = bar start in ms), without the PUBLISH."""
    client.xadd(log_key, {k: str(v) for k, v in bar.to_dict().items()}, id=f"{bar.start_ms}-0")


def publish_prev(client: Any, bar: Bar, keys: Keys = Keys()) -> None:
    """What the hub does with a previous-front bar: XADD its own log, PUBLISH its own channel."""
    log_only(client, keys.prev_bar_log(bar.symbol), bar)
    client.publish(keys.prev_bars(bar.symbol), bar.to_json())


def before_roll(i: int) -> Bar:
    return make_bar("ES", CLOSE_1210 - timedelta(minutes=2 - i), 6000.0 + i, contract="ESZ5")


def roll_day(i: int) -> tuple[Bar, Bar]:
    """Minute ``i`` of the roll day: the new front's bar and the old contract's (60 points lower)."""
    t = OPEN_1211 + timedelta(minutes=i)
    return make_bar("ES", t, 6070.0 + i, contract="ESH6"), make_bar("ES", t, 6010.0 + i, contract="ESZ5")


def open_position(settings: Any, client: Any, clock: FixedClock) -> None:
    """The strategy's long ESZ5 from before the roll, entered through the real router and gate."""
    router = OrderRouter(settings, client, "rec", clock=clock)
    try:
        d = router.submit(make_intent(strategy="rec", symbol="ES", side="long", kind="entry", quantity=1, price=6000.0,
                                      bar_start=CLOSE_1210 - timedelta(minutes=3), contract="ESZ5", reason="before"))
        assert d.accepted, d
    finally:
        router.close()


def journal(client: Any) -> list[tuple[str, ...]]:
    return [(f["event"], f["kind"], f.get("contract", ""), f.get("bar_start", ""), f.get("price", ""),
             f.get("late", ""), f.get("order_id", ""), f.get("signal_reason", "") or f.get("reason", ""))
            for _, f in client.xrange(Keys().orders()) if f.get("kind") and f.get("signal_reason") != "before"]


def run_worker(settings: Any, client: Any, workers: list, clock: FixedClock) -> WorkerThread:
    w = WorkerThread(settings, "rec", OrderRouter(settings, client, "rec", clock=clock), clock).start()
    workers.append(w)
    w.wait_live(client)
    return w


def live_before_roll(settings: Any, client: Any, workers: list) -> tuple[WorkerThread, FixedClock]:
    """A LIVE worker holding long ESZ5 that has processed the last minutes before the roll."""
    clock = FixedClock(CLOSE_1210 - timedelta(minutes=2))
    open_position(settings, client, clock)
    w = run_worker(settings, client, workers, clock)
    for i in range(3):
        publish(client, before_roll(i))
    wait_for(lambda: client.hget(Keys().worker_cursor("rec"), "ES") == f"{before_roll(2).start_ms}-0",
             what="the last bar before the roll processed")
    return w, clock


def roll_legs(client: Any) -> list[tuple[str, ...]]:
    def legs() -> list[tuple[str, ...]] | None:
        got = [j for j in journal(client) if "roll" in j[-1] or "late entry" in j[-1]]
        return got if len(got) >= 2 else None

    return wait_for(legs, what="the roll's two orders")


def test_worker_restarted_during_the_overlap_rolls_on_the_same_bar(build_settings, redis_client, workers) -> None:
    settings = build_settings({"rec": recorder(["ES"])}, ml_veto={"mode": "off"})
    # Stayed up: LIVE before the roll, every bar arrives live.
    w, clock = live_before_roll(settings, redis_client, workers)
    clock.now = OPEN_1211 + timedelta(minutes=1)
    front, old = roll_day(0)
    publish(redis_client, front)
    publish_prev(redis_client, old)
    stayed = roll_legs(redis_client)
    w.shutdown()
    assert [j[:6] for j in stayed] == [
        ("intent", "exit", "ESZ5", "2025-12-10T23:00:00Z", "6010.0", "0"),  # the old contract at its own bar
        ("intent", "entry", "ESH6", "2025-12-10T23:00:00Z", "6070.0", "0"),  # the same side in the new front
    ]

    # Restarted: the same story, but the worker is down from before the roll until minute 3 of the
    # roll day; the front and previous-front bars of minutes 0-2 are in the hub's logs only.
    redis_client.flushall()
    w, clock = live_before_roll(settings, redis_client, workers)
    w.shutdown()
    for i in range(3):
        front, old = roll_day(i)
        publish(redis_client, front)
        publish_prev(redis_client, old)
    clock.now = OPEN_1211 + timedelta(minutes=3)
    w = run_worker(settings, redis_client, workers, clock)
    restarted = roll_legs(redis_client)
    w.shutdown()
    # The exit leg is the stayed-up worker's (same bar, contract, price, order id), flagged late;
    # the re-entry on a replayed bar is refused as stale (worker.trade_replayed_bars is off).
    assert restarted[0][:5] + restarted[0][6:] == stayed[0][:5] + stayed[0][6:] and restarted[0][5] == "1"
    assert restarted[1][:2] + restarted[1][3:4] == ("denied", "entry", "2025-12-10T23:00:00Z")
    assert restarted[1][6] == stayed[1][6] and "late entry" in restarted[1][-1]
    router = OrderRouter(settings, redis_client, "rec", clock=clock)
    assert router.open_positions() == []  # flat: the old contract closed, the new one not entered
    router.close()


def test_old_contract_bars_lost_in_a_redis_outage_are_recovered_in_order(build_settings, redis_client, workers):
    """A lost subscription recovers the gap from the bar logs, previous front's included: the roll
    happens on the bar it would have happened on (flagged late: the bars are replayed)."""
    settings = build_settings({"rec": recorder(["ES"])}, ml_veto={"mode": "off"})
    w, clock = live_before_roll(settings, redis_client, workers)
    front, old = roll_day(0)
    # Published while the worker's subscription is down: in the hub's logs, never received.
    log_only(redis_client, Keys().bar_log("ES"), front)
    log_only(redis_client, Keys().prev_bar_log("ES"), old)
    clock.now = OPEN_1211 + timedelta(minutes=1)
    assert redis_client.client_kill_filter(_type="pubsub") >= 1  # the worker's subscription drops
    legs = roll_legs(redis_client)
    w.shutdown()
    assert [j[:6] for j in legs] == [("intent", "exit", "ESZ5", "2025-12-10T23:00:00Z", "6010.0", "1"),
                                     ("denied", "entry", "", "2025-12-10T23:00:00Z", "", "")]
