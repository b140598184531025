"""The supervisor's side of reload/stop/start (:class:`Deployer`): a real Redis and a real
config file; the loop is a :class:`Supervisor` over fake processes, fed synchronously."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from multialpha import config as cfg
from multialpha.orders.router import OrderRouter
from multialpha.portfolio.gate import Gate
from multialpha.supervisor import up
from multialpha.supervisor.manager import Supervisor
from multialpha.supervisor.reload import Deployer
from tests.conftest import SHIPPED_CONFIG
from tests.orders.support import clock, intent  # noqa: F401 - clock is a fixture
from tests.supervisor.fakes import FakeClock, FakeOS
from tests.supervisor.test_manager import POLICY, TIMING, beat_all


@pytest.fixture
def rig(redis_server: Any, redis_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    for k, v in {"MULTIALPHA__REDIS__PORT": str(redis_server.port), "MULTIALPHA__REDIS__HOST": redis_server.host,
                 "MULTIALPHA_RUNTIME_DIR": str(tmp_path / "run"), "MULTIALPHA_CACHE_DIR": str(tmp_path / "c")}.items():
        monkeypatch.setenv(k, v)
    path = tmp_path / "config.yml"
    doc = yaml.safe_load(SHIPPED_CONFIG.read_text())
    doc["contract_map_path"] = str(SHIPPED_CONFIG.parent / doc["contract_map_path"])
    path.write_text(yaml.safe_dump(doc))
    settings = cfg.load(path)
    fos, fake_clock = FakeOS(), FakeClock()
    names = [n for n in up.components(settings) if n != "sandbox"]  # its ready() waits for a state file
    sup = Supervisor(up.plan(settings, path, names, {}), fos.spawn, fos.kill, fake_clock, POLICY, TIMING)
    sup.tick()
    beat_all(sup, "t0")
    dep = Deployer(settings, path, redis_client, sup.handle, lambda s, n: up.plan(s, path, n, {}))

    class Rig:
        pass

    r = Rig()
    r.path, r.doc, r.settings, r.sup, r.dep, r.fos, r.client = path, doc, settings, sup, dep, fos, redis_client
    return r


def _write(rig: Any) -> None:
    rig.path.write_text(yaml.safe_dump(rig.doc))


def _pids(rig: Any) -> dict[str, Any]:
    return {n: c.pid for n, c in rig.sup.children.items()}


def test_bad_config_changes_nothing_exit_2(rig: Any) -> None:
    before = _pids(rig)
    rig.doc["portfolio"]["max_positions"] = 0
    _write(rig)
    out = rig.dep.handle({"command": "reload"})
    assert not out["ok"] and out["code"] == 2 and "portfolio.max_positions" in out["error"]
    assert _pids(rig) == before and not rig.fos.signals and len(rig.fos.spawned) == len(before)
    assert rig.client.exists(Gate(rig.settings, rig.client).limits_key()) == 0


def test_reload_restarts_only_the_changed_strategy_and_swaps_limits(rig: Any) -> None:
    before = _pids(rig)
    gate = Gate(rig.settings, rig.client)
    rig.client.set(gate.halt_key(), "operator halt")
    rig.client.hset(gate.reduce_only_key(), "ibs_b", "flatten: operator")
    rig.doc["strategies"]["ibs_a"]["params"]["entry_ibs"] = 0.25
    rig.doc["portfolio"]["max_positions"] = 3
    _write(rig)
    out = rig.dep.handle({"command": "reload"})
    assert out["ok"], out
    assert out["components"]["worker.ibs_a"] == f"restarting pid {before['worker.ibs_a']} (settings changed) [params]"
    assert out["components"]["worker.ibs_b"] == f"unchanged, pid {before['worker.ibs_b']}"
    assert out["components"]["portfolio"] == "limits applied: max_positions 2 -> 3"
    assert [p for p, _ in rig.fos.signals] == [before["worker.ibs_a"]]
    assert rig.client.hget(gate.limits_key(), "max_positions") == "3"
    # Halts and reduce-only holds are not the config's: a reload keeps them.
    assert rig.client.get(gate.halt_key()) == "operator halt"
    assert rig.client.hget(gate.reduce_only_key(), "ibs_b") == "flatten: operator"
    again = rig.dep.handle({"command": "reload"})
    assert again["ok"] and again["notes"] == ["no change"]


def test_removing_or_stopping_a_strategy_with_positions_is_refused_unless_left(rig: Any, clock: Any) -> None:
    router = OrderRouter(rig.settings, rig.client, "breakout", clock=clock, environ={})
    assert router.submit(intent()).accepted  # breakout holds ES
    router.close()
    before = _pids(rig)
    refused = rig.dep.handle({"command": "stop", "component": "breakout"})
    assert not refused["ok"] and "--flatten" in refused["error"] and "--leave-positions" in refused["error"]
    del rig.doc["strategies"]["breakout"]
    _write(rig)
    refused = rig.dep.handle({"command": "reload"})
    assert not refused["ok"] and refused["code"] == 1 and "breakout" in refused["error"]
    assert _pids(rig) == before and not rig.fos.signals

    out = rig.dep.handle({"command": "reload", "leave_positions": ["breakout"]})
    assert out["ok"] and out["components"]["worker.breakout"].startswith("stopping pid")
    gate = Gate(rig.settings, rig.client)
    text = rig.client.hget(gate.unmanaged_key(), "breakout")
    assert text and "ES" in text
    events = [f for _, f in rig.client.xrange(rig.dep.keys.events()) if f.get("type") == "unmanaged"]
    assert events and events[-1]["strategy"] == "breakout"
    assert gate.positions("breakout")  # nothing was sold behind the operator's back


def test_start_lifts_only_the_hold_that_stop_flatten_set(rig: Any) -> None:
    gate = Gate(rig.settings, rig.client)
    out = rig.dep.handle({"command": "stop", "component": "ibs_a"})
    assert out["ok"] and out["components"]["worker.ibs_a"].startswith("stopping pid")
    rig.client.hset(gate.reduce_only_key(), mapping={"ibs_a": "flatten: stop --flatten (by x)",
                                                     "ibs_b": "flatten: operator"})
    rig.client.hset(gate.unmanaged_key(), "ibs_a", "left")
    out = rig.dep.handle({"command": "start", "component": "ibs_a"})
    assert out["ok"]  # still stopping (fake process): it is restarted once it exited
    assert rig.client.hget(gate.reduce_only_key(), "ibs_a") is None
    assert rig.client.hget(gate.reduce_only_key(), "ibs_b") == "flatten: operator"
    assert rig.client.hget(gate.unmanaged_key(), "ibs_a") is None
    assert not rig.dep.handle({"command": "start", "component": "nope"})["ok"]


def test_removing_a_flattened_strategy_clears_its_stop_hold_and_partial_supervisors(rig: Any) -> None:
    gate = Gate(rig.settings, rig.client)
    rig.client.hset(gate.reduce_only_key(), "ibs_b", "flatten: stop --flatten (by x)")
    del rig.doc["strategies"]["ibs_b"]
    _write(rig)
    out = rig.dep.handle({"command": "reload"})
    assert out["ok"] and out["components"]["worker.ibs_b"].startswith("stopping pid")
    assert rig.client.hget(gate.reduce_only_key(), "ibs_b") is None
    # `up --only` on several hosts: a request for another host's child is not this one's to answer.
    rig.dep.whole = False
    assert rig.dep.handle({"command": "stop", "component": "elsewhere"})["not_here"]
    assert rig.dep.handle({"command": "stop", "component": "ibs_a"})["ok"]
    assert "--only" in rig.dep.handle({"command": "reload"})["error"]
