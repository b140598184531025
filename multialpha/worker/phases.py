"""Where a worker's start-up went: one INFO line at LIVE with each phase's duration.

Why: "LIVE after 7.5 s" alone does not say whether the imports, the ML models, the
Historical download or the catch-up took the time, and on a box shared with the hub,
the sandbox and the other workers that changes from run to run. The line reads e.g.

    startup phases: imports 1.92 s, prepare 0.61 s, connect 0.08 s, warmup 2.10 s
    (Historical 1.71 s, 1 requests), subscribe 0.02 s, current hour 0.00 s, catch-up 0.05 s,
    cerebro 0.31 s -> LIVE 7.10 s after the process started; CPU 2.40 s (imports 0.71 s)

``imports`` is from the process's start (the kernel's start time, /proc/self/stat) to the
worker object: the interpreter, our modules, backtrader, numpy. Durations are monotonic
(CLOCK_BOOTTIME: the clock the kernel's start time is counted on). The CPU figure is the
process's own (all threads): far below the wall time means the worker waited — for the
sandbox, Historical, or the box's cores (other processes starting at the same time).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_BOOT = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def now() -> float:
    return time.clock_gettime(_BOOT)


def process_started() -> float | None:
    """When this process started, on :func:`now`'s clock; None where /proc is not there."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime, in clock ticks since boot
    except (OSError, IndexError, ValueError):
        return None


class Phases:
    """Marks in order; ``mark(name)`` closes the phase ``name`` that began at the previous mark."""

    def __init__(self) -> None:
        self.started = process_started()
        self.cpu_at_start = time.process_time()  # the CPU the imports took (the object comes after them)
        self.marks: list[tuple[str, float]] = [("", now())]
        self.notes: dict[str, str] = {}

    def mark(self, name: str, note: str = "") -> None:
        self.marks.append((name, now()))
        if note:
            self.notes[name] = note

    def durations(self, from_process: bool = True) -> dict[str, float]:
        """Seconds per phase; ``from_process``: with ``imports`` (the process is the worker's own)."""
        out = {}
        if from_process and self.started is not None:
            out["imports"] = max(0.0, self.marks[0][1] - self.started)
        for (_, t0), (name, t1) in zip(self.marks, self.marks[1:]):
            out[name] = out.get(name, 0.0) + t1 - t0
        return out

    def line(self, from_process: bool = True) -> str:
        parts = [f"{k} {v:.2f} s" + (f" ({self.notes[k]})" if k in self.notes else "")
                 for k, v in self.durations(from_process).items()]
        own = from_process and self.started is not None
        total = now() - (self.started if own and self.started is not None else self.marks[0][1])
        since = "the process started" if own else "the worker was created"
        cpu = f"; CPU {time.process_time():.2f} s (imports {self.cpu_at_start:.2f} s)" if own else ""
        return f"startup phases: {', '.join(parts)} -> LIVE {total:.2f} s after {since}{cpu}"
