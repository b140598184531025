"""The status document from a real Redis: heartbeats, bar logs, journal, events -> rows; schema checked."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import jsonschema
import pytest

from multialpha import cme_time
from multialpha.bar import Bar
from multialpha.heartbeat import Heartbeat
from multialpha.keys import Keys
from multialpha.status.collect import collect
from multialpha.status.schema import STATUS_SCHEMA
from multialpha.supervisor.watch import event_fields

NOW = cme_time.parse_iso("2026-01-06T15:30:20Z")  # a Tuesday, market open
KEYS = Keys("multialpha")


def put_bar(client, symbol: str, start: str, close: float, contract: str) -> None:
    bar = Bar(symbol, cme_time.parse_iso(start), close, close, close, close, 10, contract, 3, "sandbox")
    fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in bar.to_dict().items()}
    client.xadd(KEYS.bar_log(symbol), fields, id=f"{bar.start_ms}-0")


def populate(client) -> None:
    at = lambda s: (lambda: NOW - timedelta(seconds=s))  # noqa: E731
    Heartbeat(client, KEYS, "hub", ttl_s=60, clock=at(2)).beat("connected", counters={"bars": 5}, last_error="")
    Heartbeat(client, KEYS, "worker.ibs_a", ttl_s=60, clock=at(1)).beat("live", pnl_today=125.5, vetoes=2)
    Heartbeat(client, KEYS, "worker.ibs_b", ttl_s=60, clock=at(1)).beat("warming", detail="warmup 3/5 symbols")
    Heartbeat(client, KEYS, "supervisor", ttl_s=60, clock=at(0)).beat("running", children={
        "sandbox": {"state": "running", "pid": 11, "uptime_s": 50, "restarts": 0, "heartbeat_age_s": None,
                    "last_exit": None, "reason": "", "retry_in_s": None},
        "hub": {"state": "running", "pid": 12, "uptime_s": 49, "restarts": 1, "heartbeat_age_s": 2,
                "last_exit": -9, "reason": "", "retry_in_s": None},
        "worker.ibs_a": {"state": "running", "pid": 13, "uptime_s": 48, "restarts": 0},
        "worker.ibs_b": {"state": "running", "pid": 14, "uptime_s": 48, "restarts": 0},
        "worker.breakout": {"state": "failed", "pid": None, "uptime_s": None, "restarts": 5,
                            "reason": "exited with code 1; flapping: 5 restarts within 300s"},
    })
    put_bar(client, "ES", "2026-01-06T15:29:00Z", 6012.25, "ESH6")  # fresh: ends 15:30:00, lag 20 s
    put_bar(client, "NQ", "2026-01-06T15:10:00Z", 21000.5, "NQH6")  # stale: lag 19 min
    client.xadd(KEYS.bar_log("CL"), {"garbage": "1"}, id="1-0")  # malformed: dropped, not a crash
    client.xadd(KEYS.orders(), {"event": "intent", "decision": "accepted", "reason": "entry", "strategy": "ibs_a",
                                "symbol": "6A", "side": "buy", "ts": "2026-01-06T15:29:01Z"})
    client.xadd(KEYS.events(), event_fields("error", "worker.breakout", "FAILED: flapping", "2026-01-06T15:20:00Z"))
    client.xadd(KEYS.events(), event_fields("info", "hub", "started pid 12", "2026-01-06T15:21:00Z"))


def test_document_rows_and_schema(redis_client, settings_for) -> None:
    populate(redis_client)
    doc = collect(settings_for(), redis_client, clock=lambda: NOW, environ={})
    jsonschema.validate(doc, STATUS_SCHEMA)
    assert doc["schema"] == "multialpha.status/1" and doc["market_open"] is True
    procs = {p["name"]: p for p in doc["processes"]}
    assert procs["hub"]["pid"] == 12 and procs["hub"]["restarts"] == 1 and procs["hub"]["heartbeat_age_s"] == 2
    assert procs["hub"]["detail"] == "connected" and not procs["hub"]["degraded"]
    assert procs["worker.breakout"]["state"] == "failed" and procs["worker.breakout"]["degraded"]
    assert "flapping" in procs["worker.breakout"]["detail"]
    syms = {s["symbol"]: s for s in doc["symbols"]}
    assert syms["ES"]["lag_s"] == 20 and syms["ES"]["close"] == 6012.25 and syms["ES"]["contract"] == "ESH6"
    assert not syms["ES"]["degraded"] and syms["NQ"]["degraded"]
    assert syms["CL"]["last_bar"] is None and syms["CL"]["degraded"]  # garbage entry ignored
    strats = {s["name"]: s for s in doc["strategies"]}
    assert strats["ibs_a"]["state"] == "LIVE" and strats["ibs_a"]["pnl_today"] == 0.0  # from the gate, not a beat
    assert strats["ibs_a"]["vetoes"] == 2 and strats["ibs_a"]["last_orders"][0]["symbol"] == "6A"
    assert strats["ibs_b"]["state"] == "WARMING" and strats["ibs_b"]["detail"] == "warmup 3/5 symbols"
    assert strats["breakout"]["state"] == "FAILED" and strats["breakout"]["degraded"]
    assert doc["order_mode"] == {"summary": "paper", "strategies": {"ibs_a": "paper", "ibs_b": "paper",
                                                                     "breakout": "paper"}}
    assert [e["component"] for e in doc["errors"]] == ["worker.breakout"]  # info events are not errors
    Heartbeat(redis_client, KEYS, "hub", ttl_s=60, clock=lambda: NOW).beat("reconnecting", last_error="gateway EOF")
    doc = collect(settings_for(), redis_client, clock=lambda: NOW, environ={})
    assert doc["errors"][0] == {"ts": "2026-01-06T15:30:20Z", "level": "error", "component": "hub",
                                "message": "gateway EOF"}
    assert doc["supervisor"]["present"] and doc["ok"] is False


def test_live_mode_needs_mode_and_url(settings_for, redis_client) -> None:
    hooks = {"TRADERSPOST_WEBHOOK_URL": "https://x/webhook/abc", "TRADERSPOST_WEBHOOK_URL_BREAKOUT": "https://x/webhook/brk"}
    s = settings_for(MULTIALPHA__ORDERS__MODE="live", **hooks)
    doc = collect(s, redis_client, clock=lambda: NOW, environ=hooks)
    assert doc["order_mode"]["summary"] == "live"
    assert "abc" not in json.dumps(doc) and "brk" not in json.dumps(doc)  # the webhook URL never shows
    doc = collect(s, redis_client, clock=lambda: NOW, environ={})
    assert doc["order_mode"]["summary"] == "paper"


def test_empty_redis_is_all_down_not_a_crash(redis_client, settings_for) -> None:
    doc = collect(settings_for(), redis_client, clock=lambda: NOW, environ={})
    jsonschema.validate(doc, STATUS_SCHEMA)
    assert not doc["supervisor"]["present"]
    assert all(p["state"] == "down" for p in doc["processes"])
    assert all(s["state"] == "DOWN" for s in doc["strategies"])


def test_closed_market_lag_is_not_degraded(redis_client, settings_for) -> None:
    populate(redis_client)
    saturday = cme_time.parse_iso("2026-01-10T15:00:00Z")
    doc = collect(settings_for(), redis_client, clock=lambda: saturday, environ={})
    assert doc["market_open"] is False
    assert not any(s["degraded"] for s in doc["symbols"])


@pytest.mark.parametrize("bad", [{"schema": "x"}, {"ok": "yes"}])
def test_schema_rejects_bad_documents(redis_client, settings_for, bad) -> None:
    doc = collect(settings_for(), redis_client, clock=lambda: NOW, environ={})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, **bad}, STATUS_SCHEMA)


def test_sandbox_market_clock_from_its_state_file(redis_client, settings_for) -> None:
    from multialpha import runtime
    from multialpha.sandbox.state import SandboxState

    s = settings_for()
    populate(redis_client)
    pinned = SandboxState("127.0.0.1", 1, 2, "k", "/ca", "GLBX.MDP3", 7, 0.0, cme_time.to_ns(NOW), 0)
    runtime.write_json_atomic(runtime.sandbox_state_path(s), pinned.to_dict())
    doc = collect(s, redis_client, environ={})  # wall clock now, market clock = the pinned sandbox
    assert doc["clock"] == {"source": "sandbox", "market_now": "2026-01-06T15:30:20Z"}
    syms = {x["symbol"]: x for x in doc["symbols"]}
    assert syms["ES"]["lag_s"] == 20 and not syms["ES"]["degraded"]
    jsonschema.validate(doc, STATUS_SCHEMA)


def test_two_supervisors_split_with_only_are_merged(redis_client, settings_for) -> None:
    Heartbeat(redis_client, KEYS, "supervisor.host-a", ttl_s=60).beat("running", children={
        "hub": {"state": "running", "pid": 1, "restarts": 0}})
    Heartbeat(redis_client, KEYS, "supervisor.host-b", ttl_s=60).beat("running", children={
        "worker.ibs_a": {"state": "backoff", "pid": None, "restarts": 2, "reason": "exited with code 1",
                         "retry_in_s": 4.0}})
    doc = collect(settings_for(), redis_client, clock=lambda: NOW, environ={})
    procs = {p["name"]: p for p in doc["processes"]}
    assert procs["hub"]["state"] == "running" and procs["hub"]["pid"] == 1
    assert procs["worker.ibs_a"]["state"] == "backoff" and "retry in 4s" in procs["worker.ibs_a"]["detail"]
    assert "supervisor.host-a" not in procs and doc["supervisor"]["present"]


def test_realistic_deployment_pnl_adds_up_and_reasons(redis_client, settings_for) -> None:
    """Orders through the real paper router and gate: per-strategy P&L today = the gate's day P&L."""
    from multialpha.portfolio import control
    from multialpha.status.collect import Status
    from tests.status.realistic import seed

    s = settings_for()
    want = seed(s, redis_client)
    status = Status(s, redis_client, environ={})
    doc = status()
    jsonschema.validate(doc, STATUS_SCHEMA)
    strat = {x["name"]: x for x in doc["strategies"]}
    assert {n: strat[n]["pnl_today"] for n in strat} == {k: v for k, v in want.items() if k != "total"}
    snap = control.snapshot(s, redis_client, clock=lambda: NOW)  # the gate's own read
    assert doc["portfolio"]["day_pnl"] == snap["day_pnl"] == want["total"]
    assert doc["portfolio"]["realized"] == snap["realized"] and doc["portfolio"]["unattributed_pnl"] == 0.0
    assert strat["ibs_a"]["realized_today"] == -507.5 and strat["ibs_a"]["positions"] == 1
    # The veto journal (ibs_a/6C) and the proposed heartbeat field (ibs_b/6N) both surface model problems.
    assert strat["ibs_a"]["model_problems"] == [{"symbol": "6C", "reason": "model file missing: models/ibs/6C.joblib",
                                                 "on_missing": "block"}]
    assert [m["symbol"] for m in strat["ibs_b"]["model_problems"]] == ["6N"]
    ov = doc["overall"]
    assert ov["state"] == "DEGRADED"
    assert [r["text"] for r in ov["reasons"]] == ["ibs_a/6C no veto model: BLOCKING entries",
                                                  "ibs_b/6N no veto model: BLOCKING entries", "6M quiet"]
    syms = {x["symbol"]: x for x in doc["symbols"]}
    assert syms["6M"]["quiet"] and not syms["6M"]["degraded"]  # the hub closes minutes: no trades, not a fault
    # ibs_a was killed -9 and is LIVE again: its last exit is history, in the table and in the errors.
    procs = {p["name"]: p for p in doc["processes"]}
    assert procs["worker.ibs_a"]["recovered"] and procs["worker.ibs_a"]["detail"] == "live"
    assert procs["worker.ibs_a"]["last_exit"] is None
    assert not any("-9" in e["message"] for e in doc["errors"])
    assert status.round_trips == 1 or status() and status.round_trips == 1  # steady state: one round trip
    status()
    assert status.round_trips == 1


