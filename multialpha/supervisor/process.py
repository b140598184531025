"""Real child processes: spawn with parent-death signal, pump output to logs.

No orphans, even after ``kill -9`` of the supervisor: every child is spawned
with ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` in ``preexec_fn``, so the kernel
kills it when the supervisor dies. Two Linux details matter:

- the signal fires when the *thread* that forked the child exits, so children
  are spawned only from the supervisor's main loop thread, which lives until
  the end;
- if the supervisor died between ``fork`` and ``prctl`` the signal would
  never come, so the child re-checks ``getppid()`` right after and exits.

Each child runs in its own process group (Ctrl-C in the terminal reaches
only the supervisor, which then stops children in order) and is signalled
as a group, so anything it forks is stopped with it. Its stdout+stderr go
through a pipe to a rotating file ``<log_dir>/<name>.log`` and to the
console with a coloured, aligned ``name |`` prefix.
"""

from __future__ import annotations

import ctypes
import logging
import logging.handlers
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, TextIO

from multialpha import logs, redis_acl
from multialpha.supervisor.manager import ChildSpec, Exited

PR_SET_PDEATHSIG = 1
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 5
_COLOURS = [36, 33, 32, 35, 34, 96, 93, 92, 95, 94]


# Resolved once in the parent: between fork and exec the child should do as little as
# possible (no dlopen, no allocation-heavy work) because other threads' locks are frozen.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _pdeathsig_preexec(parent: int) -> Callable[[], None]:
    def preexec() -> None:
        _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os._exit(1)

    return preexec


def log_path(log_dir: Path, name: str) -> Path:
    return log_dir / f"{name}.log"


def file_logger(log_dir: Path, name: str) -> logging.Logger:
    """A rotating file of raw lines for one child (children stamp their own lines)."""
    lg = logging.getLogger(f"multialpha.child.{name}")
    lg.propagate = False
    lg.setLevel(logging.INFO)
    if not lg.handlers:
        # Reporting: a full disk costs log lines (counted, reported once), never a traceback per line.
        h = logs.ReportingRotatingFileHandler(
            log_path(log_dir, name), maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
        h.setFormatter(logging.Formatter("%(message)s"))
        lg.addHandler(h)
    return lg


class Console:
    """Prefixed, coloured lines from several threads without interleaving."""

    def __init__(self, stream: TextIO | None = None, colour: bool | None = None, width: int = 14) -> None:
        self.stream = stream or sys.stdout
        self.colour = self.stream.isatty() if colour is None else colour
        self.width = width
        self._lock = threading.Lock()
        self._colour_of: dict[str, int] = {}

    def line(self, name: str, text: str) -> None:
        code = self._colour_of.setdefault(name, _COLOURS[len(self._colour_of) % len(_COLOURS)])
        prefix = f"{name:<{self.width}}|"
        if self.colour:
            prefix = f"\x1b[{code}m{prefix}\x1b[0m"
        with self._lock:
            try:
                self.stream.write(f"{prefix} {logs.redact(text)}\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # console gone (detached terminal closed): the log file still has it


class Spawner:
    """The real ``spawn`` for :class:`Supervisor`: Popen + waiter and log threads."""

    def __init__(self, post: Callable[[Exited], None], log_dir: Path, console: Console | None = None,
                 base_env: dict[str, str] | None = None) -> None:
        self.post = post
        self.log_dir = log_dir
        self.console = console
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def __call__(self, spec: ChildSpec) -> subprocess.Popen[bytes]:
        flog = file_logger(self.log_dir, spec.name)  # before Popen: a log-dir error must not leak a child
        env = redis_acl.own_password_only(spec.name, {**self.base_env, **dict(spec.env), "PYTHONUNBUFFERED": "1"})
        proc = subprocess.Popen(
            list(spec.argv),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_pdeathsig_preexec(os.getpid()),
            start_new_session=True,
            close_fds=True,
        )
        self.procs[proc.pid] = proc
        threading.Thread(target=self._pump, args=(spec.name, proc, flog), daemon=True,
                         name=f"log-{spec.name}").start()
        return proc

    def _pump(self, name: str, proc: subprocess.Popen[bytes], flog: logging.Logger) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            text = raw.decode("utf-8", errors="replace").rstrip("\n")
            flog.info(logs.redact(text))
            if self.console:
                self.console.line(name, text)
        proc.stdout.close()
        rc = proc.wait()  # output closed: the child is (nearly always) gone
        self.procs.pop(proc.pid, None)
        self.post(Exited(name, proc.pid, rc))


def kill_group(pid: int, sig: int) -> None:
    """Signal the child's whole process group (it leads its own session)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        os.kill(pid, sig)  # raises ProcessLookupError too if it is really gone
