"""Bars published after LIVE reach Strategy.next stamped at bar close; hours/days close on their boundaries."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from multialpha.keys import Keys
from tests.worker import recorder_plugin
from tests.worker.conftest import FixedClock, WorkerThread, make_bar, publish, publish_closed, recorder, wait_for
from tests.worker.doubles import RecordingRouter

UTC = timezone.utc


def events(tag: str, feed: str) -> list[dict]:
    return [e for e in recorder_plugin.RECORDS.get(tag, []) if e.get("feed") == feed]


def test_minute_bars_reach_next_stamped_at_close(build_settings, redis_client, workers):
    recorder_plugin.RECORDS.pop("live1", None)
    settings = build_settings({"rec": recorder(["ES", "NQ"], tag="live1")})
    now = datetime(2025, 12, 3, 15, 0, tzinfo=UTC)  # Wed 09:00 CT
    w = WorkerThread(settings, "rec", RecordingRouter(), FixedClock(now)).start()
    workers.append(w)
    w.wait_live(redis_client)
    for i in range(3):
        publish(redis_client, make_bar("ES", now + timedelta(minutes=i), 6000 + i))
    wait_for(lambda: len(events("live1", "ES")) == 3, what="3 ES minute bars")
    es = events("live1", "ES")
    assert [e["dt"] for e in es] == ["2025-12-03T15:01:00", "2025-12-03T15:02:00", "2025-12-03T15:03:00"]
    assert [e["close"] for e in es] == [6000, 6001, 6002]
    assert all(e["phase"] == "live" and e["live"] for e in es)
    assert events("live1", "NQ") == []
    hb = wait_for(lambda: (h := w.heartbeat(redis_client)) and h["bars"] == 3 and h, what="heartbeat bars=3")
    assert hb["pid"] == os.getpid() and hb["state"] == "live" and hb["component"] == "worker.rec"
    assert 0 < hb["rss_mb"] < 4096 and hb["latency_ms"]["p50"] >= 0 and hb["errors"] == 0
    assert hb["symbols"]["ES"]["lag_s"] == (now - datetime(2025, 12, 3, 15, 3, tzinfo=UTC)).total_seconds()
    assert hb["symbols"]["ES"]["last_bar"] == "2025-12-03T15:02:00Z"
    last_id = f"{make_bar('ES', now + timedelta(minutes=2)).start_ms}-0"  # sent after the step, not awaited
    wait_for(lambda: redis_client.hget(Keys().worker_cursor("rec"), "ES") == last_id, what="cursor")
    assert "NQ" not in redis_client.hgetall(Keys().worker_cursor("rec"))
    assert w.shutdown() == 0


def test_hour_and_day_close_on_cme_session_boundary(build_settings, redis_client, workers):
    """Wed 3 Dec 2025 (CST): the trading day ends 16:00 CT = 22:00Z; the next opens 23:00Z."""
    recorder_plugin.RECORDS.pop("sess", None)
    settings = build_settings({"rec": recorder(["ES"], tag="sess")})
    start = datetime(2025, 12, 3, 21, 58, tzinfo=UTC)
    w = WorkerThread(settings, "rec", RecordingRouter(), FixedClock(start)).start()
    workers.append(w)
    w.wait_live(redis_client)
    publish(redis_client, make_bar("ES", start, 6000, volume=10))
    publish(redis_client, make_bar("ES", start + timedelta(minutes=1), 6003, volume=20))  # 21:59, the day's last minute
    publish(redis_client, make_bar("ES", datetime(2025, 12, 3, 23, 0, tzinfo=UTC), 6010, volume=5))  # next session
    wait_for(lambda: len(events("sess", "ES")) == 3, what="3 minute bars")
    hours, days = events("sess", "ES_hour"), events("sess", "ES_day")
    assert [h["dt"] for h in hours] == ["2025-12-03T22:00:00"]  # closed by the 21:59 bar, not by the next one
    assert (hours[0]["open"], hours[0]["close"], hours[0]["volume"]) == (5999.5, 6003, 30)
    assert [d["dt"] for d in days] == ["2025-12-03T22:00:00"]  # 16:00 CT, not UTC midnight
    assert days[0]["high"] == 6004.0 and days[0]["low"] == 5999.0
    assert w.shutdown() == 0


def test_day_boundary_follows_dst_change(build_settings, redis_client, workers):
    """Fri 31 Oct 2025 closes 16:00 CDT = 21:00Z; after DST ends, Mon 3 Nov closes 16:00 CST = 22:00Z."""
    recorder_plugin.RECORDS.pop("dst", None)
    settings = build_settings({"rec": recorder(["ES"], tag="dst")})
    fri = datetime(2025, 10, 31, 20, 59, tzinfo=UTC)
    w = WorkerThread(settings, "rec", RecordingRouter(), FixedClock(fri)).start()
    workers.append(w)
    w.wait_live(redis_client)
    publish(redis_client, make_bar("ES", fri, 6000))
    publish(redis_client, make_bar("ES", datetime(2025, 11, 2, 23, 0, tzinfo=UTC), 6010))  # Sunday 17:00 CST open
    publish(redis_client, make_bar("ES", datetime(2025, 11, 3, 21, 59, tzinfo=UTC), 6020))  # Monday 15:59 CST
    wait_for(lambda: len(events("dst", "ES")) == 3, what="3 minute bars")
    days = events("dst", "ES_day")
    assert [d["dt"] for d in days] == ["2025-10-31T21:00:00", "2025-11-03T22:00:00"]
    assert days[1]["open"] == 6009.5 and days[1]["close"] == 6020  # Sunday evening belongs to Monday
    assert w.shutdown() == 0


def test_quiet_symbol_and_quiet_hour_close(build_settings, redis_client, workers):
    """NQ silent for 30 minutes while ES trades: no crash; the hour closes on the hub's minute-close
    notice without its :59 bar — not on the worker's clock alone."""
    recorder_plugin.RECORDS.pop("quiet", None)
    settings = build_settings({"rec": recorder(["ES", "NQ"], tag="quiet")})
    t0 = datetime(2025, 12, 3, 15, 0, tzinfo=UTC)
    clock = FixedClock(t0)
    w = WorkerThread(settings, "rec", RecordingRouter(), clock).start()
    workers.append(w)
    w.wait_live(redis_client)
    for i in range(30):
        publish(redis_client, make_bar("ES", t0 + timedelta(minutes=i), 6000 + i))
    wait_for(lambda: len(events("quiet", "ES")) == 30, what="30 ES bars")
    assert events("quiet", "NQ") == [] and events("quiet", "ES_hour") == []
    publish(redis_client, make_bar("NQ", t0 + timedelta(minutes=31), 21000))
    wait_for(lambda: len(events("quiet", "NQ")) == 1, what="the NQ bar")
    clock.advance(timedelta(hours=1, minutes=2))  # the clock alone closes nothing: the hub may lag
    # "16:00 is over" -> close what is due at 16:01: nothing (the hour's grace runs to 16:01:30).
    publish_closed(redis_client, t0 + timedelta(minutes=60))
    wait_for(lambda: w.heartbeat(redis_client).get("closed_through") == "2025-12-03T16:00:00Z", what="notice")
    assert events("quiet", "ES_hour") == []
    publish_closed(redis_client, t0 + timedelta(minutes=61))  # due at 16:02: the hour closes
    wait_for(lambda: events("quiet", "ES_hour"), what="quiet hour close")
    h = events("quiet", "ES_hour")[0]
    assert h["dt"] == "2025-12-03T16:00:00" and h["close"] == 6029 and h["volume"] == 300
    assert [e["dt"] for e in events("quiet", "NQ_hour")] == ["2025-12-03T16:00:00"]
    # Every source silent for an hour of an open market: the hub looks dead -> degraded, until bars return.
    wait_for(lambda: w.heartbeat(redis_client)["state"] == "degraded", what="degraded")
    publish(redis_client, make_bar("ES", t0 + timedelta(minutes=61), 6100))
    wait_for(lambda: w.heartbeat(redis_client)["state"] == "live", what="live again")
    assert w.shutdown() == 0