def test_trouble_reasons_and_restrictions(redis_client, settings_for) -> None:
    from tests.status.realistic import seed

    s = settings_for()
    seed(s, redis_client, trouble=True)
    doc = collect(s, redis_client, environ={})  # wall clock for ages, the pinned sandbox clock for the market
    jsonschema.validate(doc, STATUS_SCHEMA)
    ov = doc["overall"]
    texts = [r["text"] for r in ov["reasons"]]
    assert ov["state"] == "HALTED" and texts[0].startswith("HALTED: desk call")
    assert "hub lag 4m20s" in texts and "worker.breakout restarting (exited with code 1; retry in 8s)" in texts
    assert any(t.startswith("EXIT FAILED breakout:ES") for t in texts)
    assert any(t.startswith("ibs_a reduce-only (flatten: risk check") for t in texts)
    p = doc["portfolio"]
    assert p["halted"] and p["exit_failed"] == ["breakout:ES"] and p["flatten_pending"] == ["ibs_a"]
    assert p["entries"] == "blocked" and doc["ok"] is False
    strat = {x["name"]: x for x in doc["strategies"]}
    assert strat["breakout"]["exit_failed"] == ["breakout:ES"] and strat["ibs_a"]["flatten_pending"]


@pytest.mark.parametrize("child,beat,recovered", [
    ({"state": "running", "pid": 5, "uptime_s": 20, "restarts": 1, "reason": "exited with code -9"}, "live", True),
    ({"state": "running", "pid": 5, "uptime_s": 20, "restarts": 1, "reason": "exited with code -9"}, "warming", False),
    ({"state": "running", "pid": 5, "uptime_s": 301, "restarts": 1, "reason": "exited with code -9"}, "warming", True),
])
def test_recovery_clears_the_last_exit(redis_client, settings_for, child, beat, recovered) -> None:
    Heartbeat(redis_client, KEYS, "worker.ibs_a", ttl_s=60, clock=lambda: NOW).beat(beat)
    Heartbeat(redis_client, KEYS, "supervisor", ttl_s=60, clock=lambda: NOW).beat(
        "running", children={"worker.ibs_a": child})
    redis_client.xadd(KEYS.events(), event_fields("warning", "worker.ibs_a", "exited with code -9; restart in 1s",
                                                  "2026-01-06T15:29:00Z"))
    doc = collect(settings_for(), redis_client, clock=lambda: NOW, environ={})
    p = {x["name"]: x for x in doc["processes"]}["worker.ibs_a"]
    assert p["recovered"] is recovered
    if recovered:  # healthy_reset_s is 300 in the shipped config
        assert p["detail"] == beat and p["last_exit"] is None
        assert not [e for e in doc["errors"] if e["component"] == "worker.ibs_a"]
    else:
        assert p["detail"] == "warming — restarted after: exited with code -9"
        assert [e["message"] for e in doc["errors"] if e["component"] == "worker.ibs_a"]


