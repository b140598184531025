"""The hub against the real sandbox gateways (unmodified databento client) and a
real redis-server. The sandbox clock is pinned and moved by ``set_clock``: the
live gateway releases the trades up to the clock, so nothing sleeps for feed time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from multialpha import cme_time, heartbeat
from multialpha.keys import Keys
from tests.conftest import SHIPPED_CONFIG
from tests.hub.conftest import (
    HUB_ENV, MIN, Recorder, assert_complete, expected_bars, logged_bars, start_hub, utc, wait_for,
)

DEC3 = date(2025, 12, 3)
A0 = utc(2025, 12, 3, 21, 0)  # one hour before the Dec 3 close
DEC3_CLOSE = cme_time.session_bounds(DEC3)[1]
DEC4_CLOSE = cme_time.session_bounds(date(2025, 12, 4))[1]


def ns(dt) -> int:
    return cme_time.to_ns(dt)


def release_phase_a(sb, h) -> None:
    """Once the hub is connected, release Dec 3 21:00-22:00 (up to the close)."""
    wait_for(lambda: h.hub.session and h.hub.session.streaming(), 20, "hub streaming")
    sb.set_clock(DEC3_CLOSE)


def complete(client, keys, roots, want):
    def check() -> bool:
        try:
            assert_complete(logged_bars(client, keys, roots), want)
            return True
        except AssertionError:
            return False

    return check


def no_duplicates(rec: Recorder, client, keys, roots) -> None:
    wait_for(lambda: len(rec.messages) >= sum(client.xlen(keys.bar_log(r)) for r in roots), 10, "pub/sub to catch up")
    dup = [k for k, n in Counter(rec.keys()).items() if n > 1]
    assert not dup, f"bars published twice: {dup[:5]}"
    logged = {(r, cme_time.iso_z(m)) for r, m in logged_bars(client, keys, roots)}
    assert set(rec.keys()) == logged


def test_bars_equal_independent_aggregation_with_roll_spreads_and_quiet_minutes(
    hub_settings, sandbox_at, redis_client
):
    settings = hub_settings()
    keys, roots = Keys(settings.redis.namespace), settings.hub_symbols()
    t0 = utc(2025, 12, 10, 21, 0)  # trading day Dec 10 (ESZ5 front) ...
    sb = sandbox_at(settings, t0)
    rec = Recorder(redis_client, keys)
    h = start_hub(settings)
    try:
        wait_for(lambda: h.hub.session and h.hub.session.streaming(), 20, "hub streaming")
        sb.set_clock(cme_time.session_bounds(date(2025, 12, 10))[1])
        want_a = expected_bars(sb.market, settings, roots, ns(t0), ns(cme_time.session_bounds(date(2025, 12, 10))[1]))
        wait_for(complete(redis_client, keys, roots, want_a), 60, "Dec 10 bars")
        sb.set_clock(cme_time.session_bounds(date(2025, 12, 11))[1])  # ... then Dec 11 (ESH6 front)
        end = cme_time.session_bounds(date(2025, 12, 11))[1]
        want = expected_bars(sb.market, settings, roots, ns(t0), ns(end))
        wait_for(complete(redis_client, keys, roots, want), 60, "Dec 11 bars")
        got = logged_bars(redis_client, keys, roots)
        assert len(got) > 10_000
        # The roll: ES bars name ESZ5 on Dec 10 and ESH6 from the Dec 11 session on.
        es = {m: v[6] for (r, m), v in got.items() if r == "ES"}
        assert {c for m, c in es.items() if m < ns(utc(2025, 12, 10, 22))} == {"ESZ5"}
        assert {c for m, c in es.items() if m >= ns(utc(2025, 12, 10, 23))} == {"ESH6"}
        events = redis_client.xrange(keys.events())
        assert {"event": "roll", "symbol": "ES", "old": "ESZ5", "new": "ESH6"}.items() <= events[0][1].items()
        # Spreads and back months traded and were left out (the all-trades bars would differ).
        day = date(2025, 12, 11)
        raw = sb.market.raw_symbols("ES", day)
        es_trades = sb.market.trades("ES", ns(utc(2025, 12, 11, 14)), ns(utc(2025, 12, 11, 15)))
        traded = Counter(raw[i] for i in es_trades["instrument_id"].tolist())
        assert traded["ESH6-ESM6"] > 0 and traded["ESM6"] > 0 and traded["ESH6"] > 0
        # A thin product has quiet minutes: no bar printed for them, and none invented.
        thin = sorted(m for r, m in got if r == "6N")
        gaps = [b - a for a, b in zip(thin, thin[1:]) if b - a > MIN and b - a < 30 * MIN]
        assert gaps, "expected quiet minutes in 6N"
        assert h.hub.aggregator.late == 0 and h.hub.aggregator.rejected == 0
        no_duplicates(rec, redis_client, keys, roots)
        assert {m["source"] for m in rec.messages} == {"live"}
    finally:
        rec.stop()
        assert h.stop() == 0


FAULTS = ["rst", "close", "stall", "refuse", "error"]


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_reconnects_and_bar_set_stays_complete(fault, hub_settings, sandbox_at, redis_client):
    extra = {"MULTIALPHA__HUB__SILENCE_TIMEOUT_S": "1.0"} if fault == "stall" else {}
    settings = hub_settings(MULTIALPHA__STRATEGIES__IBS_B__ENABLED="false", **extra)
    keys, roots = Keys(settings.redis.namespace), settings.hub_symbols()
    sb = sandbox_at(settings, A0, from_date=DEC3)
    rec = Recorder(redis_client, keys)
    h = start_hub(settings)
    try:
        release_phase_a(sb, h)
        wait_for(complete(redis_client, keys, roots, expected_bars(sb.market, settings, roots, ns(A0), ns(DEC3_CLOSE))),
                 60, "phase A")
        session = h.hub.session
        r0 = session.reconnects
        # Nothing of Dec 4 reaches the current connection: whatever the hub gets of it
        # comes from the replay after the fault.
        sb.faults.stall()
        sb.set_clock(utc(2025, 12, 4, 15, 0))
        if fault == "rst":
            sb.faults.rst()
        elif fault == "close":
            sb.faults.close()
        elif fault == "error":
            sb.faults.error("sandbox says no")
        elif fault == "refuse":
            sb.faults.refuse()  # until accept()
            sb.faults.rst()
            wait_for(lambda: session.reconnects >= r0 + 3, 20, "refused attempts")
            assert "refused" in session.last_error.lower() or "connect" in session.last_error.lower()
            sb.faults.accept()
        elif fault == "stall":
            wait_for(lambda: session.reconnects >= r0 + 2, 20, "silence detection")
            assert "silent" in session.last_error
        wait_for(lambda: session.reconnects > r0, 20, "a reconnect")
        sb.faults.unstall()
        # The replay delivered everything up to the clock before the clock moves on.
        wait_for(lambda: h.hub.aggregator.clock >= ns(utc(2025, 12, 4, 14, 59)), 30, "the replay")
        sb.set_clock(DEC4_CLOSE)
        want = expected_bars(sb.market, settings, roots, ns(A0), ns(DEC4_CLOSE))
        wait_for(complete(redis_client, keys, roots, want), 60, "bars after the fault")
        if fault == "error":
            assert h.hub.errors >= 1
        no_duplicates(rec, redis_client, keys, roots)
        # Dec 4 minutes before the clock at reconnect (15:00) are recovered: source replay.
        es = {json.loads(json.dumps(m))["timestamp"]: m["source"] for m in rec.messages if m["symbol"] == "ES"}
        assert es["2025-12-04T10:00:00Z"] == "replay"
        assert es["2025-12-03T21:30:00Z"] == "live"
        if fault != "stall":  # a 1 s silence timeout also reconnects on every idle stretch
            assert es["2025-12-04T18:00:00Z"] == "live"
        assert h.hub.aggregator.late == 0
    finally:
        rec.stop()
        assert h.stop() == 0


def _hub_proc(tmp_path: Path, redis_server, log_name: str) -> subprocess.Popen:
    env = {
        **os.environ,
        **HUB_ENV,
        "MULTIALPHA__STRATEGIES__IBS_B__ENABLED": "false",
        "MULTIALPHA__REDIS__PORT": str(redis_server.port),
        "MULTIALPHA__REDIS__HOST": redis_server.host,
        "MULTIALPHA_RUNTIME_DIR": str(tmp_path / "run"),
        "MULTIALPHA_CACHE_DIR": str(tmp_path / "cache"),
    }
    env.pop("DATABENTO_API_KEY", None)
    err = open(tmp_path / log_name, "wb")
    return subprocess.Popen(
        [sys.executable, "-m", "multialpha", "hub", "--config", str(SHIPPED_CONFIG)],
        env=env, stdout=subprocess.DEVNULL, stderr=err,
    )


def test_kill_9_mid_day_then_restart_no_missing_no_duplicate(
    hub_settings, sandbox_at, redis_client, redis_server, tmp_path
):
    settings = hub_settings(MULTIALPHA__STRATEGIES__IBS_B__ENABLED="false")
    keys, roots = Keys(settings.redis.namespace), settings.hub_symbols()
    sb = sandbox_at(settings, A0, from_date=DEC3)
    rec = Recorder(redis_client, keys)
    first = _hub_proc(tmp_path, redis_server, "hub1.log")
    second = None
    try:
        wait_for(lambda: (heartbeat.read(redis_client, keys, "hub") or {}).get("streaming"), 30, "hub streaming")
        sb.set_clock(DEC3_CLOSE)
        wait_for(complete(redis_client, keys, roots, expected_bars(sb.market, settings, roots, ns(A0), ns(DEC3_CLOSE))),
                 60, "phase A")
        sb.set_clock(utc(2025, 12, 4, 10, 0))
        dec4 = cme_time.to_ns(utc(2025, 12, 3, 23, 0)) // 1_000_000
        wait_for(lambda: redis_client.xrange(keys.bar_log("ES"), min=dec4, count=1), 30, "some Dec 4 bars")
        first.send_signal(signal.SIGKILL)
        assert first.wait(5) == -signal.SIGKILL
        second = _hub_proc(tmp_path, redis_server, "hub2.log")
        wait_for(lambda: (heartbeat.read(redis_client, keys, "hub") or {}).get("pid") == second.pid, 30, "second hub up")
        wait_for(lambda: heartbeat.read(redis_client, keys, "hub").get("streaming"), 30, "second hub streaming")
        sb.set_clock(DEC4_CLOSE)
        want = expected_bars(sb.market, settings, roots, ns(A0), ns(DEC4_CLOSE))
        wait_for(complete(redis_client, keys, roots, want), 60, "bars after the restart")
        no_duplicates(rec, redis_client, keys, roots)
        # SIGTERM: exit 0 promptly, and the still-open last minute is not published.
        second.send_signal(signal.SIGTERM)
        assert second.wait(5) == 0
        last_es = max(m for r, m in want if r == "ES")
        assert ("ES", last_es) not in logged_bars(redis_client, keys, roots)
    finally:
        rec.stop()
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def test_control_ping_garbage_heartbeat_and_shutdown(hub_settings, sandbox_at, redis_client):
    settings = hub_settings(MULTIALPHA__STRATEGIES__IBS_B__ENABLED="false")
    keys, roots = Keys(settings.redis.namespace), settings.hub_symbols()
    sb = sandbox_at(settings, A0, from_date=DEC3)
    h = start_hub(settings)
    try:
        release_phase_a(sb, h)
        wait_for(complete(redis_client, keys, roots, expected_bars(sb.market, settings, roots, ns(A0), ns(DEC3_CLOSE))),
                 60, "bars")
        wait_for(lambda: redis_client.pubsub_numsub(keys.hub_control())[0][1] >= 1, 10, "control subscription")
        replies = redis_client.pubsub()
        replies.subscribe(keys.hub_control_reply("t-1"))
        replies.get_message(timeout=1)
        for garbage in ("{{{", '{"command":"format-disk"}', "[]", '{"command":"ping"}'):
            redis_client.publish(keys.hub_control(), garbage)
        redis_client.publish(keys.hub_control(), json.dumps({"command": "ping", "id": "t-1"}))
        msg = wait_for(lambda: replies.get_message(timeout=0.1), 10, "pong")
        pong = json.loads(msg["data"])
        assert pong["reply"] == "pong" and pong["pid"] == os.getpid() and pong["counters"]["bars"] > 0
        assert h.hub.control.malformed == 4
        hb = wait_for(
            lambda: (d := heartbeat.read(redis_client, keys, "hub")) and d["counters"]["bars"] == h.hub.aggregator.bars and d,
            10, "a heartbeat written after the bars",
        )
        assert hb["pid"] == os.getpid() and hb["symbols"] == roots
        assert hb["gateway"].endswith(f":{sb.state.live_port}")
        assert set(hb["counters"]) >= {"trades", "bars", "late", "rejected", "reconnects"}
        assert hb["last_bar"]["ES"] == "2025-12-03T21:58:00Z"
        assert redis_client.ttl(keys.heartbeat("hub")) > 0
        redis_client.publish(keys.hub_control(), json.dumps({"command": "shutdown"}))
        h.thread.join(5)
        assert not h.thread.is_alive() and h.result == [0]
        assert heartbeat.read(redis_client, keys, "hub") is None
    finally:
        if h.thread.is_alive():
            h.stop()


def test_reload_resubscribes_when_the_instrument_set_changes(hub_settings, sandbox_at, redis_client, monkeypatch):
    settings = hub_settings(MULTIALPHA__STRATEGIES__IBS_B__ENABLED="false")
    keys, roots = Keys(settings.redis.namespace), settings.hub_symbols()
    assert roots == ["ES", "NQ", "RTY", "YM"]
    sb = sandbox_at(settings, A0, from_date=DEC3)
    h = start_hub(settings)
    try:
        release_phase_a(sb, h)
        wait_for(complete(redis_client, keys, roots, expected_bars(sb.market, settings, roots, ns(A0), ns(DEC3_CLOSE))),
                 60, "phase A")
        # `reload` re-reads the config from the process environment: enable ibs_b there.
        for k, v in {**HUB_ENV, "MULTIALPHA__REDIS__PORT": str(settings.redis.port),
                     "MULTIALPHA__REDIS__HOST": settings.redis.host,
                     "MULTIALPHA_RUNTIME_DIR": str(settings.path(settings.runtime_dir)),
                     "MULTIALPHA_CACHE_DIR": str(settings.path(settings.worker.cache_dir))}.items():
            monkeypatch.setenv(k, v)
        monkeypatch.delenv("DATABENTO_API_KEY", raising=False)
        r0 = h.hub.session.reconnects
        wait_for(lambda: redis_client.pubsub_numsub(keys.hub_control())[0][1] >= 1, 10, "control subscription")
        redis_client.publish(keys.hub_control(), json.dumps({"command": "reload"}))
        wait_for(lambda: h.hub.session.reconnects > r0 and h.hub.session.streaming(), 20, "resubscribed")
        new = h.hub.roots
        assert set(new) - set(roots) == {"6B", "6E", "6J", "6N", "6S", "PL", "SI", "ZB"}
        resume = h.hub.aggregator.floor
        assert resume == ns(utc(2025, 12, 3, 21, 59))
        end = utc(2025, 12, 4, 12, 0)
        sb.set_clock(end)
        want = expected_bars(sb.market, settings, roots, ns(A0), ns(end))
        added = [r for r in new if r not in roots]
        want.update(expected_bars(sb.market, settings, added, resume, ns(end)))
        wait_for(complete(redis_client, keys, new, want), 60, "bars of the old and the new instruments")
    finally:
        assert h.stop() == 0


def test_redis_down_keeps_the_session_and_flushes_buffered_bars_in_order(hub_settings, sandbox_at):
    from multialpha.managed_redis import ManagedRedis

    own = ManagedRedis().start()
    port = own.port
    settings = hub_settings(MULTIALPHA__STRATEGIES__IBS_B__ENABLED="false", MULTIALPHA__REDIS__PORT=str(port))
    keys, roots = Keys(settings.redis.namespace), settings.hub_symbols()
    sb = sandbox_at(settings, A0, from_date=DEC3)
    h = start_hub(settings)
    try:
        client = own.client(decode_responses=True)
        release_phase_a(sb, h)
        wait_for(complete(client, keys, roots, expected_bars(sb.market, settings, roots, ns(A0), ns(DEC3_CLOSE))),
                 60, "phase A")
        before = logged_bars(client, keys, roots)
        own.stop()
        r0 = h.hub.session.reconnects
        end = utc(2025, 12, 4, 10, 0)
        sb.set_clock(end)
        pub = h.hub.publisher
        wait_for(lambda: not pub.up and len(pub.pending) > 500, 30, "bars buffered while redis is down")
        assert h.hub.session.reconnects == r0 and h.hub.session.streaming()  # Databento session untouched
        own = ManagedRedis(port=port).start()  # empty: the old log died with the old server
        client = own.client(decode_responses=True)
        want = {k: v for k, v in expected_bars(sb.market, settings, roots, ns(A0), ns(end)).items() if k not in before}
        wait_for(complete(client, keys, roots, want), 60, "buffered bars flushed")
        # In order: a bar flushed after a later one of its symbol would be refused as a duplicate.
        assert pub.up and pub.dropped == 0 and pub.duplicates == 0
        wait_for(lambda: heartbeat.read(client, keys, "hub"), 10, "heartbeat back")
    finally:
        assert h.stop() == 0
        own.stop()


def test_no_instruments_is_a_config_error_not_a_retry_loop(hub_settings):
    from multialpha.hub.main import run

    settings = hub_settings(**{f"MULTIALPHA__STRATEGIES__{n}__ENABLED": "false" for n in ("IBS_A", "IBS_B", "BREAKOUT")})
    assert settings.hub_symbols() == []
    assert run(settings) == 2


def test_front_volume_root_publishes_the_sandbox_v0_contract(hub_settings, sandbox_at, redis_client, tmp_path):
    """A ``front: volume`` root (contract map) is wired: the hub asks Historical for the previous
    session's volumes and publishes the contract Databento's ``ES.v.0`` names, on a day where it
    is not the calendar front (trading day 2025-12-11: calendar ESH6, volume still ESZ5)."""
    import yaml

    from multialpha import endpoints
    from multialpha.contracts import ContractMap

    data = yaml.safe_load((SHIPPED_CONFIG.parent / "Data" / "Databento_contract_map.yml").read_text())
    data["roots"]["ES"]["front"] = "volume"
    (tmp_path / "map.yml").write_text(yaml.safe_dump(data))
    settings = hub_settings(MULTIALPHA__CONTRACT_MAP_PATH=str(tmp_path / "map.yml"),
                            MULTIALPHA__STRATEGIES__IBS_B__ENABLED="false")
    keys, day = Keys(settings.redis.namespace), date(2025, 12, 11)
    sb = sandbox_at(settings, utc(2025, 12, 10, 22, 30))  # in the halt before trading day 12-11
    hist = endpoints.historical_client(endpoints.resolve(settings))
    out = hist.symbology.resolve(settings.databento.dataset, symbols=["ES.v.0"], stype_in="continuous",
                                 stype_out="instrument_id", start_date=day.isoformat(), end_date="2025-12-12")
    (iv,) = [iv for iv in out["result"]["ES.v.0"] if iv["d0"] == day.isoformat()]
    v0 = sb.market.raw_symbols("ES", day)[int(iv["s"])]
    calendar = ContractMap.load(SHIPPED_CONFIG.parent / "Data" / "Databento_contract_map.yml").front("ES", day)
    assert (v0, calendar.raw_symbol) == ("ESZ5", "ESH6")  # the day is one where the two rules differ

    h = start_hub(settings)
    try:
        wait_for(lambda: h.hub.session and h.hub.session.streaming(), 20, "hub streaming")
        sb.set_clock(utc(2025, 12, 10, 23, 10))
        first = cme_time.to_ms(utc(2025, 12, 10, 23, 0))
        bars = wait_for(lambda: redis_client.xrange(keys.bar_log("ES"), min=f"{first}-0", max="+")
                        if redis_client.xlen(keys.bar_log("ES")) >= 5 else None, 60, "ES bars of 12-11")
        assert {f["contract"] for _, f in bars} == {v0}
        assert h.hub.resolver.front["ES"] == v0 and h.hub.resolver.front["NQ"] == "NQH6"  # NQ: calendar
    finally:
        h.stop()
