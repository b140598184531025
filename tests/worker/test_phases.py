"""worker/phases.py: the start-up line a worker logs at LIVE."""

from __future__ import annotations

from multialpha.worker import phases


def test_phases_in_order_with_the_imports_before_the_worker() -> None:
    p = phases.Phases()
    assert p.started is not None and p.started <= p.marks[0][1]  # this process started before the object
    p.mark("prepare")
    p.mark("warmup", "Historical 0.00 s, 0 requests")
    p.mark("prepare")  # a phase seen twice adds up
    d = p.durations()
    assert list(d) == ["imports", "prepare", "warmup"] and all(v >= 0 for v in d.values())
    line = p.line()
    assert line.startswith("startup phases: imports ") and "warmup " in line and "(Historical 0.00 s, 0 requests)" in line
    assert "after the process started; CPU " in line
    assert "imports" not in p.durations(from_process=False)  # a worker in a test's thread: no imports of its own
    assert p.line(from_process=False).endswith("after the worker was created")