def test_portfolio_through_the_real_gate(redis_client, settings_for) -> None:
    from multialpha.portfolio.gate import Gate

    s = settings_for()
    gate = Gate(s, redis_client)
    r = gate.submit(now=NOW, order_id="o1", kind="entry", strategy="breakout", symbol="ES", direction=1, quantity=1,
                    price=6000.0, contract="ESH6", entry_time=NOW - timedelta(minutes=1),
                    journal={"strategy": "breakout", "symbol": "ES"})
    assert r.status == "accepted"
    gate.mark("breakout", "ES", 6010.0, NOW)
    doc = collect(s, redis_client, clock=lambda: NOW, environ={})
    jsonschema.validate(doc, STATUS_SCHEMA)
    p = doc["portfolio"]
    assert p["available"] and p["open_positions"] == 1 and p["max_positions"] == 2
    assert p["positions"][0]["open_pnl"] == 500.0 and not p["halted"]
    assert p["day_pnl"] == 497.5  # the gate counts the entry commission
    strat = {x["name"]: x for x in doc["strategies"]}
    assert strat["breakout"]["positions"] == 1 and strat["breakout"]["open_pnl"] == 500.0
    assert strat["ibs_a"]["positions"] == 0
    assert strat["breakout"]["last_orders"][0]["symbol"] == "ES"


