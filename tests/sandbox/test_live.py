"""The unmodified databento.Live client against the sandbox live gateway."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Callable

import databento as db
import databento_dbn as dbn
import pytest

from multialpha import cme_time, endpoints
from multialpha.sandbox.server import Sandbox

DEADLINE_S = 15.0


class Collector:
    """Records from a live client's callback thread, with polling helpers."""

    def __init__(self) -> None:
        self.records: list[object] = []
        self.lock = threading.Lock()

    def __call__(self, rec: object) -> None:
        with self.lock:
            self.records.append(rec)

    def of(self, kind: type) -> list:
        with self.lock:
            return [r for r in self.records if isinstance(r, kind)]

    def wait(self, cond: Callable[["Collector"], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if cond(self):
                return
            time.sleep(0.01)
        raise AssertionError(f"timed out waiting for {what}; got {len(self.records)} records")


def _client(ep: endpoints.Endpoints, symbols: str, stype_in: str, **kw: object) -> tuple[db.Live, Collector]:
    client = endpoints.live_client(ep, **{k: v for k, v in kw.items() if k in ("compression", "heartbeat_interval_s", "reconnect_policy")})
    col = Collector()
    client.add_callback(col)
    client.subscribe(ep.dataset, "trades", symbols=symbols, stype_in=stype_in, start=kw.get("start"))
    client.start()
    return client, col


def test_parent_subscription_maps_outrights_and_spreads_before_trades(ep: endpoints.Endpoints) -> None:
    client, col = _client(ep, "ES.FUT", "parent")
    try:
        col.wait(lambda c: len(c.of(dbn.TradeMsg)) >= 2000, "2000 ES trades")
        meta = client.metadata
    finally:
        client.terminate()
    maps = {m.instrument_id: m for m in col.of(dbn.SymbolMappingMsg)}
    raw = {m.stype_out_symbol for m in maps.values()}
    assert {"ESZ5", "ESH6", "ESZ5-ESH6"} <= raw
    assert all(m.stype_in_symbol == "ES.FUT" for m in maps.values())
    first_trade = next(i for i, r in enumerate(col.records) if isinstance(r, dbn.TradeMsg))
    seen = {r.instrument_id for r in col.records[:first_trade] if isinstance(r, dbn.SymbolMappingMsg)}
    trades = col.of(dbn.TradeMsg)
    assert {t.instrument_id for t in trades} <= seen  # a mapping precedes every instrument's trades
    spread_id = next(i for i, m in maps.items() if "-" in m.stype_out_symbol)
    assert any(t.instrument_id == spread_id for t in trades)
    # the session starts at the sandbox clock: no trade before it
    assert meta is not None and meta.start == cme_time.to_ns(ep.sandbox.now())
    assert min(t.ts_recv for t in trades) >= meta.start


def test_continuous_volume_front(ep: endpoints.Endpoints) -> None:
    client, col = _client(ep, "ES.v.0", "continuous", compression=dbn.Compression.ZSTD)
    try:
        col.wait(lambda c: len(c.of(dbn.TradeMsg)) >= 500, "500 ES.v.0 trades (zstd)")
    finally:
        client.terminate()
    maps = col.of(dbn.SymbolMappingMsg)
    assert [(m.stype_in_symbol, m.stype_out_symbol) for m in maps[:1]] == [("ES.v.0", "ESZ5")]
    assert {t.instrument_id for t in col.of(dbn.TradeMsg)} == {maps[0].instrument_id}


def test_start_replays_from_requested_time(sb: Sandbox, ep: endpoints.Endpoints) -> None:
    start = sb.state.now() - timedelta(hours=3)
    client, col = _client(ep, "NQ.FUT", "parent", start=start)
    try:
        col.wait(lambda c: len(c.of(dbn.TradeMsg)) >= 300, "300 replayed NQ trades")
        meta = client.metadata
    finally:
        client.terminate()
    trades = col.of(dbn.TradeMsg)
    assert meta.start == cme_time.to_ns(start)
    first = trades[0].ts_recv
    assert cme_time.to_ns(start) <= first < cme_time.to_ns(start + timedelta(minutes=2))
    # exactly the historical trades from that instant, in order
    expect = sb.market.trades("NQ", cme_time.to_ns(start), cme_time.to_ns(start) + 3 * cme_time.HOUR_NS)
    assert [(t.ts_recv, t.price, t.size) for t in trades[:300]] == [
        (int(x["ts_recv"]), int(x["price"]), int(x["size"])) for x in expect[:300]
    ]


def test_replay_older_than_24h_is_an_error(sb: Sandbox, ep: endpoints.Endpoints) -> None:
    client, col = _client(ep, "ES.FUT", "parent", start=sb.state.now() - timedelta(hours=30))
    with pytest.raises(db.BentoError, match="24 hours"):
        client.block_for_close(timeout=DEADLINE_S)


def test_bad_key_fails_authentication(ep: endpoints.Endpoints) -> None:
    bad = endpoints.Endpoints(**{**ep.__dict__, "api_key": "db-" + "x" * 29})
    client = endpoints.live_client(bad)
    with pytest.raises(db.BentoError, match="Authentication failed"):
        client.subscribe(ep.dataset, "trades", symbols="ES.FUT", stype_in="parent")


def test_heartbeats_when_idle_carry_the_sandbox_clock(sandbox_settings, tmp_path) -> None:
    # speed 1 with the clock on a Saturday: the market is closed, so the only
    # records are heartbeats (1 s interval), stamped with the sandbox clock.
    saturday = datetime(2025, 12, 6, 12, tzinfo=timezone.utc)
    with Sandbox(sandbox_settings, seed=3, speed=1.0, days=5, start_at=saturday, state_file=tmp_path / "s.json") as sb:
        ep = endpoints.from_state(sb.state)
        client, col = _client(ep, "ES.FUT", "parent", heartbeat_interval_s=1)
        try:
            col.wait(lambda c: len(c.of(dbn.SystemMsg)) >= 2, "two heartbeats", deadline_s=10)
        finally:
            client.terminate()
        beats = col.of(dbn.SystemMsg)
        assert all(b.is_heartbeat() for b in beats)
        assert not col.of(dbn.TradeMsg)
        sat_ns = cme_time.to_ns(saturday)
        assert all(sat_ns <= b.ts_event <= sb.state.now_ns() for b in beats)
        assert beats[1].ts_event > beats[0].ts_event  # the clock runs (speed 1)


# -- faults ----------------------------------------------------------------------------------


def _running(ep: endpoints.Endpoints) -> tuple[db.Live, Collector]:
    client, col = _client(ep, "6E.FUT", "parent")
    col.wait(lambda c: len(c.of(dbn.TradeMsg)) >= 10, "some 6E trades")
    return client, col


def test_fault_rst_is_a_connection_reset(sb: Sandbox, ep: endpoints.Endpoints) -> None:
    client, _ = _running(ep)
    assert sb.faults.rst() >= 1
    with pytest.raises(db.BentoError, match="reset|Connection"):
        client.block_for_close(timeout=DEADLINE_S)


def test_fault_close_is_a_clean_end(sb: Sandbox, ep: endpoints.Endpoints) -> None:
    client, _ = _running(ep)
    assert sb.faults.close() >= 1
    client.block_for_close(timeout=DEADLINE_S)  # no exception: graceful close
    assert not client.is_connected()


def test_fault_error_msg_reaches_the_client(sb: Sandbox, ep: endpoints.Endpoints) -> None:
    client, col = _running(ep)
    assert sb.faults.error("sandbox says boom") >= 1
    with pytest.raises(db.BentoError, match="sandbox says boom"):
        client.block_for_close(timeout=DEADLINE_S)
    assert any(isinstance(r, dbn.ErrorMsg) and r.err == "sandbox says boom" for r in col.records)


def test_fault_stall_sends_nothing_until_cleared(sb: Sandbox, ep: endpoints.Endpoints) -> None:
    client, col = _running(ep)
    try:
        sb.faults.stall()
        # let what was already in flight arrive, then observe a quiet window
        col.wait(lambda c: _stable(c, 0.3), "in-flight records to drain")
        before = len(col.records)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            assert len(col.records) == before
            time.sleep(0.05)
        sb.faults.unstall()
        col.wait(lambda c: len(c.records) > before + 10, "records after unstall")
    finally:
        client.terminate()


def _stable(col: Collector, window: float) -> bool:
    n = len(col.records)
    time.sleep(window)
    return len(col.records) == n


def test_fault_refuse_then_accept(sb: Sandbox, ep: endpoints.Endpoints) -> None:
    sb.faults.refuse()
    with pytest.raises(db.BentoError, match="refused|failed"):
        endpoints.live_client(ep).subscribe(ep.dataset, "trades", symbols="ES.FUT", stype_in="parent")
    sb.faults.accept()
    client, _ = _running(ep)
    client.terminate()


def test_fault_refuse_for_a_while_reopens_by_itself(sb: Sandbox, ep: endpoints.Endpoints) -> None:
    sb.faults.refuse(seconds=0.3)
    assert sb.faults.snapshot()["refusing"]
    end = time.monotonic() + DEADLINE_S
    while sb.faults.snapshot()["refusing"] and time.monotonic() < end:
        time.sleep(0.02)
    client, _ = _running(ep)
    client.terminate()


def test_roll_continuous_pinned_per_session_parent_gains_new_months(sb: Sandbox, ep: endpoints.Endpoints) -> None:
    # ES rolls ESZ5 -> ESH6 on 2025-12-11 (session opens 2025-12-10 23:00 UTC)
    sb.set_clock(datetime(2025, 12, 10, 20, 0, tzinfo=timezone.utc))
    roll_open = cme_time.to_ns(datetime(2025, 12, 10, 23, 0, tzinfo=timezone.utc))
    past_roll = lambda c: any(t.ts_recv > roll_open + cme_time.HOUR_NS for t in c.of(dbn.TradeMsg))  # noqa: E731
    cont, ccol = _client(ep, "ES.v.0", "continuous")
    par, pcol = _client(ep, "ES.FUT", "parent")
    try:
        ccol.wait(past_roll, "continuous trades past the roll")
        pcol.wait(past_roll, "parent trades past the roll")
    finally:
        cont.terminate()
        par.terminate()
    cmaps = ccol.of(dbn.SymbolMappingMsg)
    assert {m.stype_out_symbol for m in cmaps} == {"ESZ5"}  # not remapped mid-session
    assert {t.instrument_id for t in ccol.of(dbn.TradeMsg)} == {cmaps[0].instrument_id}
    pmaps = pcol.of(dbn.SymbolMappingMsg)
    new = {m.stype_out_symbol for m in pmaps if m.ts_event >= roll_open}
    assert new == {"ESM6", "ESH6-ESM6"}  # only instruments listed from the roll day on are announced
    # a new session after the roll maps ES.v.0 to the new front (a trading day after the
    # calendar roll: .v.0 follows the previous day's volume)
    sb.set_clock(datetime(2025, 12, 12, 15, 0, tzinfo=timezone.utc))
    after, acol = _client(ep, "ES.v.0", "continuous")
    try:
        acol.wait(lambda c: len(c.of(dbn.TradeMsg)) > 0, "trades in the new session")
    finally:
        after.terminate()
    assert acol.of(dbn.SymbolMappingMsg)[0].stype_out_symbol == "ESH6"


def test_subscription_after_start_is_added(sb: Sandbox, ep: endpoints.Endpoints) -> None:
    # Paced (speed 60) so the stream stays near the clock and a late subscription shows at once.
    sb.set_speed(60.0)
    try:
        client, col = _client(ep, "6E.FUT", "parent")
        try:
            col.wait(lambda c: len(c.of(dbn.SymbolMappingMsg)) > 0, "6E mappings")
            client.subscribe(ep.dataset, "trades", symbols="6J.FUT", stype_in="parent")
            col.wait(lambda c: any(m.stype_in_symbol == "6J.FUT" for m in c.of(dbn.SymbolMappingMsg)), "6J mappings")
            ids = {m.instrument_id for m in col.of(dbn.SymbolMappingMsg) if m.stype_in_symbol == "6J.FUT"}
            col.wait(lambda c: any(t.instrument_id in ids for t in c.of(dbn.TradeMsg)), "6J trades")
            client.subscribe(ep.dataset, "trades", symbols="NOPE.FUT", stype_in="parent")
            col.wait(lambda c: any(isinstance(r, dbn.ErrorMsg) for r in c.records), "an ErrorMsg for NOPE.FUT")
        finally:
            client.terminate()
    finally:
        sb.set_speed(0.0)
    err = next(r for r in col.records if isinstance(r, dbn.ErrorMsg))
    assert "NOPE.FUT" in err.err
    trades = [(t.ts_recv, t.instrument_id, t.sequence) for t in col.of(dbn.TradeMsg)]
    assert trades == sorted(trades) and len(trades) == len(set(trades))  # none twice after re-resolving


def test_subscription_after_start_unpaced(ep: endpoints.Endpoints) -> None:
    # at speed 0 the stream never waits: the gateway must still read control lines
    seen: set[str] = set()
    client, col = _client(ep, "6E.FUT", "parent")
    client.add_callback(lambda r: seen.add(r.stype_in_symbol) if isinstance(r, dbn.SymbolMappingMsg) else None)
    try:
        col.wait(lambda c: len(c.records) > 1000, "a running unpaced stream")
        client.subscribe(ep.dataset, "trades", symbols="6J.FUT", stype_in="parent")
        col.wait(lambda c: "6J.FUT" in seen, "6J mappings while streaming unpaced")
    finally:
        client.terminate()


def test_rst_with_reconnect_policy_reconnects_with_compatible_metadata(sb: Sandbox, ep: endpoints.Endpoints) -> None:
    gaps: list[tuple] = []
    sb.set_speed(600.0)  # paced: the stream is never ahead of the clock, as on the real gateway
    try:
        client, col = _client(ep, "6E.FUT", "parent", reconnect_policy="reconnect")
        client.add_reconnect_callback(lambda start, end: gaps.append((start, end)))
        try:
            col.wait(lambda c: len(c.of(dbn.TradeMsg)) >= 10, "6E trades")
            assert sb.faults.rst() >= 1
            col.wait(lambda c: bool(gaps), "the reconnect callback")
            n = len(col.records)
            col.wait(lambda c: len(c.records) > n + 10, "records on the new connection")
        finally:
            client.terminate()
    finally:
        sb.set_speed(0.0)
    assert gaps[0][1] >= gaps[0][0]  # (gap_start, gap_end): metadata.start of the new session


def test_paced_with_a_practically_pinned_clock_set_clock_releases_trades(sb: Sandbox, ep: endpoints.Endpoints) -> None:
    # speed 1e-9: paced, but the clock only moves when told; each set_clock
    # releases exactly the trades with ts_recv <= the new clock.
    t0 = sb.state.now()
    sb.set_speed(1e-9)
    try:
        client, col = _client(ep, "ES.FUT", "parent")
        try:
            col.wait(lambda c: len(c.of(dbn.SymbolMappingMsg)) >= 3, "mappings")
            for minutes in (2, 5):
                target = t0 + timedelta(minutes=minutes)
                sb.set_clock(target)
                want = len(sb.market.trades("ES", cme_time.to_ns(t0), cme_time.to_ns(target) + 1))
                col.wait(lambda c: len(c.of(dbn.TradeMsg)) >= want, f"trades up to +{minutes} min")
                assert len(col.of(dbn.TradeMsg)) == want
                assert max(t.ts_recv for t in col.of(dbn.TradeMsg)) <= cme_time.to_ns(target)
        finally:
            client.terminate()
    finally:
        sb.set_speed(0.0)


def test_malformed_control_lines_do_not_hurt_the_gateway(sb: Sandbox, ep: endpoints.Endpoints) -> None:
    import socket

    from multialpha.sandbox.live import cram_response

    with socket.create_connection((ep.live_gateway, ep.live_port), timeout=10) as s:
        f = s.makefile("rwb")
        assert f.readline().startswith(b"lsg_version=")
        challenge = f.readline().decode().strip().split("=", 1)[1]
        f.write(f"auth={cram_response(challenge, ep.api_key)}|dataset=GLBX.MDP3|encoding=dbn\n".encode())
        f.flush()
        assert f.readline().startswith(b"success=1|session_id=")
        f.write(b"\xff\xfe garbage without equals\nschema=trades|stype_in=parent|symbols=ES.FUT|start=yesterday\nstart_session=0\n")
        f.flush()
        data = f.read()  # metadata, ErrorMsg, then the gateway closes
    dec = dbn.DBNDecoder()
    dec.write(data)
    recs = dec.decode()
    assert isinstance(recs[0], dbn.Metadata)
    assert any(isinstance(r, dbn.ErrorMsg) and "start must be an integer" in r.err for r in recs)
    client, _ = _running(ep)  # the gateway still serves others
    client.terminate()
