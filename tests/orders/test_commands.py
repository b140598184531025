"""`multialpha flatten` and `multialpha orders list|show|ack|retry|export` against a real
redis-server, journals produced by real OrderRouters (paper, and live against the local
receiver), the real Gate, and the click CLI in-process. Time is the routers' injected clock;
nothing sleeps."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from click.testing import CliRunner

from multialpha.cli import main
from multialpha.heartbeat import Heartbeat
from multialpha.keys import Keys
from multialpha.orders import commands, journal
from multialpha.orders.router import OrderRouter
from multialpha.portfolio.gate import Gate
from tests.conftest import SHIPPED_CONFIG
from tests.orders.support import WEBHOOK_PASSWORD, WEBHOOK_UUID, Reply, intent, live_settings, webhook_env

T0 = datetime(2025, 12, 10, 15, 29, tzinfo=timezone.utc)
K = Keys()
SECRETS = (WEBHOOK_PASSWORD, WEBHOOK_UUID)


@pytest.fixture
def cli(redis_server, tmp_path):
    """Run the CLI in-process against the test Redis; ``live=url`` gives breakout that webhook."""
    outputs: list[str] = []

    def run(*args: str, live: str | None = None, columns: int = 80, **env: str) -> Any:
        environ = {"MULTIALPHA__REDIS__PORT": str(redis_server.port), "MULTIALPHA__REDIS__HOST": redis_server.host,
                   "MULTIALPHA_RUNTIME_DIR": str(tmp_path / "run"), "MULTIALPHA_CACHE_DIR": str(tmp_path / "cache"),
                   "COLUMNS": str(columns), **env}
        if live:
            environ.update(MULTIALPHA__ORDERS__MODE="live", **webhook_env(live))
        res = CliRunner().invoke(main, ["--config", str(SHIPPED_CONFIG), *args], env=environ)
        outputs.append(res.output)
        return res

    run.outputs = outputs  # type: ignore[attr-defined]
    yield run
    for text in outputs:  # no command ever prints the webhook URL or its parts
        assert not any(s in text for s in SECRETS)


def _live(s, redis_client, clock, receiver, name="breakout"):
    return OrderRouter(s, redis_client, name, clock=clock, environ=webhook_env(receiver.url),
                       sleep=clock.sleep, rand=lambda: 0.5)


def _failed_exit(settings_for, redis_client, clock, receiver) -> tuple[Any, str, str]:
    """A live breakout ES long whose exit TradersPost rejected (400): exit_failed, reduce-only."""
    s = live_settings(settings_for)
    r = _live(s, redis_client, clock, receiver)
    entry = r.submit(intent(price=6000.25))
    assert entry.accepted and r.wait_idle(5)
    receiver.script = [Reply(400, body='{"success": false, "messageCode": "no-position"}')]
    x = r.submit(intent(kind="exit", price=6005.25, bar_start=T0 + timedelta(minutes=1)))
    assert x.accepted and r.wait_idle(5)
    r.close()
    assert Gate(s, redis_client).position("breakout", "ES")["state"] == "exit_failed"
    return s, entry.order_id, x.order_id


def _state(redis_client, oid: str) -> str:
    return redis_client.hget(K.order_state(oid), "state")


# -- flatten --------------------------------------------------------------------------------


def test_flatten_all_refuses_every_strategys_entries_until_resume(settings_for, redis_client, clock, cli):
    s = settings_for(MULTIALPHA__PORTFOLIO__MAX_POSITIONS="6")
    a = OrderRouter(s, redis_client, "breakout", clock=clock, environ={})
    b = OrderRouter(s, redis_client, "ibs_a", clock=clock, environ={})
    assert a.submit(intent()).accepted
    assert b.submit(intent(strategy="ibs_a", symbol="GC", contract="GCG6", price=4000.0)).accepted

    res = cli("flatten", "--all", "--reason", "broker outage", MULTIALPHA__PORTFOLIO__MAX_POSITIONS="6")
    assert res.exit_code == 0, res.output
    assert "FLATTEN ALL strategies" in res.output and "broker outage" in res.output
    assert "multialpha resume" in res.output and "Positions in scope now (2):" in res.output
    assert "breakout ES long 1 ESZ5 entry 6000.5" in res.output  # the paper fill: 6000.25 + 1 tick and "ibs_a GC long 1 GCG6" in res.output
    assert set(Gate(s, redis_client).reduce_only()) == {"*"}
    bar = T0 + timedelta(minutes=1)
    for router, order in ((a, intent(symbol="NQ", contract="NQZ5", price=21000.0, bar_start=bar)),
                          (b, intent(strategy="ibs_a", symbol="CL", contract="CLF6", price=60.0, bar_start=bar))):
        d = router.submit(order)
        assert not d.accepted and d.reason.startswith("reduce-only: flatten: broker outage"), d.reason
    ibs_b = OrderRouter(s, redis_client, "ibs_b", clock=clock, environ={})
    assert not ibs_b.submit(intent(strategy="ibs_b", symbol="SI", contract="SIH6", price=48.0, bar_start=bar)).accepted

    assert cli("resume").exit_code == 0
    bar = T0 + timedelta(minutes=2)
    assert ibs_b.submit(intent(strategy="ibs_b", symbol="SI", contract="SIH6", price=48.0, bar_start=bar)).accepted
    assert a.submit(intent(symbol="NQ", contract="NQZ5", price=21000.0, bar_start=bar)).accepted


def test_flatten_needs_exactly_one_known_scope(settings_for, redis_client, cli):
    for args in ((), ("--strategy", "breakout", "--all")):
        res = cli("flatten", *args)
        assert res.exit_code == 2 and "exactly one of --strategy S or --all" in res.output
    res = cli("flatten", "--strategy", "nosuch")
    assert res.exit_code == 2 and "unknown strategy 'nosuch'" in res.output
    assert redis_client.keys("*") == []  # nothing was written


def test_flatten_one_strategy_lists_only_its_positions(settings_for, redis_client, clock, receiver, cli):
    _failed_exit(settings_for, redis_client, clock, receiver)
    res = cli("flatten", "--strategy", "breakout")
    assert res.exit_code == 0, res.output
    assert "EXIT FAILED" in res.output and "not resent by flatten" in res.output
    assert set(Gate(settings_for(), redis_client).reduce_only()) == {"breakout"}


# -- list / show ------------------------------------------------------------------------------


def _paper_journal(settings_for, redis_client, clock) -> dict[str, str]:
    s = settings_for()
    r = OrderRouter(s, redis_client, "breakout", clock=clock, environ={})
    ids = {"entry": r.submit(intent(price=6000.25)).order_id}
    clock.advance(60)
    ids["exit"] = r.submit(intent(kind="exit", price=6003.0, bar_start=T0 + timedelta(minutes=1))).order_id
    ids["late"] = r.submit(intent(symbol="NQ", contract="NQZ5", price=21000.0, late=True,
                                  bar_start=T0 + timedelta(minutes=1))).order_id
    redis_client.set(Gate(s, redis_client).halt_key(), "test halt")
    ids["denied"] = r.submit(intent(symbol="RTY", contract="RTYZ5", price=2300.0,
                                    bar_start=T0 + timedelta(minutes=1))).order_id
    return ids


def test_list_and_show_a_paper_journal(settings_for, redis_client, clock, cli):
    ids = _paper_journal(settings_for, redis_client, clock)
    res = cli("orders", "list")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert max(map(len, lines)) <= 80  # fits a terminal
    assert lines[0].split() == ["time", "(UTC)", "id", "strategy", "sym", "act", "qty", "price", "state", "detail"]
    # newest first; whole words only (ids cut to 10 on purpose, details cut at a word with …)
    assert [ln.split()[2] for ln in lines[1:]] == [ids[k][:10] for k in ("denied", "late", "exit", "entry")]
    assert lines[1].split()[3:9] == ["breakout", "RTY", "buy", "1", "2300", "denied"]
    assert lines[3].split()[3:9] == ["breakout", "ES", "exit", "1", "6003", "paper"]
    for ln in lines[1:]:
        detail = ln[lines[0].index("detail"):].strip()
        assert detail.endswith("…") or detail in ("paper journal only", "halted: test halt"), detail

    wide = cli("orders", "list", columns=140)
    assert "kind" in wide.output.splitlines()[0] and "ESZ2025" in wide.output
    assert "halted: test halt" in wide.output and "late entry from a replayed bar" in wide.output

    rows = json.loads(cli("orders", "list", "--json", "--strategy", "breakout", "--limit", "2").output)
    assert [r["order_id"] for r in rows] == [ids["denied"], ids["late"]]
    assert json.loads(cli("orders", "list", "--json", "--state", "paper").output)[0]["order_id"] == ids["exit"]
    assert "no orders matching" in cli("orders", "list", "--strategy", "ibs_a").output

    show = cli("orders", "show", ids["exit"][:10])  # the prefix `list` shows is enough
    assert show.exit_code == 0, show.output
    assert show.output.startswith(f"order {ids['exit']}\n  breakout ES exit x1 ESZ2025 @ 6003 -> paper\n")
    assert "state: paper, 0 attempt(s)" in show.output
    assert "intent  exit x1 ESZ2025 @ 6003 -> paper" in show.output and "outcome paper journal only" in show.output
    doc = json.loads(cli("orders", "show", ids["entry"], "--json").output)
    assert [e["event"] for e in doc["events"]] == ["intent", "outcome"]
    assert json.loads(doc["events"][0]["payload"])["action"] == "buy" and doc["position"] is None
    refused = json.loads(cli("orders", "show", ids["late"], "--json").output)  # never claimed: journal only
    assert refused["order"]["state"] == "denied" and refused["order"]["kind"] == "entry"

    missing = cli("orders", "show", "0123456789abcdef01234567")
    assert missing.exit_code == 1 and missing.stderr.strip() == (
        "orders: no order '0123456789abcdef01234567' in the journal of namespace 'multialpha'")


def test_list_and_show_a_live_journal(settings_for, redis_client, clock, receiver, cli):
    s, entry, exit_ = _failed_exit(settings_for, redis_client, clock, receiver)
    rows = json.loads(cli("orders", "list", "--json").output)
    assert [(r["order_id"], r["state"], r["review"], r["attempts"]) for r in rows] == [
        (exit_, "rejected", True, 1), (entry, "delivered", False, 1)]
    assert rows[1]["destination"] == "live" and rows[1]["detail"] == "HTTP 200"
    assert [r["order_id"] for r in json.loads(cli("orders", "list", "--json", "--state", "review").output)] == [exit_]
    show = cli("orders", "show", exit_)
    assert show.exit_code == 0, show.output
    assert "state: rejected (on the review list)" in show.output
    assert "EXIT FAILED" in show.output and "exit_failed" in show.output and "HTTP 400" in show.output
    assert f"still holding it: multialpha orders retry {exit_}" in show.output
    doc = json.loads(cli("orders", "show", exit_, "--json").output)
    assert [e["event"] for e in doc["events"]] == ["intent", "attempt", "outcome", "exit_failed"]
    assert doc["position"]["state"] == "exit_failed" and doc["position"]["exit_order_id"] == exit_


# -- ack --------------------------------------------------------------------------------------


def test_ack_of_a_failed_exit_closes_the_position_and_lifts_reduce_only(settings_for, redis_client, clock,
                                                                        receiver, cli):
    s, entry, exit_ = _failed_exit(settings_for, redis_client, clock, receiver)
    gate = Gate(s, redis_client)
    assert gate.reduce_only() == {"breakout": "exit failed for breakout:ES"}
    res = cli("orders", "ack", exit_, "--price", "6010.25", "--note", "flat at the broker")
    assert res.exit_code == 0, res.output
    assert "realised P&L +497.50 booked to trading day 2025-12-10" in res.output
    assert "breakout has no reduce-only hold left" in res.output
    assert gate.position("breakout", "ES") is None and gate.reduce_only() == {}
    realized = float(redis_client.hget(gate.day_key(T0.date()), "realized"))
    assert realized == 10 * 50 - 2 * s.commission("breakout", "ES")  # in the exit bar's trading day
    assert _state(redis_client, exit_) == "reviewed" and journal.pending_orders(redis_client, K) == []
    note = journal.read(redis_client, K, exit_)[-1]
    assert note["event"] == "reviewed" and note["note"].endswith("flat at the broker")
    r = _live(s, redis_client, clock, receiver)  # breakout may enter again
    assert r.submit(intent(symbol="NQ", contract="NQZ5", price=21000.0, bar_start=T0 + timedelta(minutes=2))).accepted
    r.close()
    again = cli("orders", "ack", exit_)
    assert again.exit_code == 1 and "not on the review list (state reviewed)" in again.stderr
    assert cli("orders", "ack", entry).exit_code == 1  # delivered: nothing to review


def test_ack_of_ambiguous_entries_filled_or_not(settings_for, redis_client, clock, receiver, cli):
    s = live_settings(settings_for)
    gate = Gate(s, redis_client)
    r = _live(s, redis_client, clock, receiver)
    receiver.script = [Reply(502), Reply(502)]
    es = r.submit(intent()).order_id
    nq = r.submit(intent(symbol="NQ", contract="NQZ5", price=21000.0)).order_id
    assert r.wait_idle(5)
    r.close()
    assert (_state(redis_client, es), _state(redis_client, nq)) == ("ambiguous", "ambiguous")
    assert redis_client.scard(gate.open_set()) == 2
    refused = cli("orders", "retry", es)
    assert refused.exit_code == 1 and "entries are never resent: check the broker, then `multialpha orders ack" \
        in refused.stderr
    assert len(receiver.requests) == 2
    assert cli("orders", "ack", es, "--price", "1").exit_code == 1  # --price is for exits

    res = cli("orders", "ack", nq[:10], "--not-filled", "--note", "not in TradersPost's log")
    assert res.exit_code == 0, res.output
    assert "not filled: breakout NQ slot freed" in res.output
    assert gate.position("breakout", "NQ") is None and redis_client.scard(gate.open_set()) == 1
    res = cli("orders", "ack", es)
    assert res.exit_code == 0 and "filled: the breakout ES position stays on the book" in res.output
    assert gate.position("breakout", "ES")["order_id"] == es
    assert (_state(redis_client, es), _state(redis_client, nq)) == ("reviewed", "reviewed")


def test_a_closing_exit_is_left_to_a_live_worker_and_acked_without_one(settings_for, redis_client, clock, cli):
    """State written through the real Gate: an exit claimed, its worker delivering it (or dead)."""
    s = settings_for()
    gate = Gate(s, redis_client)
    base = dict(strategy="breakout", symbol="ES", direction=1, quantity=1, contract="ESZ5", destination="env:x")
    assert gate.submit(now=clock(), order_id="e" * 24, kind="entry", price=6000.0, entry_time=T0, day_at=T0,
                       journal={"order_id": "e" * 24, "ts": "2025-12-10T15:30:00Z"}, **base).status == "accepted"
    bar = T0 + timedelta(minutes=1)
    assert gate.submit(now=clock(), order_id="x" * 24, kind="exit", price=6002.0, entry_time=bar, day_at=bar,
                       journal={"order_id": "x" * 24, "ts": "2025-12-10T15:31:00Z"}, **base).status == "accepted"
    assert gate.position("breakout", "ES")["state"] == "closing"
    hb = Heartbeat(redis_client, K, "worker.breakout")
    hb.beat("live")
    res = cli("orders", "ack", "x" * 24)
    assert res.exit_code == 1 and "still being delivered by worker.breakout" in res.stderr
    assert "not exit_failed: worker.breakout is delivering it" in cli("orders", "retry", "x" * 24).stderr
    hb.clear()
    res = cli("orders", "ack", "x" * 24)  # no worker: the broker is flat -> booked at the last mark
    assert res.exit_code == 0, res.output
    assert gate.position("breakout", "ES") is None and "(last mark)" in res.output


# -- retry ------------------------------------------------------------------------------------


def test_retry_delivers_a_failed_exit(settings_for, redis_client, clock, receiver, cli):
    s, _, exit_ = _failed_exit(settings_for, redis_client, clock, receiver)
    sent = receiver.requests[-1]["body"]
    paper = cli("orders", "retry", exit_)  # a shell without the live destination sends nothing
    assert paper.exit_code == 1 and "paper from here" in paper.stderr and len(receiver.requests) == 2
    res = cli("orders", "retry", exit_, live=receiver.url)
    assert res.exit_code == 0, res.output
    assert "attempt 1: HTTP 200, delivered yes" in res.output and "delivered: breakout ES closed" in res.output
    assert receiver.requests[-1]["body"] == sent  # the journaled payload, as it was
    gate = Gate(s, redis_client)
    assert gate.position("breakout", "ES") is None and gate.reduce_only() == {}
    assert _state(redis_client, exit_) == "delivered" and journal.pending_orders(redis_client, K) == []
    events = [e["event"] for e in journal.read(redis_client, K, exit_)]
    assert events == ["intent", "attempt", "outcome", "exit_failed", "attempt", "reviewed", "outcome"]
    assert cli("orders", "retry", exit_, live=receiver.url).exit_code == 1  # nothing waits on it any more


def test_retry_against_500s_stays_exit_failed(settings_for, redis_client, clock, receiver, cli):
    s, _, exit_ = _failed_exit(settings_for, redis_client, clock, receiver)
    echoed = f'{{"error": "upstream {receiver.url}"}}'  # a body echoing the URL is redacted
    receiver.script = [Reply(500, body=echoed) for _ in range(4)]
    printed: list[str] = []
    ok, lines = commands.retry(s, redis_client, exit_, clock=clock, sleep=clock.sleep, rand=lambda: 0.5,
                               environ=webhook_env(receiver.url), echo=printed.append)
    assert not ok and "NOT delivered (ambiguous: HTTP 500)" in lines[0]
    assert len(printed) == 4 and printed[0] == "attempt 1: HTTP 500, delivered maybe, retrying in 0.38s"
    assert clock.sleeps == [0.375, 0.75, 1.5]  # backoff on the injected clock: nothing slept
    gate = Gate(s, redis_client)
    assert gate.position("breakout", "ES")["state"] == "exit_failed"
    assert gate.reduce_only() == {"breakout": "exit failed for breakout:ES"}
    assert _state(redis_client, exit_) == "ambiguous" and exit_ in redis_client.smembers(K.orders_pending())
    assert not any(x in json.dumps(journal.read(redis_client, K)) + "\n".join(printed + lines) for x in SECRETS)
    shown = cli("orders", "show", exit_, "--json").output  # the echo is in the journal, redacted (fixture checks)
    assert "upstream " in shown and "***" in shown
    receiver.script = [Reply(503, body=echoed)]
    res = cli("orders", "retry", exit_, live=receiver.url, MULTIALPHA__ORDERS__MAX_ATTEMPTS="1")
    assert res.exit_code == 1 and "NOT delivered" in res.stderr
    assert gate.position("breakout", "ES")["state"] == "exit_failed"


# -- export -----------------------------------------------------------------------------------


def test_export_csv_and_parquet_round_trip(settings_for, redis_client, clock, cli, tmp_path):
    import pyarrow.parquet as pq

    ids = _paper_journal(settings_for, redis_client, clock)
    s = settings_for()
    redis_client.delete(Gate(s, redis_client).halt_key())
    clock.set(datetime(2025, 12, 11, 15, 1, tzinfo=timezone.utc))
    nxt = OrderRouter(s, redis_client, "ibs_a", clock=clock, environ={}).submit(
        intent(strategy="ibs_a", symbol="GC", contract="GCG6", price=4000.5,
               bar_start=datetime(2025, 12, 11, 15, 0, tzinfo=timezone.utc))).order_id
    res = cli("orders", "export", "--csv", str(tmp_path / "o.csv"))
    assert res.exit_code == 0 and "wrote 5 order(s)" in res.output
    with open(tmp_path / "o.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["order_id"] for r in rows] == [ids["entry"], ids["exit"], ids["late"], ids["denied"], nxt]
    assert list(rows[0]) == list(commands.COLUMNS)
    assert (rows[0]["state"], rows[0]["quantity"], rows[0]["price"], rows[0]["ticker"]) == (
        "paper", "1", "6000.25", "ESZ2025")
    assert json.loads(rows[0]["payload"])["extras"]["orderId"] == ids["entry"]
    assert rows[3]["state"] == "denied" and rows[3]["detail"].startswith("halted: test halt")

    res = cli("orders", "export", "--parquet", str(tmp_path / "o.parquet"), "--from", "2025-12-11")
    assert res.exit_code == 0 and "wrote 1 order(s)" in res.output
    [row] = pq.read_table(tmp_path / "o.parquet").to_pylist()
    assert (row["order_id"], row["strategy"], row["quantity"], row["price"], row["state"]) == (
        nxt, "ibs_a", 1, 4000.5, "paper")
    assert str(row["trading_day"]) == "2025-12-11" and row["bar_start"].isoformat() == "2025-12-11T15:00:00+00:00"
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.schema.field("attempts").type == "int64"
    cli("orders", "export", "--parquet", str(tmp_path / "d.parquet"), "--to", "2025-12-10")
    assert len(pq.read_table(tmp_path / "d.parquet")) == 4
    assert cli("orders", "export").exit_code == 2  # exactly one of --csv / --parquet


# -- every command, Redis unreachable -----------------------------------------------------------


@pytest.mark.parametrize("args", [("orders", "list"), ("orders", "show", "abcdef"), ("orders", "ack", "abcdef"),
                                  ("orders", "retry", "abcdef"), ("orders", "export", "--csv", "x.csv"),
                                  ("flatten", "--all")])
def test_unreachable_redis_is_one_line_and_exit_1(args, tmp_path):
    env = {"MULTIALPHA__REDIS__PORT": "1", "MULTIALPHA__REDIS__PASSWORD": "hunter2-redis-pw",
           "MULTIALPHA_RUNTIME_DIR": str(tmp_path / "run")}
    res = CliRunner().invoke(main, ["--config", str(SHIPPED_CONFIG), *args], env=env)
    assert res.exit_code == 1 and res.stdout == ""
    [line] = res.stderr.splitlines()
    # The same words as every other command's (tests/test_redis_errors.py), the password never shown.
    assert line.startswith(f"{args[0]}: cannot reach Redis at 127.0.0.1:1: ") and "hunter2-redis-pw" not in line


def test_state_choices_match_the_lifecycle():
    orders_list = main.commands["orders"].commands["list"]  # type: ignore[attr-defined]
    [state] = [p for p in orders_list.params if p.name == "state"]
    choices = state.type.choices  # type: ignore[attr-defined]
    assert set(choices) == {"review", *commands.STATES}
