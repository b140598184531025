"""Crash and restart: every bar published while the worker is down is processed exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from multialpha import cme_time, heartbeat
from multialpha.keys import Keys
from tests.conftest import REPO
from tests.worker import recorder_plugin
from tests.worker.conftest import FixedClock, WorkerThread, make_bar, publish, recorder, wait_for
from tests.worker.doubles import HeldPosition, RecordingRouter

UTC = timezone.utc
T0 = datetime(2025, 12, 3, 15, 0, tzinfo=UTC)


def spawn(settings, strategy: str, now: datetime, intents: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.worker.run_worker", settings.source_path, strategy,
         "--now", cme_time.iso_z(now), "--intents", str(intents)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def hb_state(client, strategy: str) -> str | None:
    hb = heartbeat.read(client, Keys(), f"worker.{strategy}")
    return hb and hb["state"]


def wait_live(client, proc: subprocess.Popen, strategy: str, started: str | None = None) -> None:
    def live() -> bool:
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        hb = heartbeat.read(client, Keys(), f"worker.{strategy}")
        return bool(hb and hb["state"] == "live" and hb["pid"] == proc.pid)

    wait_for(live, 30, "worker LIVE")


def minute_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [e for e in map(json.loads, path.read_text().splitlines()) if e.get("feed") == "ES"]


def test_kill9_restart_processes_every_missed_bar_once(build_settings, redis_client, tmp_path):
    rec = tmp_path / "seen.jsonl"
    intents = tmp_path / "intents.jsonl"
    settings = build_settings({"rec": recorder(["ES"], record_path=str(rec), trade="flip")})
    p1 = spawn(settings, "rec", T0, intents)
    try:
        wait_live(redis_client, p1, "rec")
        for i in range(5):
            publish(redis_client, make_bar("ES", T0 + timedelta(minutes=i), 6000 + i))
        wait_for(lambda: len(minute_events(rec)) == 5, what="5 bars before the crash")
        wait_for(lambda: redis_client.hget(Keys().worker_cursor("rec"), "ES") == f"{make_bar('ES', T0 + timedelta(minutes=4)).start_ms}-0", what="cursor")
    finally:
        p1.send_signal(signal.SIGKILL)
        p1.wait(10)
    for i in range(5, 10):  # while the worker is dead: pub/sub loses them, the bar log keeps them
        publish(redis_client, make_bar("ES", T0 + timedelta(minutes=i), 6000 + i))
    p2 = spawn(settings, "rec", T0 + timedelta(minutes=10), intents)
    try:
        wait_live(redis_client, p2, "rec")
        # A worker process freezes its warmed-up heap at LIVE (out of the collector's full passes).
        assert heartbeat.read(redis_client, Keys(), "worker.rec")["gc_frozen"] > 50_000
        publish(redis_client, make_bar("ES", T0 + timedelta(minutes=10), 6010))
        wait_for(lambda: len(minute_events(rec)) == 11, what="all 11 bars")
        p2.send_signal(signal.SIGTERM)
        assert p2.wait(5) == 0  # SIGTERM: final heartbeat, exit 0 within 5 s
    finally:
        if p2.poll() is None:
            p2.kill()
    seen = minute_events(rec)
    expected = [(T0 + timedelta(minutes=i + 1)).replace(tzinfo=None).isoformat() for i in range(11)]
    assert [e["dt"] for e in seen] == expected  # each once, in order
    assert [e["phase"] for e in seen] == ["live"] * 5 + ["replay"] * 5 + ["live"]
    assert hb_state(redis_client, "rec") == "stopped"
    # Replayed bars did not trade (trade_replayed_bars: false): orders only from live bars.
    sent = [json.loads(line) for line in intents.read_text().splitlines()]
    assert [(o["kind"], o["bar_start"][:16]) for o in sent] == [
        ("entry", "2025-12-03 15:00"), ("exit", "2025-12-03 15:01"), ("entry", "2025-12-03 15:02"),
        ("exit", "2025-12-03 15:03"), ("entry", "2025-12-03 15:04"),
        # The second process's router reports no open position (the double keeps none), so the restored
        # book is flat and the first live bar enters again — the replayed flips stayed simulated.
        ("entry", "2025-12-03 15:10"),
    ]
    assert not any(o["late"] for o in sent)


def test_replayed_bars_trade_late_when_allowed(build_settings, redis_client, workers):
    recorder_plugin.RECORDS.pop("late", None)
    settings = build_settings({"rec": recorder(["ES"], tag="late", trade="flip")}, worker={"trade_replayed_bars": True})
    # A previous run processed up to 15:01; 15:02..15:04 were missed.
    redis_client.hset(Keys().worker_cursor("rec"), "ES", f"{make_bar('ES', T0 + timedelta(minutes=1)).start_ms}-0")
    for i in range(5):
        publish(redis_client, make_bar("ES", T0 + timedelta(minutes=i), 6000 + i))
    router = RecordingRouter(positions=[HeldPosition("ES", "long", 1, 5990.0, T0)])
    w = WorkerThread(settings, "rec", router, FixedClock(T0 + timedelta(minutes=5))).start()
    workers.append(w)
    w.wait_live(redis_client)
    publish(redis_client, make_bar("ES", T0 + timedelta(minutes=5), 6005))
    wait_for(lambda: len([e for e in recorder_plugin.RECORDS["late"] if e.get("feed") == "ES"]) == 4, what="3 replayed + 1 live")
    es = [e for e in recorder_plugin.RECORDS["late"] if e.get("feed") == "ES"]
    assert [e["phase"] for e in es] == ["replay"] * 3 + ["live"]
    w.shutdown()
    # The restored real position is exited on the first replayed bar; replayed orders carry late=True.
    assert [(i.kind, i.late, i.bar_start.minute) for i in router.intents] == [
        ("exit", True, 2), ("entry", True, 3), ("exit", True, 4), ("entry", False, 5),
    ]
    assert all(i.contract == "ESZ5" and i.strategy == "rec" for i in router.intents)
    assert router.intents[0].price == 6002 and router.closed


def test_redis_reconnect_recovers_bars_from_the_log(build_settings, redis_client, workers):
    """A dropped pub/sub connection: bars logged meanwhile are recovered once, then live resumes."""
    recorder_plugin.RECORDS.pop("recon", None)
    settings = build_settings({"rec": recorder(["ES"], tag="recon")})
    w = WorkerThread(settings, "rec", RecordingRouter(), FixedClock(T0)).start()
    workers.append(w)
    w.wait_live(redis_client)
    publish(redis_client, make_bar("ES", T0, 6000))
    es = lambda: [e for e in recorder_plugin.RECORDS.get("recon", []) if e.get("feed") == "ES"]  # noqa: E731
    wait_for(lambda: len(es()) == 1, what="first bar")
    # Logged by the hub but never seen on pub/sub (the worker's subscription is down).
    bar = make_bar("ES", T0 + timedelta(minutes=1), 6001)
    redis_client.xadd(Keys().bar_log("ES"), {k: str(v) for k, v in bar.to_dict().items()}, id=f"{bar.start_ms}-0")
    redis_client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    wait_for(lambda: len(es()) == 2, what="the recovered bar")
    publish(redis_client, make_bar("ES", T0 + timedelta(minutes=2), 6002))
    wait_for(lambda: len(es()) == 3, what="live again")
    assert [(e["close"], e["phase"]) for e in es()] == [(6000, "live"), (6001, "replay"), (6002, "live")]
    hb = wait_for(lambda: (h := w.heartbeat(redis_client)) and h["replayed"] == 1 and h, what="replayed=1")
    assert hb["dropped"] == {} and hb["state"] == "live"
    assert hb["gc_frozen"] == 0  # a worker in a thread leaves its host's heap alone
    assert w.shutdown() == 0
