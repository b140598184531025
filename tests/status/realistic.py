"""The Redis state a running `multialpha up` deployment writes, seeded through the real writers.

Heartbeats through :class:`~multialpha.heartbeat.Heartbeat` (the fields the hub, the
workers and the supervisor write), bars in the hub's bar logs, orders through the real
paper :class:`~multialpha.orders.router.OrderRouter` (so the gate books them exactly as
in production), marks through :meth:`Gate.mark`, a veto decision through
:func:`multialpha.mlveto.record.record`, events in the supervisor's shape. The market
clock is pinned through the sandbox state file, so `multialpha status` run as a
subprocess sees the same market instant as the seeding (a Tuesday, market open).

Used by tests/status and bench/status_cpu.py.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from multialpha import cme_time, runtime
from multialpha.bar import Bar
from multialpha.config import Settings
from multialpha.heartbeat import Heartbeat
from multialpha.keys import Keys

NOW = cme_time.parse_iso("2026-01-06T15:30:20Z")  # market clock: a Tuesday, market open
TTL = 3600


def pin_market_clock(settings: Settings, now: datetime = NOW) -> None:
    from multialpha.sandbox.state import SandboxState

    pinned = SandboxState("127.0.0.1", 1, 2, "k", "/ca", "GLBX.MDP3", 7, 0.0, cme_time.to_ns(now), 0)
    runtime.write_json_atomic(runtime.sandbox_state_path(settings), pinned.to_dict())


def put_bar(client, keys: Keys, symbol: str, start: datetime, close: float, contract: str) -> None:
    bar = Bar(symbol, start, close, close, close, close, 10, contract, 3, "sandbox")
    fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in bar.to_dict().items()}
    client.xadd(keys.bar_log(symbol), fields, id=f"{bar.start_ms}-0")


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def trade(settings: Settings, client, strategy: str, symbol: str, kind: str, price: float, bar: datetime,
          side: str = "long") -> Any:
    """One order through the real paper router, at the signal bar's close.

    Filled at the signal price (no simulated slippage), so the expected figures are the prices'."""
    from multialpha.config import BacktestSettings
    from multialpha.contracts import ContractMap
    from multialpha.orders.intent import OrderIntent
    from multialpha.orders.router import OrderRouter

    settings = settings.model_copy(update={"backtest": BacktestSettings(slippage_ticks=0)})

    cmap = ContractMap.load(settings.path(settings.contract_map_path))
    contract = cmap.front(symbol, bar).raw_symbol
    router = OrderRouter(settings, client, strategy, clock=Clock(bar + timedelta(seconds=61)), environ={})
    d = router.submit(OrderIntent(strategy, symbol, side, kind, 1, price, bar, contract, reason="seed"))
    assert d.accepted, d
    return contract


