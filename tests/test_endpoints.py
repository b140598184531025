"""endpoints: real Databento vs the sandbox, the CA trust, the shared clock."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import certifi
import pytest

from multialpha import config as cfg
from multialpha import endpoints, runtime
from multialpha.sandbox.server import Sandbox
from multialpha.sandbox.state import SandboxState

SHIPPED = Path(__file__).resolve().parents[1] / "config.multi_alpha.yml"


def _settings(tmp_path: Path, **env: str) -> cfg.Settings:
    return cfg.load(SHIPPED, environ={"MULTIALPHA_RUNTIME_DIR": str(tmp_path / "run"), **env})


def _state(**over: object) -> SandboxState:
    base = dict(
        host="127.0.0.1", live_port=1234, hist_port=5678, api_key="db-" + "a" * 29, ca_path="/x/ca.pem",
        dataset="GLBX.MDP3", seed=7, speed=60.0, clock_sim_ns=1_764_543_600 * 10**9, clock_wall_ns=10**18, pid=os.getpid(),
    )  # fmt: skip
    base.update(over)
    return SandboxState(**base)  # type: ignore[arg-type]


def test_api_key_means_real_databento(tmp_path: Path) -> None:
    s = _settings(tmp_path, DATABENTO_API_KEY="db-" + "k" * 29)
    ep = endpoints.resolve(s)
    assert ep.sandbox is None and ep.ca_path is None
    assert (ep.live_gateway, ep.live_port) == ("glbx-mdp3.lsg.databento.com", 13000)  # the client's own default
    assert ep.historical_gateway.startswith("https://hist.databento.com")
    assert "k" * 29 not in repr(ep)  # the key never shows in a repr/log line
    before = datetime.now(timezone.utc)
    assert before <= endpoints.now(ep) <= datetime.now(timezone.utc)


def test_no_key_and_no_sandbox_is_a_clear_error(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    with pytest.raises(endpoints.EndpointError, match=r"multialpha sandbox.*multialpha up|no sandbox running"):
        endpoints.resolve(s)


def test_state_file_of_a_dead_sandbox_is_rejected(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    dead_pid = 2**22 + 12345  # above the default pid_max: never a live process
    runtime.write_json_atomic(runtime.sandbox_state_path(s), _state(pid=dead_pid).to_dict())
    with pytest.raises(endpoints.EndpointError, match="not running"):
        endpoints.resolve(s)


def test_sandbox_state_file_resolves_and_round_trips(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    st = _state()
    path = runtime.sandbox_state_path(s)
    runtime.write_json_atomic(path, st.to_dict())
    assert SandboxState.read(path) == st
    ep = endpoints.resolve(s)
    assert (ep.live_gateway, ep.live_port, ep.historical_gateway) == ("127.0.0.1", 1234, "https://127.0.0.1:5678")
    assert ep.api_key == st.api_key and ep.sandbox == st
    # explicit settings win over the state file
    s2 = _settings(tmp_path, MULTIALPHA__DATABENTO__LIVE_PORT="4321")
    assert endpoints.resolve(s2).live_port == 4321
    path.write_text("{not json")
    with pytest.raises(endpoints.EndpointError):
        endpoints.resolve(s)


def test_clock_is_affine_in_wall_time_and_pinned_at_speed_zero() -> None:
    st = _state(speed=60.0, clock_wall_ns=10**18)
    assert st.now_ns(10**18 + 10**9) == st.clock_sim_ns + 60 * 10**9
    assert st.wall_delay_s(st.clock_sim_ns + 120 * 10**9, wall_ns=10**18) == pytest.approx(2.0)
    pinned = _state(speed=0.0)
    assert pinned.now_ns(10**18 + 10**12) == pinned.clock_sim_ns
    assert pinned.wall_delay_s(pinned.clock_sim_ns + 1) == float("inf")


def test_historical_client_trusts_sandbox_ca_and_now_follows_the_sandbox(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(endpoints.CA_ENV, raising=False)
    s = _settings(tmp_path)
    with Sandbox(s, seed=1, speed=0, days=3) as sb:
        ep = endpoints.resolve(s)
        client = endpoints.historical_client(ep)
        bundle = Path(os.environ[endpoints.CA_ENV])
        text = bundle.read_text()
        assert Path(sb.state.ca_path).read_text() in text and Path(certifi.where()).read_text() in text
        store = client.timeseries.get_range(
            ep.dataset, start="2025-11-28T15:00", end="2025-11-28T15:05", symbols="ES.FUT", stype_in="parent"
        )
        assert len(list(store)) > 0  # verified TLS to the sandbox works
        when = datetime(2025, 12, 1, 18, 30, tzinfo=timezone.utc)
        sb.set_clock(when)
        assert endpoints.now(ep) == when  # re-read from the state file
        assert endpoints.live_client(ep).port == sb.state.live_port
    assert not runtime.sandbox_state_path(s).exists()  # removed on stop
