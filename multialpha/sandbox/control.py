"""Drive a running sandbox from another process (end-to-end tests of `multialpha up`).

    from multialpha.sandbox import control
    st = SandboxState.read(runtime.sandbox_state_path(settings))
    control.fault(st, "rst")                     # or close, stall, unstall, clear
    control.fault(st, "refuse", seconds=5)       # accept to end early
    control.fault(st, "error", message="boom")   # ErrorMsg then close
    control.fault(st, "hist_error", status=503)  # historical answers 503 until clear
    control.set_clock(st, datetime(...))          # jump/pin the sandbox clock

Talks to the historical gateway's control paths over HTTPS with the
sandbox key, trusting the sandbox CA explicitly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import requests

from multialpha import cme_time
from multialpha.sandbox.state import SandboxState


def _post(st: SandboxState, what: str, data: dict[str, str]) -> dict[str, Any]:
    r = requests.post(f"{st.historical_url}/v0/sandbox.{what}", data=data, auth=(st.api_key, ""), verify=st.ca_path, timeout=10)
    if r.status_code != 200:
        raise RuntimeError(f"sandbox control {what} failed: {r.status_code} {r.text}")
    return r.json()


def fault(st: SandboxState, action: str, **params: object) -> dict[str, Any]:
    return _post(st, "fault", {"action": action, **{k: str(v) for k, v in params.items()}})


def set_clock(st: SandboxState, when: datetime | None = None, speed: float | None = None) -> dict[str, Any]:
    data = {}
    if when is not None:
        data["at"] = cme_time.iso_z(when)
    if speed is not None:
        data["speed"] = str(speed)
    return _post(st, "clock", data)


def state(st: SandboxState) -> dict[str, Any]:
    r = requests.get(f"{st.historical_url}/v0/sandbox.state", auth=(st.api_key, ""), verify=st.ca_path, timeout=10)
    r.raise_for_status()
    return r.json()
