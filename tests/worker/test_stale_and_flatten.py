"""A live worker with the real order router (paper) and the real gate:

- bars the hub republished after a gap (``source: replay``) never open a position, and an
  exit on one still acts;
- `multialpha flatten` reaches a running worker through the control channel and exits its
  positions through the normal order path, then entries stay refused until `resume`;
- the daily stop, with ``on_daily_stop: flatten``, exits every position on the next bar.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from multialpha.keys import Keys
from multialpha.orders import journal
from multialpha.orders.router import OrderRouter
from multialpha.portfolio import control
from multialpha.portfolio.gate import Gate
from tests.worker import recorder_plugin
from tests.worker.conftest import FixedClock, WorkerThread, make_bar, publish, recorder, wait_for

UTC = timezone.utc
T0 = datetime(2025, 12, 3, 15, 0, tzinfo=UTC)


def signals(tag: str) -> list[dict]:
    return [e for e in recorder_plugin.RECORDS.get(tag, []) if "signal" in e]


def start(build_settings, redis_client, workers, tag, **top):
    recorder_plugin.RECORDS.pop(tag, None)
    settings = build_settings({"rec": recorder(["ES", "NQ"], tag=tag, trade="flip")}, **top)
    clock = FixedClock(T0)
    router = OrderRouter(settings, redis_client, "rec", clock=clock, environ={})
    w = WorkerThread(settings, "rec", router, clock).start()  # type: ignore[arg-type]
    workers.append(w)
    w.wait_live(redis_client)
    return w, settings


def events(redis_client, kind: str) -> list[dict]:
    return [e for e in journal.read(redis_client, Keys()) if e.get("event") == kind]


def test_hub_replay_bars_open_nothing_but_exits_on_them_act(build_settings, redis_client, workers):
    w, settings = start(build_settings, redis_client, workers, "stale")
    gate = Gate(settings, redis_client)
    publish(redis_client, make_bar("ES", T0, 6000.25))  # live: the flip enters
    wait_for(lambda: gate.position("rec", "ES"), what="the live entry")
    # The hub reconnected after a gateway reset and republishes the gap: stale bars.
    for i in range(1, 4):
        publish(redis_client, make_bar("ES", T0 + timedelta(minutes=i), 6000.25 + i)._replace(source="replay"))
    wait_for(lambda: len(signals("stale")) == 4, what="four signals")
    first, *stale = signals("stale")
    assert first["accepted"] is True
    # 15:01 (replay): the exit acts; 15:02 (replay): the entry is refused; 15:03 again refused.
    assert [s["accepted"] for s in stale] == [True, False, False]
    assert gate.position("rec", "ES") is None
    intents = events(redis_client, "intent")
    assert [(e["kind"], e["late"]) for e in intents] == [("entry", "0"), ("exit", "1")]
    wait_for(lambda: (w.heartbeat(redis_client) or {}).get("stale_entries") == 2, what="2 stale entries counted")
    # The next live bar trades again.
    publish(redis_client, make_bar("ES", T0 + timedelta(minutes=4), 6005.0))
    wait_for(lambda: gate.position("rec", "ES"), what="a live entry after the replay")
    assert w.shutdown() == 0


def test_flatten_reaches_a_running_worker_and_holds_it_until_resume(build_settings, redis_client, workers):
    w, settings = start(build_settings, redis_client, workers, "flat")
    gate = Gate(settings, redis_client)
    publish(redis_client, make_bar("ES", T0, 6000.25))
    publish(redis_client, make_bar("NQ", T0, 21000.0))
    wait_for(lambda: len(gate.positions("rec")) == 2, what="two positions")
    control.flatten(settings, redis_client, "rec", reason="operator at 3 a.m.")
    # No new bar: the control message alone makes the worker exit both, at their last closes.
    wait_for(lambda: gate.positions("rec") == [], what="both positions exited")
    exits = [e for e in events(redis_client, "intent") if e["kind"] == "exit"]
    assert sorted((e["symbol"], e["price"]) for e in exits) == [("ES", "6000.25"), ("NQ", "21000.0")]
    assert all(e["signal_reason"].startswith("flatten: operator at 3 a.m.") for e in exits)
    # The strategy wants back in on the next bar: reduce-only says no.
    publish(redis_client, make_bar("ES", T0 + timedelta(minutes=1), 6001.0))
    wait_for(lambda: len(signals("flat")) == 3, what="the refused re-entry")
    assert signals("flat")[-1]["accepted"] is False and gate.positions("rec") == []
    assert control.resume(settings, redis_client)
    publish(redis_client, make_bar("ES", T0 + timedelta(minutes=2), 6002.0))
    wait_for(lambda: gate.position("rec", "ES"), what="entry after resume")
    assert w.shutdown() == 0


def test_daily_stop_flattens_on_the_next_bar(build_settings, redis_client, workers):
    top = {"portfolio": {"max_positions": 5, "daily_stop_loss": 1000.0, "starting_cash": 250000.0}}
    w, settings = start(build_settings, redis_client, workers, "stop", **top)
    gate = Gate(settings, redis_client)
    publish(redis_client, make_bar("NQ", T0, 21000.0))
    wait_for(lambda: gate.position("rec", "NQ"), what="the NQ entry")
    publish(redis_client, make_bar("ES", T0, 6000.0))
    wait_for(lambda: gate.position("rec", "ES"), what="the ES entry")
    # ES falls 25 points on its next bar: -1,250 > the 1,000 stop. The flip would exit ES anyway;
    # NQ's position must go too, without waiting for NQ's own next bar.
    publish(redis_client, make_bar("ES", T0 + timedelta(minutes=1), 5975.0))
    wait_for(lambda: gate.positions("rec") == [], what="every position flattened")
    day = gate.day_pnl(T0)
    assert day.stopped
    nq_exit = [e for e in events(redis_client, "intent") if e["kind"] == "exit" and e["symbol"] == "NQ"]
    assert len(nq_exit) == 1 and "daily stop" in nq_exit[0]["signal_reason"]
    assert w.shutdown() == 0


def test_a_real_positions_exit_is_never_simulated_even_on_a_warmup_minute(build_settings) -> None:
    """A day or hour bar can signal an exit while the symbol's minute feed still holds a warmup bar
    (no live minute yet). The held position's exit must reach the router, not the simulated book."""
    from types import SimpleNamespace

    from multialpha.worker.runtime import Worker
    from multialpha.worker.strategy import BookPosition
    from tests.worker.doubles import RecordingRouter

    class WarmupMinute:
        phase, contract = "warmup", "ESZ5"
        datetime = SimpleNamespace(datetime=lambda i: T0.replace(tzinfo=None))

        def __len__(self) -> int:
            return 1

    w = Worker(build_settings({"rec": recorder(["ES"])}), "rec", router=RecordingRouter())
    strategy = SimpleNamespace(book={"ES": BookPosition("ES", "long", 2, 6000.0, T0, real=True)},
                               feed=lambda sym: WarmupMinute(), all_live=True)
    out = w.on_signal(strategy, "exit", "ES", "long", 6001.0, "daily exit")
    assert out.accepted and out.real
    [intent] = w.router.intents
    assert (intent.kind, intent.quantity, intent.contract) == ("exit", 2, "ESZ5")
    # A simulated (not real) position on a warmup bar stays simulated.
    strategy.book["ES"] = BookPosition("ES", "long", 1, 6000.0, T0, real=False)
    assert not w.on_signal(strategy, "exit", "ES", "long", 6001.0, "x").real and len(w.router.intents) == 1


def test_the_heartbeat_says_which_veto_models_are_usable(build_settings, redis_client, workers) -> None:
    """Status shows a missing model before any entry signal: the worker puts it in its heartbeat."""
    settings = build_settings({"rec": recorder(["ES", "NQ"], tag="models")},
                              ml_veto={"mode": "enforce", "on_missing": "block"})
    w = WorkerThread(settings, "rec", OrderRouter(settings, redis_client, "rec", clock=FixedClock(T0), environ={}),
                     FixedClock(T0)).start()
    workers.append(w)
    hb = w.wait_live(redis_client)
    models = hb["models"]
    # The recorder type has no shipped models: both symbols refused, each with the loader's reason.
    assert set(models) == {"ES", "NQ"} and not any(m["usable"] for m in models.values())
    assert all(m["reason"] for m in models.values())
    assert w.shutdown() == 0
