from __future__ import annotations

import threading
from pathlib import Path

import pytest

from multialpha.supervisor import logview


def test_resolve_and_tail(tmp_path: Path) -> None:
    (tmp_path / "hub.log").write_text("a\nb\nc\n")
    (tmp_path / "worker.ibs_a.log").write_text("x\n")
    (tmp_path / "hub.log.1").write_text("old\n")
    assert logview.available(tmp_path) == ["hub", "worker.ibs_a"]
    assert logview.resolve(tmp_path, "ibs_a") == [tmp_path / "worker.ibs_a.log"]
    assert len(logview.resolve(tmp_path, None)) == 2
    assert logview.tail(tmp_path / "hub.log", 2) == ["b", "c"]
    with pytest.raises(FileNotFoundError, match="available: hub, worker.ibs_a"):
        logview.resolve(tmp_path, "nope")


def test_follow_sees_appends_and_survives_rotation(tmp_path: Path) -> None:
    log = tmp_path / "hub.log"
    log.write_text("before\n")
    got: list[str] = []
    done = threading.Event()

    lines = logview.follow([log], stop=done.is_set, poll_s=0.01)  # offsets taken here

    def reader() -> None:
        for _, line in lines:
            got.append(line)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    with log.open("a") as f:
        f.write("one\ntw")
        f.flush()
        f.write("o\n")
    from tests.supervisor.test_processes import wait_for

    wait_for(lambda: got == ["one", "two"], timeout=5, what="appended lines")
    log.rename(tmp_path / "hub.log.1")  # rotation: a new file takes the name
    log.write_text("fresh\n")
    wait_for(lambda: got[-1:] == ["fresh"], timeout=5, what="line from the rotated-in file")
    done.set()
    t.join(5)
    assert "before" not in got
