"""`multialpha sandbox` in a real subprocess: state file, both gateways, clean SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import databento_dbn as dbn

from multialpha import endpoints
from multialpha.sandbox.state import SandboxState

from .conftest import SHIPPED_CONFIG


def test_cli_runs_writes_state_and_stops_cleanly(tmp_path: Path) -> None:
    state_file = tmp_path / "sb.json"
    key = "db-" + "S" * 24 + "andbx"
    proc = subprocess.Popen(
        [sys.executable, "-m", "multialpha", "--config", str(SHIPPED_CONFIG), "sandbox", "--speed", "0", "--days", "3",
         "--seed", "9", "--key", key, "--state-file", str(state_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"MULTIALPHA_RUNTIME_DIR": str(tmp_path / "run"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        st = None
        while time.monotonic() < deadline and proc.poll() is None:
            st = SandboxState.read(state_file)
            if st is not None:
                break
            time.sleep(0.05)
        assert st is not None, proc.stderr.read() if proc.poll() is not None else "no state file"
        assert st.api_key == key and st.seed == 9 and st.speed == 0 and st.pid == proc.pid
        ep = endpoints.from_state(st)
        store = endpoints.historical_client(ep).timeseries.get_range(
            ep.dataset, start="2025-11-28T15:00", end="2025-11-28T15:10", symbols="ES.FUT", stype_in="parent"
        )
        assert any(isinstance(r, dbn.TradeMsg) for r in store)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"{st.host}:{st.live_port}" in out and key in out and st.ca_path in out
    assert not state_file.exists()


def test_precompute_fills_the_store_once_then_finds_it_full(tmp_path: Path) -> None:
    env = {"MULTIALPHA_RUNTIME_DIR": str(tmp_path / "run"), "MULTIALPHA_SANDBOX_STORE": str(tmp_path / "store"),
           "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "multialpha", "--config", str(SHIPPED_CONFIG), "sandbox", "--precompute", "--days", "3"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    files = sorted(p.name for p in (tmp_path / "store").glob("*/*.npz"))
    assert "ES.npz" in files and len(files) >= 19  # one per root of the shipped config
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0 and " 0 days generated" in again.stdout and "0 already there" not in again.stdout
    assert not (tmp_path / "run" / "sandbox.json").exists()  # no gateway was started
