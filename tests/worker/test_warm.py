"""worker/warm.py: waiting for the sandbox that `up` starts together with the workers."""

from __future__ import annotations

import threading
from pathlib import Path

from multialpha import config as cfg
from multialpha import runtime
from multialpha.sandbox.server import Sandbox
from multialpha.worker import warm
from tests.conftest import SHIPPED_CONFIG


def settings(tmp_path: Path) -> cfg.Settings:
    return cfg.load(SHIPPED_CONFIG, environ={"MULTIALPHA_RUNTIME_DIR": str(tmp_path / "run"),
                                             "MULTIALPHA_SANDBOX_STORE": ""})


def test_a_worker_waits_for_the_sandbox_state_file_then_resolves_it(tmp_path) -> None:
    s = settings(tmp_path)
    assert not runtime.sandbox_state_path(s).exists()
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(warm.await_sandbox(s, 60.0, threading.Event())))
    waiter.start()
    with Sandbox(s, speed=0):  # writes the state file when both gateways listen
        waiter.join(30)
        assert got == [True]
        ep = warm.resolve_endpoints(s, None, None)  # what the worker does next
        assert ep.dataset == s.databento.dataset


def test_no_sandbox_gives_up_at_the_timeout_or_at_stop(tmp_path) -> None:
    s = settings(tmp_path)
    assert warm.await_sandbox(s, 0.0, threading.Event()) is False
    stop = threading.Event()
    stop.set()
    assert warm.await_sandbox(s, 60.0, stop) is False  # a SIGTERM while waiting: at once
    keyed = cfg.load(SHIPPED_CONFIG, environ={"DATABENTO_API_KEY": "db-" + "k" * 29,
                                              "MULTIALPHA_RUNTIME_DIR": str(tmp_path / "run")})
    assert warm.await_sandbox(keyed, 0.0, threading.Event()) is True  # Databento itself: nothing to wait for


def test_a_dead_sandboxs_state_file_is_not_taken_for_a_running_one(tmp_path) -> None:
    """A killed sandbox leaves its state file; a worker restarted beside the sandbox's restart
    must wait for the new one, not connect to ports nobody listens on."""
    import dataclasses
    import subprocess

    from multialpha.sandbox.state import SandboxState

    s = settings(tmp_path)
    path = runtime.sandbox_state_path(s)
    with Sandbox(s, speed=0):
        state = SandboxState.read(path)
    assert state is not None
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid is free now: the "killed sandbox"
    path.parent.mkdir(parents=True, exist_ok=True)
    runtime.write_json_atomic(path, dataclasses.replace(state, pid=dead.pid).to_dict())
    assert warm.await_sandbox(s, 0.0, threading.Event()) is False
    runtime.write_json_atomic(path, dataclasses.replace(state, pid=0).to_dict())  # no pid: taken as given
    assert warm.await_sandbox(s, 0.0, threading.Event()) is True
