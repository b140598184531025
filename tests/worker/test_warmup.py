"""Warmup from the sandbox's historical gateway through the real databento client, and its cache."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from multialpha import cme_time, endpoints
from multialpha.sandbox.server import Sandbox
from multialpha.worker import warmup
from multialpha.worker.cache import BarCache
from multialpha.worker.resample import OHLCV, resample
from multialpha.worker.runtime import run
from tests.worker import recorder_plugin
from tests.worker.conftest import WorkerThread, make_bar, publish, recorder, wait_for
from tests.worker.doubles import RecordingRouter

UTC = timezone.utc
NOW = datetime(2025, 12, 3, 15, 0, tzinfo=UTC)  # Wed 09:00 CT
SIX = ["ES", "NQ", "CL", "GC", "6E", "ZB"]


class SandboxWorker(WorkerThread):
    """The worker resolving its endpoints itself (sandbox state file, sandbox clock)."""

    def start(self) -> "SandboxWorker":
        def target() -> None:
            self.rc.append(run(self.settings, self.strategy, stop_event=self.stop, router=self.router, progress=False))

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()
        return self


@pytest.fixture
def sandbox_for():
    boxes: list[Sandbox] = []

    def start(settings):
        sb = Sandbox(settings, speed=0)
        sb.start()
        sb.set_clock(NOW)
        boxes.append(sb)
        return sb

    yield start
    for sb in boxes:
        sb.stop()


def events(tag: str, feed: str) -> list[dict]:
    return [e for e in recorder_plugin.RECORDS.get(tag, []) if e.get("feed") == feed]


def test_six_symbols_warm_up_then_second_start_hits_the_cache(build_settings, sandbox_for, redis_client, workers):
    settings = build_settings({"rec": recorder(SIX, tag="six")}, worker={"warmup_daily_bars": 250, "warmup_hourly_bars": 338})
    sandbox_for(settings)
    for attempt in ("cold", "warm"):
        recorder_plugin.RECORDS.pop("six", None)
        w = SandboxWorker(settings, "rec", RecordingRouter(), None).start()
        workers.append(w)
        hb = w.wait_live(redis_client, 60)
        expected_requests = len(SIX) if attempt == "cold" else 0
        assert hb["historical_requests"] == expected_requests, attempt
        for sym in SIX:
            days, hours = events("six", f"{sym}_day"), events("six", f"{sym}_hour")
            assert len(days) == 250 and len(hours) == 338, sym
            assert all(e["phase"] == "warmup" for e in days + hours)
            assert hours[-1]["dt"] == "2025-12-03T15:00:00"  # the last complete hour before now
            assert days[-1]["dt"] == "2025-12-02T22:00:00"  # yesterday's 16:00 CT close (today is open)
            # Every daily bar closes at 16:00 Chicago time, whatever the DST regime.
            for d in days:
                close = datetime.fromisoformat(d["dt"]).replace(tzinfo=UTC).astimezone(cme_time.CHICAGO)
                assert (close.hour, close.minute) == (16, 0), d
        assert w.shutdown() == 0
    cache = Path(settings.path(settings.worker.cache_dir))
    assert len(list(cache.rglob("*.parquet"))) == len(SIX)


def test_warmup_days_match_minute_resampling_and_live_completes_the_day(build_settings, sandbox_for, redis_client, workers):
    """One boundary rule: days from warmup hours == days from the sandbox's own minute bars;
    the live worker completes today's day from the warmup hours + live minutes; warmup sends no order."""
    settings = build_settings(
        {"rec": recorder(["ES"], tag="join", trade="warmup_entry")}, worker={"warmup_daily_bars": 5, "warmup_hourly_bars": 30}
    )
    sb = sandbox_for(settings)
    ep = endpoints.from_state(sb.state)
    client = endpoints.historical_client(ep)
    day = cme_time.trading_day(NOW - timedelta(days=1))
    open_, close = cme_time.session_bounds(day)
    store = client.timeseries.get_range(
        dataset=ep.dataset, start=cme_time.to_ns(open_), end=cme_time.to_ns(close),
        symbols=["ES.c.0"], schema="ohlcv-1m", stype_in="continuous",
    )
    arr = store.to_ndarray()
    minutes = [
        OHLCV(cme_time.from_ns(int(r["ts_event"])), cme_time.from_ns(int(r["ts_event"])) + timedelta(minutes=1),
              r["open"] / 1e9, r["high"] / 1e9, r["low"] / 1e9, r["close"] / 1e9, int(r["volume"]))
        for r in arr
    ]
    (from_minutes,) = resample(minutes, "day")

    router = RecordingRouter()
    w = SandboxWorker(settings, "rec", router, None).start()
    workers.append(w)
    w.wait_live(redis_client, 60)
    days = events("join", "ES_day")
    assert len(days) == 5
    d = days[-1]
    assert d["dt"] == close.replace(tzinfo=None).isoformat()
    assert (d["open"], d["high"], d["low"], d["close"], d["volume"]) == pytest.approx(
        (from_minutes.open, from_minutes.high, from_minutes.low, from_minutes.close, from_minutes.volume)
    )
    assert [e for e in recorder_plugin.RECORDS["join"] if "warmup_signal" in e] == [{"warmup_signal": "ES", "accepted": True}]
    assert router.intents == []  # the warmup entry signal stayed inside the worker (simulated position)

    # Today (3 Dec) opened 23:00Z on 2 Dec: warmup hours up to 15:00Z are already in the open day.
    today_hours = [h for h in events("join", "ES_hour") if h["dt"] > "2025-12-02T23:00:00"]
    publish(redis_client, make_bar("ES", NOW, 6100.0, volume=7))
    publish(redis_client, make_bar("ES", datetime(2025, 12, 3, 21, 59, tzinfo=UTC), 6200.0, volume=3))
    wait_for(lambda: len(events("join", "ES_day")) == 6, what="today's daily bar")
    today = events("join", "ES_day")[-1]
    assert today["dt"] == "2025-12-03T22:00:00" and today["phase"] == "live"
    first_hour = [h for h in events("join", "ES_hour") if h["dt"] == "2025-12-03T00:00:00"][0]
    assert today["open"] == first_hour["open"]  # the day started in warmup, not at the first live minute
    assert today["volume"] == sum(h["volume"] for h in today_hours) + 7 + 3
    assert today["close"] == 6200.0
    assert w.shutdown() == 0
    assert router.intents == []  # warmup-phase signals never reach the router


