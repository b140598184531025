"""The lean Live client against the sandbox's Live gateway, beside the official ``databento.Live``.

The sandbox clock is pinned (speed ~0) and moved by ``set_clock``: the gateway releases the
trades up to the clock, so the tests wait for records, never for time to pass."""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import databento_dbn as dbn
import pytest

from multialpha import cme_time, endpoints
from multialpha import config as cfg
from multialpha.hub.session import Disconnected, Inbox, Session, Target
from multialpha.lsg import Live, LiveError
from multialpha.sandbox.server import Sandbox
from tests.conftest import SHIPPED_CONFIG

T0 = datetime(2025, 12, 2, 15, 0, tzinfo=timezone.utc)  # a Tuesday, 09:00 CT: ES trades every second
PINNED = 1e-9  # the clock does not move on its own (tests/hub/conftest.py)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    settings = cfg.load(SHIPPED_CONFIG, environ={"MULTIALPHA_RUNTIME_DIR": str(tmp_path_factory.mktemp("lsg"))})
    with Sandbox(settings, seed=5, speed=PINNED, from_date=date(2025, 12, 1), days=3, start_at=T0) as sb:
        yield sb


@pytest.fixture
def ep(sandbox: Sandbox) -> Iterator[endpoints.Endpoints]:
    sandbox.faults.clear()
    sandbox.set_clock(T0)
    yield endpoints.from_state(sandbox.state, sandbox.state_file)
    sandbox.faults.clear()


def wait_for(pred: Callable[[], Any], what: str, deadline_s: float = 15.0) -> Any:
    end = time.monotonic() + deadline_s
    while not (got := pred()):
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
    return got


class Collector:
    def __init__(self) -> None:
        self.records: list[Any] = []
        self.threads: set[str] = set()

    def __call__(self, rec: Any) -> None:
        self.threads.add(threading.current_thread().name)
        self.records.append(rec)

    def reached(self, ts_recv: int) -> bool:
        return any(type(r) is dbn.TradeMsg and r.ts_recv >= ts_recv for r in self.records[-50:])


def _started(client: Any, ep: endpoints.Endpoints, start: int | None) -> Collector:
    col = Collector()
    client.add_callback(col)
    client.subscribe(ep.dataset, "trades", symbols=["ES.FUT"], stype_in="parent", start=start)
    client.start()
    return col


def test_same_records_byte_for_byte_as_databento_live_replay_then_live(sandbox: Sandbox, ep) -> None:
    start = cme_time.to_ns(T0 - timedelta(minutes=3))
    ours, theirs = Live(ep.api_key, gateway=ep.live_gateway, port=ep.live_port), endpoints.live_client(ep)
    mine, official = _started(ours, ep, start), _started(theirs, ep, start)
    try:
        for until in (T0, T0 + timedelta(minutes=2)):  # replay up to the clock, then live trades
            sandbox.set_clock(until)
            last = int(sandbox.market.trades("ES", start, cme_time.to_ns(until) + 1)["ts_recv"][-1])
            wait_for(lambda: mine.reached(last) and official.reached(last), f"ES trades up to {until}")
        assert ours.metadata is not None and bytes(ours.metadata.encode()) == bytes(theirs.metadata.encode())
    finally:
        ours.terminate()
        theirs.terminate()
    t0 = cme_time.to_ns(T0)
    trades = [r.ts_recv for r in mine.records if type(r) is dbn.TradeMsg]
    assert min(trades) < t0 <= max(trades) and len(trades) > 300  # replayed and live trades
    assert any(type(r) is dbn.SymbolMappingMsg for r in mine.records)
    assert [type(r) for r in mine.records] == [type(r) for r in official.records]
    assert [bytes(r) for r in mine.records] == [bytes(r) for r in official.records]
    assert mine.threads == {"lsg-reader"}
    assert not ours.is_connected()


def test_a_bad_key_is_a_clear_session_error_and_never_logged(ep, caplog: pytest.LogCaptureFixture) -> None:
    bad_key = "db-" + "Q" * 24 + "zzBAD"
    with pytest.raises(LiveError, match="Authentication failed") as got:
        Live(bad_key, gateway=ep.live_gateway, port=ep.live_port).subscribe(ep.dataset, "trades", ["ES.FUT"], "parent")
    assert bad_key not in str(got.value)
    # Through the hub's session: the refusal is its reason to back off and retry, logged without the key.
    inbox = Inbox()
    session = Session(lambda: Target(Live(bad_key, gateway=ep.live_gateway, port=ep.live_port), "sandbox", 0),
                      inbox, dataset=ep.dataset, symbols=["ES.FUT"], reconnect_initial_s=5.0, rng=random.Random(1))
    caplog.set_level(logging.DEBUG)
    session.start()
    try:
        marker = wait_for(lambda: next((m for m in inbox.drain(100, 0.05) if type(m) is Disconnected), None),
                          "the session's Disconnected marker")
        session.resume(None)  # the hub's answer; the session then logs why and backs off
        wait_for(lambda: "reconnecting" in caplog.text, "the session's log line")
    finally:
        session.stop()
    assert "LiveError" in marker.reason and "Authentication failed" in marker.reason
    assert "Authentication failed" in caplog.text and bad_key not in caplog.text


def test_gateway_close_ends_the_connection(sandbox: Sandbox, ep) -> None:
    client = Live(ep.api_key, gateway=ep.live_gateway, port=ep.live_port)
    assert not client.is_connected()
    col = _started(client, ep, cme_time.to_ns(T0 - timedelta(minutes=1)))
    wait_for(lambda: client.metadata is not None and col.records, "the stream")
    assert client.is_connected()
    sandbox.faults.close()
    wait_for(lambda: not client.is_connected(), "is_connected() False after the gateway's close")
    client.block_for_close(timeout=5)  # a clean close: returns, no error


@pytest.mark.parametrize("fault", ["error", "rst"])
def test_gateway_error_or_reset_raises_from_block_for_close(sandbox: Sandbox, ep, fault: str) -> None:
    client = Live(ep.api_key, gateway=ep.live_gateway, port=ep.live_port)
    col = _started(client, ep, None)
    wait_for(lambda: client.metadata is not None, "the metadata")
    getattr(sandbox.faults, fault)()
    with pytest.raises(LiveError, match="sandbox fault" if fault == "error" else "connection lost"):
        client.block_for_close(timeout=5)
    assert not client.is_connected()
    if fault == "error":
        assert [r.err for r in col.records if type(r) is dbn.ErrorMsg] == ["Internal gateway error (sandbox fault)"]


def test_callback_errors_go_to_the_exception_callback_and_reading_goes_on(ep) -> None:
    client = Live(ep.api_key, gateway=ep.live_gateway, port=ep.live_port)
    errors: "queue.SimpleQueue[Exception]" = queue.SimpleQueue()
    seen: list[Any] = []

    def flaky(rec: Any) -> None:
        seen.append(rec)
        if len(seen) == 1:
            raise RuntimeError("first record refused")

    client.add_callback(flaky, errors.put)
    client.subscribe(ep.dataset, "trades", "ES.FUT", "parent", start=cme_time.to_ns(T0 - timedelta(minutes=1)))
    client.start()
    try:
        wait_for(lambda: len(seen) > 10, "records after the failing one")
    finally:
        client.terminate()
    assert str(errors.get(timeout=1)) == "first record refused" and errors.empty()
    client.block_for_close(timeout=5)  # terminated by us: no error
