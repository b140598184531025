"""The detached `multialpha up`: its pid file, `up --detach` and `multialpha down`.

Split from :mod:`multialpha.supervisor.up` (which re-exports these names) so that module
stays the wiring of one running supervisor.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from multialpha import runtime
from multialpha.config import Settings

PID_FILE = "supervisor.pid"
CONSOLE_LOG = "supervisor.console.log"


class UpError(RuntimeError):
    pass


# -- pid file -----------------------------------------------------------------------


def pid_path(settings: Settings) -> Path:
    return runtime.runtime_dir(settings) / PID_FILE


def _is_supervisor(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(b"multialpha" in part for part in cmd) and b"up" in cmd


def running_pid(settings: Settings) -> int | None:
    try:
        pid = int(pid_path(settings).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_supervisor(pid) else None


def detach(settings: Settings, config_path: Path, only: str | None, timeout_s: float = 30.0,
           log_json: bool = False) -> int:
    """Start `up` in its own session, logs to a file; return its pid once it wrote the pid file."""
    other = running_pid(settings)
    if other:
        raise UpError(f"a supervisor is already running (pid {other}); `multialpha down` stops it")
    argv = [sys.executable, "-m", "multialpha", "--config", str(config_path.resolve()),
            *(["--log-json"] if log_json else []), "up"]
    if only:
        argv += ["--only", only]
    out = open(runtime.log_dir(settings) / CONSOLE_LOG, "ab")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True, close_fds=True)
    out.close()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UpError(f"`up` exited with {proc.returncode}; see {runtime.log_dir(settings) / CONSOLE_LOG}")
        if running_pid(settings) == proc.pid:
            return proc.pid
        time.sleep(0.05)
    raise UpError(f"`up` did not write its pid file within {timeout_s:g}s")


def down(settings: Settings, timeout_s: float | None = None) -> int | None:
    """SIGTERM the detached supervisor and wait until it is gone; returns its pid (None: none running)."""
    pid = running_pid(settings)
    if pid is None:
        pid_path(settings).unlink(missing_ok=True)  # stale
        return None
    os.kill(pid, signal.SIGTERM)
    wait = timeout_s if timeout_s is not None else settings.supervisor.stop_timeout_s + 10
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not _alive(pid):
            return pid
        time.sleep(0.05)
    raise UpError(f"supervisor pid {pid} still running after {wait:g}s")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
