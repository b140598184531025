"""Hub resilience end to end: a real hub process, real Redis, the sandbox gateways; faults injected
while the test steps the feed clock, the bar log compared bar for bar with a fault-free reference run
of the same seed and range (module-scoped, run once).

Scenarios: kill -9 of the hub (restarted 3 sim-minutes later, as the supervisor would), gateway
connection reset, clean close, a 2-sim-minute stall (longer than the hub's silence timeout in wall
time too), refused reconnects for 2 sim-minutes. Expected for each: no missing bar, no changed bar, no
extra bar in the log, and no bar PUBLISHed twice.
"""

from __future__ import annotations

import signal
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import pytest

from multialpha import config as cfg
from multialpha.sandbox.server import Sandbox
from tests.conftest import SHIPPED_CONFIG
from tests.e2e.faults import MINUTES, SEED, T_START, HubRun, Outcome, compare, table

pytestmark = pytest.mark.slow
FAULT_AT = T_START + timedelta(minutes=5, seconds=20)  # mid-minute: a partial bar is open when it hits
RESULTS: list[tuple[str, str, dict[str, int]]] = []


@pytest.fixture(scope="module")
def rig(redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, cfg.Settings, Path, int]]:
    run = tmp_path_factory.mktemp("hub-faults")
    settings = cfg.load(SHIPPED_CONFIG, environ={"MULTIALPHA_RUNTIME_DIR": str(run)})
    with Sandbox(settings, seed=SEED, speed=1e-9, days=20, start_at=T_START) as sb:
        yield sb, settings, run, redis_server.port
    if RESULTS:
        print("\n" + table(RESULTS))


_db = iter(range(1, 16))


def new_run(rig) -> HubRun:
    sb, settings, run, port = rig
    return HubRun(sb, settings, run, port, next(_db))


@pytest.fixture(scope="module")
def reference(rig) -> Outcome:
    h = new_run(rig)
    try:
        h.begin()
        out = h.finish("reference", None)
    finally:
        h.stop()
    n = sum(len(b) for b in out.bars.values())
    assert n >= 5 * (MINUTES - 2), f"reference too thin: {n} bars"
    return out


def _check(name: str, ref: Outcome, out: Outcome) -> None:
    d = compare(ref, out)
    RESULTS.append((name, f"{out.recovery_s:.1f} s" if out.recovery_s is not None else "-", d))
    assert (d["missing"], d["changed"], d["extra"], d["dup_published"]) == (0, 0, 0, 0), d


def test_reference_is_self_consistent(reference: Outcome) -> None:
    d = compare(reference, reference)
    assert d["missing"] == d["changed"] == d["extra"] == d["dup_published"] == 0


def test_kill_9_hub(rig, reference: Outcome) -> None:
    h = new_run(rig)
    try:
        h.begin()
        h.advance_to(FAULT_AT)
        h.wait("bars before the fault", lambda: len(h.last_ms()) > 0)
        h.kill_hub(signal.SIGKILL)
        h.advance_to(FAULT_AT + timedelta(minutes=3))  # the hub is down for 3 sim-minutes
        h.start_hub()
        rec = h.wait("hub back and caught up", lambda: h.hub_state() == "connected"
                     and h.caught_up(FAULT_AT + timedelta(minutes=1), reference.bars))
        out = h.finish("kill -9 hub", reference)
        out.recovery_s = rec
    finally:
        h.stop()
    _check("kill -9 hub (down 3 sim-min)", reference, out)


@pytest.mark.parametrize("fault", ["rst", "close"])
def test_gateway_drops_connection(rig, reference: Outcome, fault: str) -> None:
    h = new_run(rig)
    try:
        h.begin()
        h.advance_to(FAULT_AT)
        h.wait("bars before the fault", lambda: len(h.last_ms()) > 0)
        before = h.reconnects()
        getattr(h.sb.faults, fault)()
        h.advance_to(FAULT_AT + timedelta(seconds=30))
        rec = h.wait("hub reconnected and caught up", lambda: h.reconnects() > before and h.hub_state() == "connected"
                     and h.caught_up(FAULT_AT - timedelta(minutes=1), reference.bars))
        out = h.finish(f"gateway {fault}", reference)
        out.recovery_s = rec
    finally:
        h.stop()
    _check(f"gateway {'RST' if fault == 'rst' else 'clean close'}", reference, out)


