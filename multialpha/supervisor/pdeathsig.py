"""Exec wrapper: ``python -m multialpha.supervisor.pdeathsig PARENT_PID PROGRAM ARGS...``.

For children we do not spawn ourselves (the managed ``redis-server`` is
started by :class:`ManagedRedis`, which takes a binary path): the wrapper sets
``PR_SET_PDEATHSIG`` (kept across ``execv``), checks the parent is still the
expected one, leaves the terminal's process group, then becomes PROGRAM in
the same pid.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys


def main(argv: list[str]) -> None:
    parent, program, args = int(argv[0]), argv[1], argv[1:]
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        sys.exit(1)
    # Own session: a terminal Ctrl-C (SIGINT to the foreground group) must not
    # reach it; the supervisor stops it last, after the children are gone.
    os.setsid()
    os.execv(program, args)


if __name__ == "__main__":
    main(sys.argv[1:])