def seed(settings: Settings, client, now: datetime = NOW, *, trouble: bool = False) -> dict[str, Any]:
    """A healthy-looking deployment with the usual blemishes; ``trouble`` adds halt, a failed exit,
    a flatten, a stale hub and a worker in backoff. Returns the expected figures."""
    from multialpha.contracts import ContractMap
    from multialpha.mlveto.record import record
    from multialpha.portfolio import control
    from multialpha.portfolio.gate import Gate
    from multialpha.supervisor.watch import event_fields

    keys = Keys(settings.redis.namespace)
    pin_market_clock(settings, now)
    cmap = ContractMap.load(settings.path(settings.contract_map_path))
    minute = cme_time.from_ns(cme_time.floor_minute_ns(cme_time.to_ns(now)))
    prices = {r: settings.instruments[r].sandbox_price for r in settings.hub_symbols()}
    for root in settings.hub_symbols():
        start = minute - timedelta(minutes=5 if root == "6M" else 1)  # 6M: a thin market, quiet minutes
        put_bar(client, keys, root, start, prices[root], cmap.front(root, start).raw_symbol)

    # Today's trading: ibs_a lost on 6C (closed), holds 6A; breakout holds ES.
    t0 = minute - timedelta(minutes=40)
    trade(settings, client, "ibs_a", "6C", "entry", 0.7100, t0)
    trade(settings, client, "ibs_a", "6C", "exit", 0.7050, t0 + timedelta(minutes=10))
    c6a = trade(settings, client, "ibs_a", "6A", "entry", 0.6500, t0 + timedelta(minutes=15))
    ces = trade(settings, client, "breakout", "ES", "entry", 6000.0, t0 + timedelta(minutes=20))
    gate = Gate(settings, client)
    gate.mark("ibs_a", "6A", 0.6480, now, contract=c6a)
    gate.mark("breakout", "ES", 6010.0, now, contract=ces)
    # ibs_a/6C: the worker found no usable model; its veto decisions say so.
    record(client, keys, strategy="ibs_a", symbol="6C", side="long", at=t0 + timedelta(minutes=30), allow=False,
           acted=False, mode="enforce", reason="model file missing: models/ibs/6C.joblib; on_missing=block",
           features={})

    wall = cme_time.utcnow()
    ago = lambda s: (lambda: wall - timedelta(seconds=s))  # noqa: E731
    # ibs_a was killed -9 four minutes ago and came back: the supervisor still says why it last exited.
    client.xadd(keys.events(), event_fields("warning", "worker.ibs_a", "exited with code -9; restart in 1s",
                                            cme_time.iso_z(wall - timedelta(seconds=250)).split(".")[0] + "Z"))
    hub_ct = minute - timedelta(minutes=1)
    if trouble:
        hub_ct = minute - timedelta(minutes=5)  # the hub stopped closing minutes
    Heartbeat(client, keys, "hub", ttl_s=TTL, clock=ago(1)).beat(
        "connected", gateway="127.0.0.1:1", streaming=True, symbols=settings.hub_symbols(),
        closed_through=cme_time.iso_z(hub_ct), counters={"bars": 1234}, last_error="")
    common = {"bars": 900, "replayed": 0, "orders": 2, "rejected": 0, "errors": 0, "dropped": {}, "backlog": 0}
    Heartbeat(client, keys, "worker.ibs_a", ttl_s=TTL, clock=ago(1)).beat("live", strategy="ibs_a", vetoes=3, **common)
    Heartbeat(client, keys, "worker.ibs_b", ttl_s=TTL, clock=ago(0)).beat(
        "live", strategy="ibs_b", vetoes=0, models={"6B": {"usable": True, "reason": ""},
                                                    "6N": {"usable": False, "reason": "sha256 mismatch"}}, **common)
    if not trouble:
        Heartbeat(client, keys, "worker.breakout", ttl_s=TTL, clock=ago(1)).beat("live", strategy="breakout",
                                                                                 vetoes=1, **common)
    children = {
        "sandbox": {"state": "running", "pid": 4100, "uptime_s": 3600.0, "restarts": 0, "last_exit": None,
                    "reason": "", "retry_in_s": None},
        "hub": {"state": "running", "pid": 4101, "uptime_s": 3599.0, "restarts": 0, "heartbeat_age_s": 1.0,
                "last_exit": None, "reason": "", "retry_in_s": None},
        "worker.ibs_a": {"state": "running", "pid": 4242, "uptime_s": 240.0, "restarts": 1, "heartbeat_age_s": 1.0,
                         "last_exit": -9, "reason": "exited with code -9", "retry_in_s": None},
        "worker.ibs_b": {"state": "running", "pid": 4103, "uptime_s": 3598.0, "restarts": 0,
                         "heartbeat_age_s": 0.0, "last_exit": None, "reason": "", "retry_in_s": None},
        "worker.breakout": {"state": "running", "pid": 4104, "uptime_s": 3598.0, "restarts": 0,
                            "heartbeat_age_s": 1.0, "last_exit": None, "reason": "", "retry_in_s": None},
    }
    if trouble:
        children["worker.breakout"] = {"state": "backoff", "pid": None, "uptime_s": None, "restarts": 3,
                                       "heartbeat_age_s": None, "last_exit": 1, "reason": "exited with code 1",
                                       "retry_in_s": 8.0}
        control.halt(settings, client, reason="desk call", clock=lambda: now)
        gate.submit(now=now, order_id="x-es", kind="exit", strategy="breakout", symbol="ES", direction=1,
                    quantity=1, price=6010.0, contract=ces, entry_time=minute - timedelta(minutes=1), journal={},
                    day_at=minute - timedelta(minutes=1))
        gate.exit_failed("breakout", "ES", "x-es", now)
        control.flatten(settings, client, "ibs_a", reason="risk check", clock=lambda: now)
    Heartbeat(client, keys, "supervisor", ttl_s=TTL, clock=ago(0)).beat(
        "running", children=children, managed_redis=True, order_modes={}, config="config.multi_alpha.yml")
    # Expected per gate.lua: 6C: -2.50 entry, -500 - 2.50 exit; 6A: -2.50 entry, -200 open; ES: -2.50, +500 open.
    return {"ibs_a": -707.5, "ibs_b": 0.0, "breakout": 497.5, "total": -210.0}
