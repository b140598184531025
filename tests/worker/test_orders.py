"""Live signals: features -> ML veto -> order router; what an intent carries; rejected entries stay flat."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from multialpha.keys import Keys
from tests.worker import recorder_plugin
from tests.worker.conftest import FixedClock, WorkerThread, make_bar, publish, recorder, wait_for
from tests.worker.doubles import RecordingRouter

UTC = timezone.utc
T0 = datetime(2025, 12, 3, 15, 0, tzinfo=UTC)


def signals(tag: str) -> list[dict]:
    return [e for e in recorder_plugin.RECORDS.get(tag, []) if "signal" in e]


def start(build_settings, redis_client, workers, tag, router=None, instruments=None, **top):
    recorder_plugin.RECORDS.pop(tag, None)
    strat = recorder(["ES", "NQ"], tag=tag, trade="flip")
    if instruments:
        strat["instruments"] = instruments
    settings = build_settings({"rec": strat}, **top)
    w = WorkerThread(settings, "rec", router or RecordingRouter(), FixedClock(T0)).start()
    workers.append(w)
    w.wait_live(redis_client)
    return w


def test_live_entry_and_exit_reach_the_router(build_settings, redis_client, workers):
    w = start(build_settings, redis_client, workers, "ord",
              instruments={"ES": {"size": 3}, "NQ": {"size": 1}})
    publish(redis_client, make_bar("ES", T0, 6000.25, contract="ESZ5"))
    publish(redis_client, make_bar("ES", T0 + timedelta(minutes=1), 6001.5, contract="ESZ5"))
    wait_for(lambda: len(w.router.intents) == 2, what="entry + exit")
    entry, exit_ = w.router.intents
    assert (entry.strategy, entry.symbol, entry.side, entry.kind, entry.quantity, entry.price) == ("rec", "ES", "long", "entry", 3, 6000.25)
    assert entry.bar_start == T0 and entry.contract == "ESZ5" and not entry.late
    assert entry.reason.startswith("flip")
    assert (exit_.kind, exit_.side, exit_.quantity, exit_.price, exit_.bar_start) == ("exit", "long", 3, 6001.5, T0 + timedelta(minutes=1))
    hb = wait_for(lambda: (h := w.heartbeat(redis_client)) and h["orders"] == 2 and h, what="orders=2")
    assert hb["vetoes"] == 0
    assert w.shutdown() == 0
    # The open position was marked once (on its entry bar, at the bar's close), with the bar's contract.
    assert w.router.marks == [("ES", 6000.25, T0, "ESZ5")]  # the marking bar's start: its trading day


def test_with_the_real_order_router_in_paper_mode(build_settings, redis_client):
    """Integration with issue 7: the default router journals the worker's intents."""
    import threading

    from multialpha.worker.runtime import run
    from tests.worker.conftest import no_history

    recorder_plugin.RECORDS.pop("paper", None)
    settings = build_settings({"rec": recorder(["ES"], tag="paper", trade="flip")})
    stop = threading.Event()
    rc: list[int] = []
    t = threading.Thread(target=lambda: rc.append(run(settings, "rec", stop_event=stop, clock=FixedClock(T0),
                                                      fetch=no_history, progress=False)), daemon=True)
    t.start()
    try:
        wait_for(lambda: (h := redis_client.hgetall(Keys().heartbeat("worker.rec"))) and h.get("state") == "live",
                 what="LIVE")
        publish(redis_client, make_bar("ES", T0, 6000.25, contract="ESZ5"))
        wait_for(lambda: signals("paper"), what="the entry signal")
        journal = wait_for(lambda: redis_client.xrange(Keys().orders()), what="journal entries")
        text = " ".join(str(fields) for _, fields in journal)
        assert "rec" in text and "ES" in text
        assert signals("paper")[0]["accepted"] is True
    finally:
        stop.set()
        t.join(10)
    assert rc == [0]


def test_veto_blocks_entry_and_is_journaled(build_settings, redis_client, workers):
    recorder_plugin.VETO_SYMBOLS.add("NQ")
    try:
        w = start(build_settings, redis_client, workers, "veto")
        publish(redis_client, make_bar("NQ", T0, 21000.0))
        publish(redis_client, make_bar("NQ", T0 + timedelta(minutes=1), 21001.0))
        wait_for(lambda: len(signals("veto")) == 2, what="two NQ signals")
        assert [s["accepted"] for s in signals("veto")] == [False, False]  # vetoed entries leave the strategy flat
        assert w.router.intents == []
        hb = wait_for(lambda: (h := w.heartbeat(redis_client)) and h["vetoes"] == 2 and h, what="vetoes=2")
        assert hb["orders"] == 0
        entries = redis_client.xrange(Keys().veto_log())
        assert len(entries) == 2
        doc = entries[0][1]
        assert doc["symbol"] == "NQ" and doc["strategy"] == "rec" and doc["enforced"] == "1"
        assert doc["reason"] == "test veto NQ at 21000.0"
        assert '"minute_close": 21000.0' in doc["features"] and '"day"' in doc["features"]
        assert w.shutdown() == 0
    finally:
        recorder_plugin.VETO_SYMBOLS.discard("NQ")


def test_shadow_mode_journals_but_does_not_block(build_settings, redis_client, workers):
    recorder_plugin.VETO_SYMBOLS.add("ES")
    try:
        base = build_settings({"x": recorder(["ES"])})
        ml = base.ml_veto.model_dump()
        w = start(build_settings, redis_client, workers, "shadow", ml_veto={**ml, "mode": "shadow"})
        publish(redis_client, make_bar("ES", T0, 6000.0))
        wait_for(lambda: len(w.router.intents) == 1, what="the entry")
        assert redis_client.xrange(Keys().veto_log())[0][1]["enforced"] == "0"
        assert w.shutdown() == 0
    finally:
        recorder_plugin.VETO_SYMBOLS.discard("ES")


def test_ml_disabled_instrument_skips_the_veto(build_settings, redis_client, workers):
    recorder_plugin.VETO_SYMBOLS.add("ES")
    try:
        w = start(build_settings, redis_client, workers, "noml",
                  instruments={"ES": {"size": 1, "ml_enabled": False}, "NQ": {"size": 1}})
        publish(redis_client, make_bar("ES", T0, 6000.0))
        wait_for(lambda: len(w.router.intents) == 1, what="the entry")
        assert redis_client.xlen(Keys().veto_log()) == 0
        assert w.shutdown() == 0
    finally:
        recorder_plugin.VETO_SYMBOLS.discard("ES")


def test_rejected_entry_leaves_the_strategy_flat(build_settings, redis_client, workers):
    w = start(build_settings, redis_client, workers, "rej", router=RecordingRouter(accept=False))
    publish(redis_client, make_bar("ES", T0, 6000.0))
    publish(redis_client, make_bar("ES", T0 + timedelta(minutes=1), 6001.0))
    wait_for(lambda: len(signals("rej")) == 2, what="two signals")
    # Both bars tried to enter (a refused entry never becomes a position, so the second is no exit).
    assert [i.kind for i in w.router.intents] == ["entry", "entry"]
    hb = wait_for(lambda: (h := w.heartbeat(redis_client)) and h["rejected"] == 2 and h, what="rejected=2")
    assert hb["orders"] == 0
    assert w.shutdown() == 0