def test_cache_fetches_only_missing_ranges(tmp_path):
    calls: list[tuple[int, int]] = []

    def source(schema, symbol, stype_in, start_ns, end_ns):  # a deterministic data source, not databento
        calls.append((start_ns, end_ns))
        ts = list(range(start_ns - start_ns % cme_time.HOUR_NS, end_ns, cme_time.HOUR_NS))
        ts = [t for t in ts if t >= start_ns]
        import numpy as np

        n = len(ts)
        return {"ts": np.array(ts, dtype=np.int64), "open": np.full(n, 1.0), "high": np.full(n, 2.0),
                "low": np.full(n, 0.5), "close": np.full(n, 1.5), "volume": np.full(n, 3, dtype=np.int64)}

    h = warmup.Historian(BarCache(tmp_path), source, "GLBX.MDP3")
    t0 = datetime(2025, 12, 1, 0, tzinfo=UTC)
    a = h.hourly("ES", t0, t0 + timedelta(hours=10))
    b = h.hourly("ES", t0 + timedelta(hours=5), t0 + timedelta(hours=15))
    c = h.hourly("ES", t0, t0 + timedelta(hours=15))
    assert len(a["ts"]) == 10 and len(b["ts"]) == 10 and len(c["ts"]) == 15
    assert calls == [
        (cme_time.to_ns(t0), cme_time.to_ns(t0 + timedelta(hours=10))),
        (cme_time.to_ns(t0 + timedelta(hours=10)), cme_time.to_ns(t0 + timedelta(hours=15))),
    ]
    assert h.requests == 2 and list(c["ts"]) == sorted(set(c["ts"]))


