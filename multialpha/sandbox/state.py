"""The sandbox state file: how other processes find the sandbox and its clock.

The sandbox clock is "now" for the whole sandbox (live replay, the
historical gateway's upper bound, and any consumer that follows the feed).
It is an affine function of wall time, so every process computes the same
"now" from the file alone, without asking the sandbox:

    now_ns = clock_sim_ns + (wall_ns - clock_wall_ns) * speed

``speed == 0`` means the clock is *pinned* at ``clock_sim_ns`` (it moves only
when the sandbox is told to: ``Sandbox.set_clock`` or the control endpoint),
while live sessions replay unpaced, as fast as the client reads.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from multialpha import cme_time
from multialpha.runtime import read_json


@dataclass(frozen=True)
class SandboxState:
    host: str
    live_port: int
    hist_port: int
    api_key: str  # accepted key (generated locally; a sandbox key, not a secret)
    ca_path: str  # PEM of the sandbox CA the clients must trust
    dataset: str
    seed: int
    speed: float  # 0 = clock pinned, live replay as fast as the client reads
    clock_sim_ns: int  # sim instant at the anchor ...
    clock_wall_ns: int  # ... and the wall instant (time.time_ns) it was taken
    from_date: str = ""
    days: int = 0
    pid: int = 0
    started: str = ""  # wall time the sandbox started (ISO Z)

    # -- the clock ----------------------------------------------------------------
    def now_ns(self, wall_ns: int | None = None) -> int:
        if self.speed == 0:
            return self.clock_sim_ns
        wall = time.time_ns() if wall_ns is None else wall_ns
        return self.clock_sim_ns + int((wall - self.clock_wall_ns) * self.speed)

    def now(self) -> datetime:
        """The sandbox's clock: aware UTC."""
        return cme_time.from_ns(self.now_ns())

    def wall_delay_s(self, sim_ns: int, wall_ns: int | None = None) -> float:
        """Wall seconds until the clock reaches ``sim_ns`` (inf when pinned and not reached)."""
        now = self.now_ns(wall_ns)
        if sim_ns <= now:
            return 0.0
        if self.speed == 0:
            return float("inf")
        return (sim_ns - now) / 1e9 / self.speed

    # -- urls -----------------------------------------------------------------------
    @property
    def historical_url(self) -> str:
        return f"https://{self.host}:{self.hist_port}"

    # -- (de)serialisation --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["now"] = cme_time.iso_z(self.now())  # informational; readers recompute
        d["historical_url"] = self.historical_url
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SandboxState":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def read(cls, path: Path | str) -> "SandboxState | None":
        """The state in ``path``, or None when missing, unreadable or malformed."""
        data = read_json(Path(path))
        if not isinstance(data, dict):
            return None
        try:
            return cls.from_dict(data)
        except TypeError:
            return None
