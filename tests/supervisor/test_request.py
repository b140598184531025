"""The CLI side of reload/stop/start against a real Redis: no supervisor, the systemd
fallback, and --flatten failing closed (time injected, never slept)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from multialpha.keys import Keys
from multialpha.portfolio.gate import Gate
from multialpha.supervisor import request as rq
from tests.status.test_collect import NOW
from tests.supervisor.fakes import FakeClock


def test_no_supervisor_listening_is_an_error_not_a_wait(settings_for: Any, redis_client: Any) -> None:
    s = settings_for()
    with pytest.raises(rq.NoSupervisor):
        rq.send(redis_client, Keys(s.redis.namespace), {"command": "reload"})


def test_reload_without_supervisor_applies_limits_and_asks_the_hub(settings_for: Any, redis_client: Any) -> None:
    s = settings_for(MULTIALPHA__PORTFOLIO__MAX_POSITIONS="7")
    keys = Keys(s.redis.namespace)
    ps = redis_client.pubsub(ignore_subscribe_messages=True)
    ps.subscribe(keys.hub_control())
    ps.get_message(timeout=1)  # the subscribe confirmation
    out = rq.reload_without_supervisor(s, redis_client)
    assert redis_client.hget(Gate(s, redis_client).limits_key(), "max_positions") == "7"
    assert "max_positions 7" in out["portfolio"] and out["hub"] == "asked to reload its instruments"
    msg = ps.get_message(timeout=5)
    assert msg and json.loads(msg["data"]) == {"command": "reload"}
    ps.close()


def _hold(s: Any, client: Any) -> Gate:
    gate = Gate(s, client)
    gate.submit(now=NOW, order_id="o1", kind="entry", strategy="breakout", symbol="ES", direction=1, quantity=1,
                price=6000.0, contract="ESH6", entry_time=NOW - timedelta(minutes=2), journal={})
    return gate


def test_flatten_fails_closed_when_an_exit_may_not_have_reached_the_broker(settings_for: Any,
                                                                          redis_client: Any) -> None:
    s = settings_for()
    gate = _hold(s, redis_client)
    gate.submit(now=NOW, order_id="x1", kind="exit", strategy="breakout", symbol="ES", direction=1, quantity=1,
                price=6001.0, contract="ESH6", entry_time=NOW - timedelta(minutes=1), journal={})
    assert gate.exit_failed("breakout", "ES", "x1", NOW)
    said: list[str] = []
    with pytest.raises(rq.RequestError, match="exit failed.*Nothing stopped"):
        rq.flatten_and_wait(s, redis_client, "breakout", 60, said.append, clock=FakeClock(), sleep=lambda _s: None)
    assert gate.positions("breakout")  # still booked: never assumed closed


def test_flatten_times_out_without_stopping_and_keeps_the_hold(settings_for: Any, redis_client: Any) -> None:
    s = settings_for()
    gate = _hold(s, redis_client)
    clock = FakeClock()
    with pytest.raises(rq.RequestError, match="still open after 30s; nothing stopped"):
        rq.flatten_and_wait(s, redis_client, "breakout", 30, lambda _t: None, clock=clock,
                            sleep=lambda sec: clock.advance(sec))
    assert "stop --flatten" in redis_client.hget(gate.flatten_key(), "breakout")
    assert redis_client.hget(gate.reduce_only_key(), "breakout").startswith("flatten: stop --flatten")