def test_a_failed_exit_and_reduce_only_show_in_status(redis_client, settings_for) -> None:
    from rich.console import Console

    from multialpha.portfolio import control
    from multialpha.portfolio.gate import Gate
    from multialpha.status.render import portfolio_panel

    s = settings_for()
    gate = Gate(s, redis_client)
    gate.submit(now=NOW, order_id="o1", kind="entry", strategy="breakout", symbol="ES", direction=1, quantity=1,
                price=6000.0, contract="ESH6", entry_time=NOW - timedelta(minutes=2), journal={})
    gate.submit(now=NOW, order_id="x1", kind="exit", strategy="breakout", symbol="ES", direction=1, quantity=1,
                price=6001.0, contract="ESH6", entry_time=NOW - timedelta(minutes=1), journal={})
    assert gate.exit_failed("breakout", "ES", "x1", NOW)
    control.flatten(s, redis_client, "ibs_a", reason="desk call")
    doc = collect(s, redis_client, clock=lambda: NOW, environ={})
    jsonschema.validate(doc, STATUS_SCHEMA)
    p = doc["portfolio"]
    assert p["exit_failed"] == ["breakout:ES"] and p["positions"][0]["state"] == "exit_failed"
    assert set(p["reduce_only"]) == {"breakout", "ibs_a"} and p["degraded"]
    console = Console(width=100, record=True)
    console.print(portfolio_panel(doc))
    text = console.export_text()
    assert "EXIT FAILED breakout:ES" in text and re.search(r"ES\s.*EXIT FAILED$", text, re.M)
    assert "REDUCE-ONLY ibs_a: flatten: desk call" in text