def test_without_notices_quiet_closes_fall_back_to_the_clock(build_settings, redis_client, workers):
    """A hub that announces no minute closes (old, or down): after notice_stale_s the clock closes
    ES's quiet hour, once a later minute bar (NQ 16:01) shows the hub is past it."""
    recorder_plugin.RECORDS.pop("stale", None)
    settings = build_settings({"rec": recorder(["ES", "NQ"], tag="stale")}, worker={"notice_stale_s": 0.001})
    t0 = datetime(2025, 12, 3, 15, 0, tzinfo=UTC)
    clock = FixedClock(t0)
    w = WorkerThread(settings, "rec", RecordingRouter(), clock).start()
    workers.append(w)
    w.wait_live(redis_client)
    publish(redis_client, make_bar("ES", t0 + timedelta(minutes=10), 6000))
    publish(redis_client, make_bar("NQ", t0 + timedelta(minutes=61), 21000))
    wait_for(lambda: len(events("stale", "ES")) == 1 and events("stale", "NQ"), what="the ES and NQ bars")
    clock.advance(timedelta(hours=1, minutes=2))
    wait_for(lambda: events("stale", "ES_hour"), what="hour closed by the clock")
    assert events("stale", "ES_hour")[0]["dt"] == "2025-12-03T16:00:00"
    assert w.shutdown() == 0


class CountingClock(FixedClock):
    """Counts reads per thread: a thread that read it twice has finished what the first read was for."""

    def __init__(self, now: datetime) -> None:
        super().__init__(now)
        self.reads: dict[int, int] = {}

    def __call__(self) -> datetime:
        import threading

        ident = threading.get_ident()
        self.reads[ident] = self.reads.get(ident, 0) + 1
        return self.now


