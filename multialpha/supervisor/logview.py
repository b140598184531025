"""`multialpha logs [component] [-f]`: read the per-process files `up` writes."""

from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path
from typing import Callable, Iterator

SUFFIX = ".log"


def available(log_dir: Path) -> list[str]:
    """Component names that have a current log file (rotated backups excluded)."""
    return sorted(p.name[: -len(SUFFIX)] for p in log_dir.glob(f"*{SUFFIX}") if p.is_file())


def resolve(log_dir: Path, component: str | None) -> list[Path]:
    """Files for a component ('hub', 'worker.ibs_a' or just 'ibs_a'); all when None."""
    names = available(log_dir)
    if component is None:
        return [log_dir / f"{n}{SUFFIX}" for n in names]
    for candidate in (component, f"worker.{component}"):
        if candidate in names:
            return [log_dir / f"{candidate}{SUFFIX}"]
    raise FileNotFoundError(
        f"no log for {component!r} in {log_dir}; available: {', '.join(names) or 'none (has `up` run?)'}"
    )


def tail(path: Path, n: int) -> list[str]:
    with path.open("r", encoding="utf-8", errors="replace") as f:
        return [line.rstrip("\n") for line in deque(f, maxlen=n)]


def follow(paths: list[Path], stop: Callable[[], bool] = lambda: False, poll_s: float = 0.25,
           from_end: bool = True) -> Iterator[tuple[Path, str]]:
    """Yield (file, line) as lines are appended; survives rotation (inode change or truncation).

    The starting offsets are taken now, at the call, not at the first ``next()``.
    """
    state: dict[Path, tuple[int, int]] = {}  # path -> (inode, offset)
    for p in paths:
        try:
            st = p.stat()
            state[p] = (st.st_ino, st.st_size if from_end else 0)
        except FileNotFoundError:
            state[p] = (0, 0)
    return _follow(paths, state, stop, poll_s)


def _follow(paths: list[Path], state: dict[Path, tuple[int, int]], stop: Callable[[], bool],
            poll_s: float) -> Iterator[tuple[Path, str]]:
    partial: dict[Path, str] = {}
    while not stop():
        got = False
        for p in paths:
            ino, off = state[p]
            try:
                st = os.stat(p)
            except FileNotFoundError:
                continue
            if st.st_ino != ino or st.st_size < off:  # rotated or truncated: start the new file
                ino, off = st.st_ino, 0
            if st.st_size > off:
                with p.open("rb") as f:
                    f.seek(off)
                    data = f.read()
                off += len(data)
                text = partial.pop(p, "") + data.decode("utf-8", errors="replace")
                lines = text.split("\n")
                if lines[-1]:
                    partial[p] = lines[-1]
                for line in lines[:-1]:
                    got = True
                    yield p, line
            state[p] = (ino, off)
        if not got:
            time.sleep(poll_s)  # polling the files; inotify is not worth a dependency here