def test_positions_left_unmanaged_show_in_status(redis_client, settings_for) -> None:
    """`stop --leave-positions`: the position stays in the gate and status says nobody manages it."""
    from rich.console import Console

    from multialpha.portfolio.gate import Gate
    from multialpha.status.render import portfolio_panel

    s = settings_for()
    gate = Gate(s, redis_client)
    gate.submit(now=NOW, order_id="o1", kind="entry", strategy="breakout", symbol="ES", direction=1, quantity=1,
                price=6000.0, contract="ESH6", entry_time=NOW - timedelta(minutes=2), journal={})
    redis_client.hset(gate.unmanaged_key(), "breakout", "stopped with its positions at 2026-01-06T15:29:00Z: ES 1x1")
    doc = collect(s, redis_client, clock=lambda: NOW, environ={})
    jsonschema.validate(doc, STATUS_SCHEMA)
    assert doc["portfolio"]["unmanaged"] == {"breakout": "stopped with its positions at 2026-01-06T15:29:00Z: ES 1x1"}
    assert doc["portfolio"]["degraded"]
    assert any(r["text"].startswith("UNMANAGED breakout") and r["level"] == "error" for r in doc["overall"]["reasons"])
    console = Console(width=100, record=True)
    console.print(portfolio_panel(doc))
    assert "UNMANAGED breakout: positions without a worker" in console.export_text()


def test_a_strategy_stopped_on_request_is_said_not_an_error(redis_client, settings_for) -> None:
    Heartbeat(redis_client, KEYS, "supervisor", ttl_s=60, clock=lambda: NOW).beat("running", children={
        "worker.ibs_a": {"state": "stopped", "pid": None, "restarts": 0,
                         "reason": "stopped on request (`multialpha start` runs it again)"}})
    doc = collect(settings_for(), redis_client, clock=lambda: NOW, environ={})
    jsonschema.validate(doc, STATUS_SCHEMA)
    strat = {x["name"]: x for x in doc["strategies"]}["ibs_a"]
    assert strat["state"] == "STOPPED" and not strat["degraded"]
    reasons = {r["text"]: r["level"] for r in doc["overall"]["reasons"]}
    assert reasons["worker.ibs_a stopped on request (`multialpha start`)"] == "info"


def test_the_newest_verify_result_shows(redis_client, settings_for) -> None:
    """`multialpha verify` stores a summary per day (verify/store.py); status shows the newest."""
    from multialpha.status.render import lines
    from multialpha.verify import store

    settings = settings_for()
    populate(redis_client)
    doc = collect(settings, redis_client, clock=lambda: NOW, environ={})
    assert doc["verify"] is None and not any("verify" in t.plain for t in lines(doc))
    for day, n in (("2026-01-02", 0), ("2026-01-05", 2)):
        redis_client.hset(KEYS.verify_results(), day, json.dumps({
            "day": day, "ok": n == 0, "differences": n, "first_bar": "2026-01-05T14:31:00Z" if n else "", "error": ""}))
    doc = collect(settings, redis_client, clock=lambda: NOW, environ={})
    jsonschema.validate(doc, STATUS_SCHEMA)
    assert doc["verify"]["day"] == "2026-01-05" and doc["verify"]["differences"] == 2
    shown = [t.plain for t in lines(doc) if t.plain.startswith("verify")]
    assert shown == ["verify 2026-01-05: 2 differences (first bar 2026-01-05T14:31:00Z)"]
    assert store.latest(redis_client, KEYS)["day"] == "2026-01-05"
