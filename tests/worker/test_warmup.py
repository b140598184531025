"""Warmup from the sandbox's historical gateway through the lean client (histclient.py), and its cache."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

import numpy as np

from multialpha import cme_time, endpoints
from multialpha.contracts import ContractMap
from multialpha.keys import Keys
from multialpha.sandbox.server import Sandbox
from multialpha.worker import adjust, warmup
from multialpha.worker.cache import BarCache, CacheKey
from multialpha.worker.resample import OHLCV, resample
from multialpha.worker.runtime import run
from tests.conftest import REPO
from tests.worker import recorder_plugin
from tests.worker.conftest import WorkerThread, make_bar, no_history, publish, recorder, wait_for
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
        expected_requests = 1 if attempt == "cold" else 0  # every symbol's history in one request
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
    # One chunk per (root, front contract) piece of the year, each under its raw symbol, plus the
    # new front's hours of the day before each roll (roll.adjust's gap); no continuous key.
    cmap = ContractMap.load(settings.path(settings.contract_map_path))
    start = warmup.history_start(NOW, 250, 338)
    pieces = {(sym, p.contract) for sym in SIX for p in warmup.front_pieces(cmap, sym, cme_time.to_ns(start), cme_time.to_ns(NOW))}
    rolls = [r for sym in SIX for r in adjust.rolls_in(cmap, sym, cme_time.to_ns(start), cme_time.to_ns(NOW))]
    files = list(cache.rglob("*.npy"))
    assert {f.parent.name for f in files} == {c for _, c in pieces} and len(files) == len(pieces) + len(rolls)
    assert all(f.parent.parent.name == "raw_symbol" for f in files)


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


def hourly_source(calls: list[tuple[list[str], int, int]]):
    """A deterministic data source (not databento): one bar per hour per requested symbol."""

    def source(schema, symbols, stype_in, start_ns, end_ns):
        calls.append((list(symbols), start_ns, end_ns))
        ts = [t for t in range(start_ns - start_ns % cme_time.HOUR_NS, end_ns, cme_time.HOUR_NS) if t >= start_ns]
        n = len(ts)
        return {s: {"ts": np.array(ts, dtype=np.int64), "open": np.full(n, 1.0), "high": np.full(n, 2.0),
                    "low": np.full(n, 0.5), "close": np.full(n, 1.5), "volume": np.full(n, 3, dtype=np.int64)}
                for s in symbols}

    return source


def test_cache_fetches_only_missing_ranges(tmp_path):
    calls: list[tuple[list[str], int, int]] = []
    h = warmup.Historian(BarCache(tmp_path), hourly_source(calls), "GLBX.MDP3")
    t0 = datetime(2025, 12, 1, 0, tzinfo=UTC)  # ESZ5 is the front all along
    a = h.hourly("ES", t0, t0 + timedelta(hours=10))
    b = h.hourly("ES", t0 + timedelta(hours=5), t0 + timedelta(hours=15))
    c = h.hourly("ES", t0, t0 + timedelta(hours=15))
    assert len(a["ts"]) == 10 and len(b["ts"]) == 10 and len(c["ts"]) == 15
    assert calls == [
        (["ESZ5"], cme_time.to_ns(t0), cme_time.to_ns(t0 + timedelta(hours=10))),
        (["ESZ5"], cme_time.to_ns(t0 + timedelta(hours=10)), cme_time.to_ns(t0 + timedelta(hours=15))),
    ]
    assert h.requests == 2 and list(c["ts"]) == sorted(set(c["ts"]))


def test_front_pieces_follow_the_hubs_rule_for_every_trading_day():
    cmap = ContractMap.load(REPO / "Data" / "Databento_contract_map.yml")
    start, end = datetime(2024, 11, 20, 15, tzinfo=UTC), datetime(2025, 12, 12, 15, tzinfo=UTC)
    for root in ("ES", "6S", "CL", "NG", "GC", "ZB"):
        pieces = warmup.front_pieces(cmap, root, cme_time.to_ns(start), cme_time.to_ns(end))
        assert pieces[0].start_ns == cme_time.to_ns(start) and pieces[-1].end_ns == cme_time.to_ns(end)
        assert all(a.end_ns == b.start_ns and a.contract != b.contract for a, b in zip(pieces, pieces[1:]))
        for p in pieces:  # every hour of a piece is in a trading day whose front is the piece's contract
            for t in range(p.start_ns, p.end_ns, cme_time.HOUR_NS):
                assert cmap.front(root, cme_time.from_ns(t)).raw_symbol == p.contract, (root, cme_time.iso_z(t))
    assert len(warmup.front_pieces(cmap, "CL", cme_time.to_ns(start), cme_time.to_ns(end))) == 13  # monthly rolls


def test_one_request_for_several_roots_and_rolls_then_none(tmp_path):
    calls: list[tuple[list[str], int, int]] = []
    h = warmup.Historian(BarCache(tmp_path), hourly_source(calls), "GLBX.MDP3")
    boundary = datetime(2025, 12, 12, 15, tzinfo=UTC)
    out = warmup.warm_all(h, ["ES", "CL", "6S"], boundary, 250, 338, progress=False)
    assert h.requests == 1 and len(calls) == 1
    (symbols, _, _), = calls
    span = (cme_time.to_ns(warmup.history_start(boundary, 250, 338)), cme_time.to_ns(boundary))
    expected = {p.contract for r in ("ES", "CL", "6S") for p in warmup.front_pieces(h.cmap, r, *span)}
    assert {"ESZ5", "ESH6", "6SZ5", "6SH6", "CLZ5", "CLF6"} <= expected and sorted(symbols) == sorted(expected)
    assert all(len(w.days) == 250 and len(w.hours) == 338 for w in out.values())
    again = warmup.Historian(BarCache(tmp_path), no_history, "GLBX.MDP3")
    assert warmup.warm_all(again, ["ES", "CL", "6S"], boundary, 250, 338, progress=False)["ES"].days == out["ES"].days
    assert again.requests == 0


def test_first_start_mid_hour_fills_the_hour_from_historical_minutes(build_settings, sandbox_for, redis_client, workers):
    """Started at 15:30 with an empty bar log: 15:00-15:29 come from ohlcv-1m, so the 15:00 hour is whole,
    for both symbols from one minutes request. A restart re-reads them from the cache (no request) and,
    being before the cursor, only into the hour."""
    settings = build_settings({"rec": recorder(["ES", "CL"], tag="mid")},
                              worker={"warmup_daily_bars": 3, "warmup_hourly_bars": 5})
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
    cl = [m["dt"] for m in events("mid", "CL")]
    assert len(cl) >= 20 and cl[-1] <= "2025-12-03T15:30:00"
    assert hb["historical_requests"] == 2  # hours + minutes, each one request for both symbols
    assert w.shutdown() == 0

    recorder_plugin.RECORDS.pop("mid", None)
    w = SandboxWorker(settings, "rec", RecordingRouter(), None).start()
    workers.append(w)
    hb = w.wait_live(redis_client, 60)
    assert hb["historical_requests"] == 0 and events("mid", "ES") == [] and events("mid", "CL") == []
    publish(redis_client, make_bar("ES", datetime(2025, 12, 3, 15, 59, tzinfo=UTC), 6200.0, volume=3))
    wait_for(lambda: events("mid", "ES_hour") and events("mid", "ES_hour")[-1]["dt"] == "2025-12-03T16:00:00",
             what="the 15:00 hour")
    hour = events("mid", "ES_hour")[-1]
    assert hour["open"] == minutes[0]["open"]  # opened by the Historical minute, not the live one
    assert hour["volume"] == sum(m["volume"] for m in minutes) + 3
    assert w.shutdown() == 0


def test_restart_trades_the_missed_minutes_historical_fills_before_the_hub_logs_them(
        build_settings, sandbox_for, redis_client, workers):
    """`up` again after a kill -9 of the supervisor: the worker processed up to 14:59, the clock is
    15:03, and the restarting hub has not logged 15:00-15:02 yet. Those minutes come from Historical
    (the open hour's fill) and are minutes this worker MISSED: replayed, so with late trading on
    they trade as one that stayed up would (as "warmup" they were only simulated: the kill -9
    test's missing orders); the hub's copy published later is a duplicate, dropped."""
    settings = build_settings({"rec": recorder(["ES"], tag="gap", trade="flip")},
                              worker={"warmup_daily_bars": 3, "warmup_hourly_bars": 5, "trade_replayed_bars": True})
    sb = sandbox_for(settings)
    sb.set_clock(NOW + timedelta(minutes=3, seconds=20))
    redis_client.hset(Keys().worker_cursor("rec"), "ES", f"{make_bar('ES', NOW - timedelta(minutes=1)).start_ms}-0")
    recorder_plugin.RECORDS.pop("gap", None)
    router = RecordingRouter()
    w = SandboxWorker(settings, "rec", router, None).start()
    workers.append(w)
    hb = w.wait_live(redis_client, 60)
    missed = events("gap", "ES")
    assert missed and {m["dt"] for m in missed} <= {"2025-12-03T15:01:00", "2025-12-03T15:02:00", "2025-12-03T15:03:00"}
    assert all(m["phase"] == "replay" for m in missed), missed
    assert hb["replayed"] == len(missed)
    # One flip per missed minute, each a late order on its own bar (trade_replayed_bars is on).
    assert [(i.kind, i.late, i.bar_start.minute) for i in router.intents] == [
        ("entry" if n % 2 == 0 else "exit", True, int(m["dt"][14:16]) - 1) for n, m in enumerate(missed)]
    # The restarted hub then publishes the same minutes: dropped, the next new minute is live.
    publish(redis_client, make_bar("ES", NOW + timedelta(minutes=2), 6100.0))
    publish(redis_client, make_bar("ES", NOW + timedelta(minutes=3), 6101.0))
    wait_for(lambda: events("gap", "ES")[-1]["dt"] == "2025-12-03T15:04:00", what="the 15:03 bar")
    assert [m["dt"] for m in events("gap", "ES")] == [m["dt"] for m in missed] + ["2025-12-03T15:04:00"]
    assert events("gap", "ES")[-1]["phase"] == "live"
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


# -- the roll: warmup reads the contract the hub publishes -----------------------------------

ROLL_NOW = datetime(2025, 12, 12, 15, 0, tzinfo=UTC)  # Fri 09:00 CT: 6S rolled on 12-08, ES on 12-11


def front_trade_bars(market, cmap: ContractMap, root: str, start_ns: int, end_ns: int, span_ns: int) -> dict[int, tuple]:
    """Independent aggregation: bucket start -> (o, h, l, c, volume, contract) of the trades of
    ``ContractMap.front(root, trading day)`` only (the hub's choice), straight from the sandbox market."""
    trades = market.trades(root, start_ns, end_ns)
    names: dict = {}
    acc: dict[int, list] = {}
    for ts, iid, px, size in zip(trades["ts_recv"].tolist(), trades["instrument_id"].tolist(),
                                 trades["price"].tolist(), trades["size"].tolist()):
        bucket = ts - ts % span_ns
        day = cme_time.trading_day(bucket)
        if day not in names:
            names[day] = (market.raw_symbols(root, day), cmap.front(root, day).raw_symbol)
        raw, front = names[day]
        if raw[iid] == front:
            acc.setdefault(bucket, []).append((px / 1e9, size, front))
    return {b: (r[0][0], max(p for p, _, _ in r), min(p for p, _, _ in r), r[-1][0], sum(s for _, s, _ in r), r[0][2])
            for b, r in acc.items()}


def front_trade_days(market, cmap: ContractMap, root: str, days: list) -> dict:
    """Trading day -> (o, h, l, c, volume) of the front contract's trades of that day."""
    out = {}
    for d in days:
        op, cl = cme_time.session_bounds(d)
        hours = front_trade_bars(market, cmap, root, cme_time.to_ns(op), cme_time.to_ns(cl), cme_time.HOUR_NS)
        rows = [hours[k] for k in sorted(hours)]
        out[d] = (rows[0][0], max(r[1] for r in rows), min(r[2] for r in rows), rows[-1][3], sum(r[4] for r in rows))
    return out


def roll_sandbox(build_settings, sandbox_for, tag: str):
    """A sandbox at ROLL_NOW (after the 6S and ES rolls): (sandbox, endpoints, contract map)."""
    settings = build_settings({"rec": recorder(["ES"], tag=tag)})
    sb = sandbox_for(settings)
    sb.set_clock(ROLL_NOW)
    return sb, endpoints.from_state(sb.state), ContractMap.load(settings.path(settings.contract_map_path))


def test_warmup_across_a_roll_reads_the_hubs_contract_not_c0(build_settings, sandbox_for, tmp_path):
    sb, ep, cmap = roll_sandbox(build_settings, sandbox_for, "roll")
    cache = BarCache(tmp_path / "cache")
    start = warmup.history_start(ROLL_NOW, 8, 120)
    # A cache written by the old code (continuous ES.c.0) with impossible prices: must never be read.
    bogus = {"ts": np.arange(cme_time.to_ns(start), cme_time.to_ns(ROLL_NOW), cme_time.HOUR_NS, dtype=np.int64)}
    bogus.update({c: np.full(len(bogus["ts"]), 1.0) for c in ("open", "high", "low", "close")})
    bogus["volume"] = np.full(len(bogus["ts"]), 1, dtype=np.int64)
    cache.write(CacheKey(ep.dataset, "ohlcv-1h", "continuous", "ES.c.0"), cme_time.to_ns(start), cme_time.to_ns(ROLL_NOW), bogus)

    fetch = warmup.databento_fetch(lambda: endpoints.bars_client(ep), ep.dataset)
    h = warmup.Historian(cache, fetch, ep.dataset, contracts=cmap)
    warm = warmup.warm_all(h, ["ES", "6S"], ROLL_NOW, 8, 120, progress=False)
    assert h.requests == 1  # both roots, all their contracts, one request

    for root, roll in (("ES", date(2025, 12, 11)), ("6S", date(2025, 12, 8))):
        w = warm[root]
        assert all(b.close != 1.0 for b in w.hours)
        expected = front_trade_bars(sb.market, cmap, root, cme_time.to_ns(w.hours[0].start), cme_time.to_ns(ROLL_NOW),
                                    cme_time.HOUR_NS)
        got = {cme_time.to_ns(b.start): (b.open, b.high, b.low, b.close, b.volume) for b in w.hours}
        assert got == {k: v[:5] for k, v in expected.items()}, root
        contracts = {v[5] for k, v in expected.items()}
        assert cmap.front(root, roll).raw_symbol in contracts and len(contracts) == 2  # the window spans the roll
        days = {cme_time.trading_day(d.start): (d.open, d.high, d.low, d.close, d.volume) for d in w.days}
        assert len(days) == 8 and max(days) == date(2025, 12, 11)
        assert days == front_trade_days(sb.market, cmap, root, sorted(days)), root

        # The check can fail: between roll and expiry, Databento's calendar c.0 is the old contract.
        store = endpoints.historical_client(ep).timeseries.get_range(
            dataset=ep.dataset, start=warmup.day_start_ns(roll), end=cme_time.to_ns(ROLL_NOW),
            symbols=[f"{root}.c.0"], schema="ohlcv-1h", stype_in="continuous")
        c0 = {int(r["ts_event"]): r["close"] / 1e9 for r in store.to_ndarray()}
        after_roll = {k: v[3] for k, v in got.items() if k >= warmup.day_start_ns(roll)}
        assert after_roll and sum(c0.get(k) != v for k, v in after_roll.items()) > len(after_roll) // 2, root

    again = warmup.Historian(cache, no_history, ep.dataset, contracts=cmap)
    warm2 = warmup.warm_all(again, ["ES", "6S"], ROLL_NOW, 8, 120, progress=False)
    assert again.requests == 0 and warm2["ES"].days == warm["ES"].days and warm2["6S"].hours == warm["6S"].hours


def test_databento_fetch_splits_one_request_by_contract(build_settings, sandbox_for):
    settings = build_settings({"rec": recorder(["ES"], tag="split")})
    sb = sandbox_for(settings)
    sb.set_clock(ROLL_NOW)
    ep = endpoints.from_state(sb.state)
    fetch = warmup.databento_fetch(lambda: endpoints.bars_client(ep), ep.dataset)
    s, e = warmup.day_start_ns(date(2025, 12, 8)), cme_time.to_ns(ROLL_NOW)
    both = fetch("ohlcv-1h", ["6SZ5", "6SH6", "ESH6"], "raw_symbol", s, e)
    for sym in ("6SZ5", "6SH6", "ESH6"):
        alone = fetch("ohlcv-1h", [sym], "raw_symbol", s, e)[sym]
        assert len(alone["ts"]) > 20
        assert all(np.array_equal(both[sym][c], alone[c]) for c in alone), sym
    assert not np.array_equal(both["6SZ5"]["close"][:20], both["6SH6"]["close"][:20])


def test_a_root_without_a_contract_rule_falls_back_to_c0(tmp_path):
    calls: list[tuple[list[str], int, int]] = []
    h = warmup.Historian(BarCache(tmp_path), hourly_source(calls), "GLBX.MDP3")
    t0 = datetime(2025, 12, 8, 0, tzinfo=UTC)
    (contract, cols), = h.segments("ohlcv-1h", "XX", t0, t0 + timedelta(hours=3))
    assert contract == "" and len(cols["ts"]) == 3 and [c[0] for c in calls] == [["XX.c.0"]]
    assert (tmp_path / "GLBX.MDP3" / "ohlcv-1h" / "continuous" / "XX.c.0").is_dir()


def contract_hour_closes(market, root: str, contract: str, start_ns: int, end_ns: int) -> dict[int, float]:
    """Independent of worker/adjust.py: hour start -> last trade price of ``contract``, from the sandbox market."""
    trades = market.trades(root, start_ns, end_ns)
    out: dict[int, float] = {}
    for ts, iid, px in zip(trades["ts_recv"].tolist(), trades["instrument_id"].tolist(), trades["price"].tolist()):
        if market.raw_symbols(root, cme_time.trading_day(ts)).get(iid) == contract:
            out[ts - ts % cme_time.HOUR_NS] = px / 1e9
    return out


def test_warmup_across_a_sandbox_roll_back_adjusts_hours_and_days(build_settings, sandbox_for, tmp_path):
    sb, ep, cmap = roll_sandbox(build_settings, sandbox_for, "adjust")
    fetch = warmup.databento_fetch(lambda: endpoints.bars_client(ep), ep.dataset)
    h = warmup.Historian(BarCache(tmp_path / "cache"), fetch, ep.dataset, contracts=cmap)
    adjusted = warmup.warm_all(h, ["ES", "6S"], ROLL_NOW, 8, 150, progress=False, adjust="difference")
    assert h.requests == 1  # both roots' history and both rolls' gap hours: one request
    raw = warmup.warm_all(h, ["ES", "6S"], ROLL_NOW, 8, 150, progress=False)
    assert h.requests == 1

    for root, roll in (("ES", date(2025, 12, 11)), ("6S", date(2025, 12, 8))):
        old, new = cmap.front(root, cme_time.previous_trading_day(roll)).raw_symbol, cmap.front(root, roll).raw_symbol
        assert adjusted[root].contract == new
        # The rule, recomputed from the market's trades: last hour of the day before the roll both traded.
        s, e = warmup.day_start_ns(cme_time.previous_trading_day(roll)), warmup.day_start_ns(roll)
        a, b = contract_hour_closes(sb.market, root, old, s, e), contract_hour_closes(sb.market, root, new, s, e)
        common = max(set(a) & set(b))
        gap = b[common] - a[common]
        assert abs(gap) > 0  # the sandbox's calendar spread: a real jump to remove
        at = warmup.day_start_ns(roll)
        for adj_bar, raw_bar in zip(adjusted[root].hours, raw[root].hours, strict=True):
            shift = gap if cme_time.to_ns(adj_bar.start) < at else 0.0  # the new front is raw
            assert adj_bar.start == raw_bar.start and adj_bar.volume == raw_bar.volume
            for k in ("open", "high", "low", "close"):
                assert getattr(adj_bar, k) == pytest.approx(getattr(raw_bar, k) + shift, abs=1e-9), (root, k)
        for adj_day, raw_day in zip(adjusted[root].days, raw[root].days, strict=True):
            shift = gap if cme_time.to_ns(adj_day.start) < at else 0.0
            assert adj_day.close == pytest.approx(raw_day.close + shift, abs=1e-9), root
        # Continuous across the roll: the step from the old front's last hour to the new front's
        # first is no larger than the market's own hour-to-hour moves (raw, it is the spread).
        hours = adjusted[root].hours
        i = next(i for i, x in enumerate(hours) if cme_time.to_ns(x.start) >= at)
        moves = [abs(y.open - x.close) for x, y in zip(hours[:i - 1], hours[1:i])]  # the old front's own
        assert len(moves) >= 20 and abs(hours[i].open - hours[i - 1].close) <= max(moves), root
        assert abs(raw[root].hours[i].open - raw[root].hours[i - 1].close) > max(moves), root  # can fail


def test_a_live_worker_continues_its_hours_across_the_roll_in_the_warmup_level(build_settings, sandbox_for,
                                                                                redis_client, workers):
    """Warmed before the ES roll (anchor ESZ5), the live worker meets ESH6 minutes: its hour bar is
    shifted by the gap of the two contracts' last common hour of 12-10 (Historical, asked once)."""
    settings = build_settings({"rec": recorder(["ES"], tag="liveroll")},
                              worker={"warmup_daily_bars": 3, "warmup_hourly_bars": 30})
    sb = sandbox_for(settings)
    sb.set_clock(datetime(2025, 12, 10, 21, 30, tzinfo=UTC))  # 15:30 CT, the old front's last half hour
    w = SandboxWorker(settings, "rec", RecordingRouter(), None).start()
    workers.append(w)
    before = w.wait_live(redis_client, 60)["historical_requests"]
    publish(redis_client, make_bar("ES", datetime(2025, 12, 10, 21, 59, tzinfo=UTC), 6000.0, contract="ESZ5"))
    wait_for(lambda: any(e["dt"] == "2025-12-10T22:00:00" for e in events("liveroll", "ES_hour")), what="ESZ5 hour")
    sb.set_clock(datetime(2025, 12, 11, 0, 5, tzinfo=UTC))  # the new session is on: 12-10 is history
    publish(redis_client, make_bar("ES", datetime(2025, 12, 10, 23, 0, tzinfo=UTC), 6100.0, contract="ESH6"))
    publish(redis_client, make_bar("ES", datetime(2025, 12, 10, 23, 59, tzinfo=UTC), 6110.0, contract="ESH6"))
    hour = wait_for(lambda: [e for e in events("liveroll", "ES_hour") if e["dt"] == "2025-12-11T00:00:00"],
                    what="ESH6 hour")[0]
    s, e = warmup.day_start_ns(date(2025, 12, 10)), warmup.day_start_ns(date(2025, 12, 11))
    a, b = contract_hour_closes(sb.market, "ES", "ESZ5", s, e), contract_hour_closes(sb.market, "ES", "ESH6", s, e)
    gap = b[max(set(a) & set(b))] - a[max(set(a) & set(b))]
    old = [x for x in events("liveroll", "ES_hour") if x["dt"] == "2025-12-10T22:00:00"][0]
    assert old["close"] == 6000.0  # the anchor's own bars stay raw
    assert hour["close"] == pytest.approx(6110.0 - gap) and hour["open"] == pytest.approx(6100.0 - 0.5 - gap)
    # The gap: one Historical request for the roll (the heartbeat reports it on its next beat).
    wait_for(lambda: w.heartbeat(redis_client)["historical_requests"] == before + 1, what="one gap request")
    assert w.shutdown() == 0
