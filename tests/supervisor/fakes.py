"""Fake clock and fake processes for the supervisor's unit tests (no real time, no real children)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from multialpha.supervisor.manager import ChildSpec


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


@dataclass
class FakeProc:
    pid: int
    name: str


@dataclass
class FakeOS:
    """Records spawns and signals; pids are unique."""

    spawned: list[FakeProc] = field(default_factory=list)
    signals: list[tuple[int, int]] = field(default_factory=list)
    fail_spawn: set[str] = field(default_factory=set)
    _pids: itertools.count = field(default_factory=lambda: itertools.count(100))

    def spawn(self, spec: ChildSpec) -> FakeProc:
        if spec.name in self.fail_spawn:
            raise FileNotFoundError(2, "No such file", spec.argv[0])
        p = FakeProc(next(self._pids), spec.name)
        self.spawned.append(p)
        return p

    def kill(self, pid: int, sig: int) -> None:
        self.signals.append((pid, sig))

    def spawns_of(self, name: str) -> list[FakeProc]:
        return [p for p in self.spawned if p.name == name]