def test_first_start_mid_hour_fills_the_hour_from_historical_minutes(build_settings, sandbox_for, redis_client, workers):
    """Started at 15:30 with an empty bar log: 15:00-15:29 come from ohlcv-1m, so the 15:00 hour is whole.
    A restart re-reads them from the cache (no request) and, being before the cursor, only into the hour."""
    settings = build_settings({"rec": recorder(["ES"], tag="mid")}, worker={"warmup_daily_bars": 3, "warmup_hourly_bars": 5})
    sb = sandbox_for(settings)
    sb.set_clock(NOW + timedelta(minutes=30))
    recorder_plugin.RECORDS.pop("mid", None)
    w = SandboxWorker(settings, "rec", RecordingRouter(), None).start()
    workers.append(w)
    hb = w.wait_live(redis_client, 60)
    minutes = events("mid", "ES")
    stamps = [m["dt"] for m in minutes]
    assert stamps == sorted(set(stamps)) and "2025-12-03T15:01:00" <= stamps[0] and stamps[-1] <= "2025-12-03T15:30:00"
    assert len(minutes) >= 20 and all(e["phase"] == "warmup" for e in minutes)  # a quiet minute prints no bar
    assert hb["historical_requests"] == 2  # hours + minutes
    assert w.shutdown() == 0

    recorder_plugin.RECORDS.pop("mid", None)
    w = SandboxWorker(settings, "rec", RecordingRouter(), None).start()
    workers.append(w)
    hb = w.wait_live(redis_client, 60)
    assert hb["historical_requests"] == 0 and events("mid", "ES") == []
    publish(redis_client, make_bar("ES", datetime(2025, 12, 3, 15, 59, tzinfo=UTC), 6200.0, volume=3))
    wait_for(lambda: events("mid", "ES_hour") and events("mid", "ES_hour")[-1]["dt"] == "2025-12-03T16:00:00",
             what="the 15:00 hour")
    hour = events("mid", "ES_hour")[-1]
    assert hour["open"] == minutes[0]["open"]  # opened by the Historical minute, not the live one
    assert hour["volume"] == sum(m["volume"] for m in minutes) + 3
    assert w.shutdown() == 0


def test_example_plugin_strategy_trades_live_after_sandbox_warmup(build_settings, sandbox_for, redis_client, workers):
    """The installed example plugin end to end: warm SMA of hourly closes, live entry, its own veto features."""
    settings = build_settings(
        {"ex": {"strategy_type": "example_sma", "params": {"period": 5}, "instruments": {"ES": {"size": 2}}}},
        worker={"warmup_daily_bars": 3, "warmup_hourly_bars": 10},
    )
    sandbox_for(settings)
    router = RecordingRouter()
    w = SandboxWorker(settings, "ex", router, None).start()
    workers.append(w)
    w.wait_live(redis_client, 60)
    assert router.intents == []  # nothing leaves during warmup, whatever the SMA said
    publish(redis_client, make_bar("ES", NOW, 99_000.0, contract="ESZ5"))  # far above any hourly SMA
    wait_for(lambda: router.intents, what="the entry")
    (entry,) = router.intents
    assert (entry.strategy, entry.kind, entry.side, entry.quantity, entry.price) == ("ex", "entry", "long", 2, 99_000.0)
    assert entry.reason == "close above hourly SMA" and entry.bar_start == NOW
    publish(redis_client, make_bar("ES", NOW + timedelta(minutes=1), 10.0, contract="ESZ5"))  # far below: exit
    wait_for(lambda: len(router.intents) == 2, what="the exit")
    assert router.intents[1].kind == "exit"
    assert w.shutdown() == 0