def test_lagging_hub_without_notices_keeps_the_sessions_last_minute(build_settings, redis_client, workers):
    """The hub lags > 89 s at the daily halt and sends no notice: the worker's clock passes the
    close + 90 s before the 15:59 CT bar arrives. The day bar still closes with that minute."""
    recorder_plugin.RECORDS.pop("lag", None)
    settings = build_settings({"rec": recorder(["ES"], tag="lag")}, worker={"notice_stale_s": 0.001})
    close = datetime(2025, 12, 3, 22, 0, tzinfo=UTC)
    clock = CountingClock(close - timedelta(minutes=2))
    w = WorkerThread(settings, "rec", RecordingRouter(), clock).start()
    workers.append(w)
    w.wait_live(redis_client)
    publish(redis_client, make_bar("ES", close - timedelta(minutes=2), 6000, volume=10))
    wait_for(lambda: len(events("lag", "ES")) == 1, what="the 21:58 bar")
    clock.advance(timedelta(minutes=7))  # 22:05: the hub is 5 minutes behind
    clock.reads.clear()
    wait_for(lambda: max(clock.reads.values(), default=0) >= 3, what="clock fallback runs at 22:05")
    assert events("lag", "ES_day") == []
    publish(redis_client, make_bar("ES", close - timedelta(minutes=1), 6010, volume=20))  # 21:59, late
    wait_for(lambda: events("lag", "ES_day"), what="the day bar")
    clock.advance(timedelta(hours=1))
    wait_for(lambda: max(clock.reads.values(), default=0) >= 10, what="more fallback runs")
    (day,) = events("lag", "ES_day")
    assert day["dt"] == "2025-12-03T22:00:00" and day["close"] == 6010 and day["volume"] == 30
    assert w.shutdown() == 0


def test_garbage_is_counted_and_dropped(build_settings, redis_client, workers):
    recorder_plugin.RECORDS.pop("garbage", None)
    settings = build_settings({"rec": recorder(["ES"], tag="garbage")})
    t0 = datetime(2025, 12, 3, 15, 0, tzinfo=UTC)
    w = WorkerThread(settings, "rec", RecordingRouter(), FixedClock(t0)).start()
    workers.append(w)
    w.wait_live(redis_client)
    ch = Keys().bars("ES")
    good = make_bar("ES", t0, 6000).to_dict()
    import json

    garbage = [
        "{not json",
        json.dumps({k: v for k, v in good.items() if k != "close"}),  # missing field
        json.dumps({**good, "close": float("nan")}),
        json.dumps({**good, "high": 1e300}),
        json.dumps({**good, "low": -5.0}),
        "x" * 1_000_000,
        json.dumps({**good, "symbol": "NQ"}),  # wrong channel
    ]
    for payload in garbage:
        redis_client.publish(ch, payload)
    publish(redis_client, make_bar("ES", t0, 6000))
    publish(redis_client, make_bar("ES", t0, 6000), log=False)  # duplicate (the hub's log is idempotent)
    publish(redis_client, make_bar("ES", t0 - timedelta(minutes=5), 6000), log=False)  # out of order
    publish(redis_client, make_bar("ES", t0 + timedelta(minutes=1), 6001))
    wait_for(lambda: len(events("garbage", "ES")) == 2, what="the two good bars")
    hb = wait_for(lambda: (h := w.heartbeat(redis_client)) and sum(h["dropped"].values()) == 9 and h, what="drop counts")
    assert hb["dropped"] == {"malformed": 6, "wrong_symbol": 1, "duplicate": 1, "out_of_order": 1}
    assert hb["state"] == "live" and hb["errors"] == 0
    assert [e["close"] for e in events("garbage", "ES")] == [6000, 6001]
    assert w.shutdown() == 0


def test_reference_feeds_hub_and_neutral(build_settings, redis_client, workers):
    """ZB_hour is built from ZB minute bars; VIX has no source: flat neutral daily bars, flagged."""
    recorder_plugin.RECORDS.pop("refs", None)
    settings = build_settings({"rec": recorder(["ES"], refs=["VIX", "ZB_hour"], tag="refs")})
    t0 = datetime(2025, 12, 3, 21, 59, tzinfo=UTC)
    w = WorkerThread(settings, "rec", RecordingRouter(), FixedClock(t0)).start()
    workers.append(w)
    w.wait_live(redis_client)
    publish(redis_client, make_bar("ZB", t0, 115.5))
    publish(redis_client, make_bar("ES", t0, 6000))
    wait_for(lambda: events("refs", "VIX") and events("refs", "ZB_hour"), what="reference bars")
    vix, zb = events("refs", "VIX"), events("refs", "ZB_hour")
    assert [(v["dt"], v["close"], v["neutral"]) for v in vix] == [("2025-12-03T22:00:00", 18.0, True)]
    assert [(z["dt"], z["close"], z["neutral"]) for z in zb] == [("2025-12-03T22:00:00", 115.5, False)]
    assert events("refs", "ZB") == []  # ZB is a reference: only its hourly feed exists
    assert w.shutdown() == 0