def test_gateway_stall(rig, reference: Outcome) -> None:
    h = new_run(rig)
    try:
        h.begin()
        h.advance_to(FAULT_AT)
        h.wait("bars before the fault", lambda: len(h.last_ms()) > 0)
        before = h.reconnects()
        h.sb.faults.stall()
        h.advance_to(FAULT_AT + timedelta(minutes=2))  # 2 sim-minutes of silence ...
        h.wait("hub notices the silence", lambda: h.reconnects() > before)  # ... and > silence_timeout_s wall
        h.sb.faults.unstall()
        rec = h.wait("hub reconnected and caught up", lambda: h.hub_state() == "connected"
                     and h.caught_up(FAULT_AT + timedelta(minutes=1), reference.bars))
        out = h.finish("stall", reference)
        out.recovery_s = rec
    finally:
        h.stop()
    _check("gateway stall 2 sim-min", reference, out)


def test_gateway_refuses_reconnects(rig, reference: Outcome) -> None:
    h = new_run(rig)
    try:
        h.begin()
        h.advance_to(FAULT_AT)
        h.wait("bars before the fault", lambda: len(h.last_ms()) > 0)
        before = h.reconnects()
        h.sb.faults.refuse()
        h.sb.faults.rst()
        h.wait("hub disconnected", lambda: h.reconnects() > before + 1)  # the drop + at least one refused retry
        h.advance_to(FAULT_AT + timedelta(minutes=2))  # refused for 2 sim-minutes
        h.sb.faults.accept()  # the hub was seen not connected above: "connected" now means a new session
        rec = h.wait("hub reconnected and caught up", lambda: h.hub_state() == "connected"
                     and h.caught_up(FAULT_AT + timedelta(minutes=1), reference.bars))
        out = h.finish("refuse", reference)
        out.recovery_s = rec
    finally:
        h.stop()
    _check("refused reconnects 2 sim-min", reference, out)


def test_compare_detects_every_defect(reference: Outcome) -> None:
    """The comparison itself can fail: one missing, one changed, one extra bar, one duplicate publish."""
    import copy

    bad = copy.deepcopy(reference)
    sym = next(r for r, rows in bad.bars.items() if len(rows) >= 2)
    first, second = sorted(bad.bars[sym])[:2]
    del bad.bars[sym][first]
    bad.bars[sym][second] = {**bad.bars[sym][second], "close": "0.01"}
    bad.bars[sym][1] = {}
    bad.published = [*bad.published, bad.published[0]]
    d = compare(reference, bad)
    assert (d["missing"], d["changed"], d["extra"], d["dup_published"]) == (1, 1, 1, 1), d


def test_kill_9_redis(rig, reference: Outcome) -> None:
    """kill -9 of a (managed, non-persistent) Redis: the hub keeps building bars, buffers them, and
    republishes once Redis is back on the same port. Everything logged before the kill is gone with
    that Redis (ManagedRedis runs with --save "" --appendonly no: documented in docs/resilience.md), so
    the comparison covers the bars from the minute of the kill on."""
    from multialpha.managed_redis import ManagedRedis

    sb, settings, run, _ = rig
    server = ManagedRedis().start()
    port = server.port
    h = HubRun(sb, settings, run, port, 0)
    try:
        h.begin()
        h.advance_to(FAULT_AT)
        h.wait("bars before the fault", lambda: len(h.last_ms()) > 0)
        server.proc.kill()  # SIGKILL
        server.proc.wait(10)
        h.advance_to(FAULT_AT + timedelta(minutes=2))  # Redis down for 2 sim-minutes
        server = ManagedRedis(port=port).start()
        kill_ms = int((FAULT_AT - timedelta(seconds=FAULT_AT.second)).timestamp() * 1000)
        after = Outcome("ref", {r: {ms: f for ms, f in rows.items() if ms >= kill_ms} for r, rows in reference.bars.items()},
                        [(s, ms) for s, ms in reference.published if ms >= kill_ms])
        rec = h.wait("hub republished the buffered bars", lambda: h.caught_up(FAULT_AT + timedelta(minutes=1), after.bars))
        out = h.finish("kill -9 redis", after)
        out.recovery_s = rec
        out.bars = {r: {ms: f for ms, f in rows.items() if ms >= kill_ms} for r, rows in out.bars.items()}
        out.published = [(s, ms) for s, ms in out.published if ms >= kill_ms]
    finally:
        h.stop()
        server.stop()
    _check("kill -9 Redis (down 2 sim-min)", after, out)
